"""Pieces of the dispersion diagnosis that need no trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pdeldm.evaluation.dispersion import ema_summary, spread_scores, to_markdown, training_summary
from pdeldm.models.ema import EMA


def test_spread_scores_tell_a_calibrated_from_a_narrow_ensemble() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(0, 2, (20, 16, 16))
    truth = centre + rng.standard_normal(centre.shape)
    calibrated = spread_scores(centre[None] + rng.standard_normal((5, *centre.shape)), truth)
    narrow = spread_scores(centre[None] + 0.3 * rng.standard_normal((5, *centre.shape)), truth)
    assert calibrated["spread_skill"] == pytest.approx(1.0, abs=0.05)
    assert narrow["spread_skill"] == pytest.approx(0.3 * np.sqrt(6 / 5) / np.sqrt(1 + 0.09 / 5), abs=0.03)
    assert calibrated["crps"] < narrow["crps"]


def test_training_and_ema_summaries(tmp_path: Path) -> None:
    path = tmp_path / "training_metrics.csv"
    pd.DataFrame({"epoch": range(6), "val_loss": [1.0, 0.8, 0.7, 0.65, 0.62, 0.6]}).to_csv(path, index=False)
    summary = training_summary(path)
    assert summary["epochs"] == 6 and summary["best_epoch"] == 6
    assert summary["val_loss_drop_last_third"] == pytest.approx((0.65 - 0.6) / 0.65)

    class Holder:
        denoiser_ema = EMA(torch.nn.Linear(2, 2), decay=0.999)

    holder = Holder()
    for _ in range(90):
        holder.denoiser_ema.update(torch.nn.Linear(2, 2))
    ema = ema_summary(holder)
    assert ema["updates"] == 90 and ema["decay_at_end"] == pytest.approx(91 / 100)
    assert ema["window_steps"] == pytest.approx(1 / (1 - 0.91))


def test_markdown_lists_every_sampler() -> None:
    row = {"solver": "ddim", "spacing": "uniform", "steps": 20, "eta": 0.0, "evaluations": 20, "spread": 0.3,
           "rmse_ensmean": 0.6, "spread_skill": 0.5, "latent_spread_skill": 0.7, "latent_std": 0.8, "crps": 0.35}
    result = {"n_times": 8, "members": 4, "residual_split": {"truth_residual_std_K": 0.7, "ae_reconstruction_rmse_K": 0.69,
                                                               "ae_variance_ratio": 0.02, "latent_std_true": 1.0},
              "ema": {"updates": 500, "decay_at_end": 0.98, "window_steps": 51.0},
              "samplers": [row, {**row, "solver": "dpmpp_2m", "spacing": "logsnr"}]}
    text = to_markdown({"ldm": result}, perfect_spread=0.48)
    assert text.count("| ddim |") == 1 and text.count("| dpmpp_2m |") == 1 and "at least 0.480 K" in text
