"""Figures of the study (PNG, Agg backend): metric box plots, maps, spectra, calibration.

Each ``plot_*`` function takes explicit input paths and an ``out_png`` and returns nothing.
"""

from pdeldm.plotting.boxplots import plot_metric_boxplots
from pdeldm.plotting.calibration import plot_calibration
from pdeldm.plotting.maps import plot_maps
from pdeldm.plotting.spectra import plot_spectra

__all__ = ["plot_calibration", "plot_maps", "plot_metric_boxplots", "plot_spectra"]
