"""Evaluation: scores of downscaled fields against COSMO-CLM.

Submodules (import them explicitly; this package imports nothing heavy on its own):

* :mod:`pdeldm.evaluation.metrics`: rmse, mae, bias, r2, pcc, ssim.
* :mod:`pdeldm.evaluation.spectra`: rapsd, spectral_fit, windowed_spectral_fit, spectral_slope,
  spectral_slope_diff.
* :mod:`pdeldm.evaluation.physics_scores`: equation residuals (twin, identified), fine-band
  spectral scores, |grad T| Wasserstein-1, and the study's flux ratio and slope difference.
* :mod:`pdeldm.evaluation.probabilistic`: crps_ensemble, rank_histogram, spread_skill_ratio,
  quantile_error, threshold_scores.
"""
