"""Parameters of the twin: defaults, validation, constants and the time axis of the analytic fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.data.twin.numerics import ADVECTIVE_COURANT_LIMIT, HALO
from pdeldm.errors import InputError


DEFAULT_PARAMS: dict[str, float] = {
    "kappa": 2000.0,  # m^2/s
    "tau_hours": 1.0,  # relaxation time towards T_bg
    "lapse_rate": 6.5,  # K/km
    "wind_speed": 6.0,  # m/s, mean-flow speed
    "diurnal_amplitude_land": 7.0,  # K peak-to-peak
    "diurnal_amplitude_sea": 1.0,  # K peak-to-peak
    "synoptic_amplitude": 4.0,  # K, std of the travelling synoptic anomaly
    "forcing_amplitude": 0.8,  # K/h, std of xi
    "forcing_length_cells": 1.5,  # Gaussian filter std, fine cells
    "forcing_highpass_cells": 4.0,  # minus the noise smoothed with this std: keeps xi below the coarse cell (0: off)
    "forcing_time_hours": 4.0,  # AR(1) decorrelation time
    "cfl": 1.2,  # advective Courant number bound (SSP-RK3 with centred advection: < sqrt(3))
    "numerical_diffusion": 1.0,  # scale of the 6th-order numerical diffusion (0: plain centred advection)
    "substeps_per_hour": 0,  # 0: from cfl and the diffusion limit
    "spinup_days": 3.0,
    "margin_cells": 8,  # padding integrated around the region (a Dirichlet frame of 3 cells at its edge)
    "era5_smoothing_cells": 1.0,  # Gaussian std in lat-lon cells
    "era5_bias": -0.3,  # K
    "era5_elevation_bias": 0.5,  # K per km of cell-mean elevation
    "era5_noise": 0.1,  # K, white-noise std
    "mean_temperature": 288.0,  # K, T0 at lat_ref and sea level (annual mean over sea)
    "seasonal_amplitude": 6.0,  # K, half the January-July difference over sea
    "continentality_amplitude": 4.0,  # K per unit land fraction, added to the seasonal half-range over land
    "continentality_phase_day": 15.0,  # day of the year (0 = 1 January) of the strongest winter land-sea contrast
    "meridional_gradient": 0.5,  # K per degree latitude (colder northwards)
    "diagnostic_days": 10.0,  # length of the predictability diagnostic run (after spin-up)
}
LAT_REFERENCE = 45.0  # degrees, where T_bg = T0 + seasonal at sea level
EPOCH = np.datetime64("2000-01-01T00:00:00", "s")  # origin of the analytic fields' phases
HOUR = 3600.0
DAY = 86400.0
YEAR_DAYS = 365.2425
N_WIND_MODES = 3
N_SYNOPTIC_MODES = 4


def merged_params(params: Mapping[str, Any] | None) -> dict[str, float]:
    """DEFAULT_PARAMS updated with ``params``; unknown keys and non-positive sizes are InputErrors."""
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            raise InputError(f"twin.params: unknown key '{key}' (known: {sorted(DEFAULT_PARAMS)})")
        try:
            merged[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"twin.params.{key}: {value!r} is not a number") from None
    for key in ("kappa", "tau_hours", "forcing_length_cells", "forcing_time_hours", "cfl", "margin_cells"):
        if merged[key] <= 0:
            raise InputError(f"twin.params.{key} must be > 0, got {merged[key]}")
    for key in ("spinup_days", "substeps_per_hour", "numerical_diffusion", "forcing_amplitude", "era5_noise",
                "era5_smoothing_cells", "diagnostic_days", "wind_speed"):
        if merged[key] < 0:
            raise InputError(f"twin.params.{key} must be >= 0, got {merged[key]}")
    if merged["cfl"] >= ADVECTIVE_COURANT_LIMIT:
        raise InputError(f"twin.params.cfl must be < {ADVECTIVE_COURANT_LIMIT} (stability of the advection scheme), "
                         f"got {merged['cfl']}")
    if merged["margin_cells"] < HALO:
        raise InputError(f"twin.params.margin_cells must be >= {HALO} (the Dirichlet frame lies in the margin), "
                         f"got {merged['margin_cells']}")
    return merged


def seconds_since_epoch(times: Any) -> np.ndarray:
    """Float seconds since :data:`EPOCH` for datetime-likes."""
    stamps = pd.DatetimeIndex(np.atleast_1d(np.asarray(times, dtype="datetime64[ns]")))
    return (stamps.values.astype("datetime64[ns]") - EPOCH).astype("timedelta64[ns]").astype(np.float64) * 1e-9

