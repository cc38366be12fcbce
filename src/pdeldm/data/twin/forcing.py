"""The stochastic small-scale forcing xi of the twin (see the package docstring)."""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi

from pdeldm.data.twin.params import HOUR


class StochasticForcing:
    """Hourly keyframes of the small-scale forcing xi (K/s) on the padded grid.

    Keyframe k is at ``origin + k`` hours.  AR(1) in time on white noise, then the Gaussian filter
    (filtering commutes with the linear recursion, so only the keyframes asked for are filtered).
    Random numbers for day d come from ``default_rng([seed, 1, d])``, so a keyframe is regenerated
    by replaying the (unfiltered) recursion; the last two days' noise and their filtered keyframes
    are cached for sequential access. A jump far ahead (an evaluation's first test hour) replays
    only the last ``memory_days`` from a zero state instead of every day since the origin: the
    state's memory decays as ``exp(-hours / forcing_time_hours)``, so what is left out is below
    1e-20 of the field, under float64 rounding (the same keyframe to the last bits).
    """

    def __init__(self, shape: tuple[int, int], params: dict[str, float], seed: int) -> None:
        self.shape = shape
        self.seed = seed
        self.sigma = params["forcing_length_cells"]
        self.sigma_large = params["forcing_highpass_cells"]
        self.decay = math.exp(-1.0 / params["forcing_time_hours"])
        impulse = np.zeros((int(8 * max(self.sigma, self.sigma_large)) * 2 + 1,) * 2)
        impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
        kernel_norm = float(np.sqrt((self._filter(impulse, mode="constant") ** 2).sum()))
        self.scale = params["forcing_amplitude"] / HOUR / kernel_norm  # unit-variance filtered noise * amplitude
        # days after which the AR(1) state has forgotten its start to below 1e-20 (see above)
        self.memory_days = max(2, math.ceil(math.log(1e20) * params["forcing_time_hours"] / 24.0))
        self._day = -1  # last generated day
        self._state: np.ndarray | None = None  # AR(1) state at the last hour of that day
        self._noise: dict[int, np.ndarray] = {}  # unfiltered AR(1) noise of the last two days
        self._frames: dict[int, np.ndarray] = {}  # filtered keyframes of those days, by index

    def keyframe(self, k: int) -> np.ndarray:
        """Keyframe ``k`` (K/s), shape (ny, nx)."""
        if k < 0:
            raise ValueError("forcing keyframes start at the origin (day 0)")
        if k not in self._frames:
            day = k // 24
            if day < self._day - 1 or day > self._day + self.memory_days:
                self._restart(day - self.memory_days)
            while self._day < day:
                self._advance()
            self._frames[k] = self._filter(self._noise[day][k % 24], mode="reflect") * self.scale
        return self._frames[k]

    def _restart(self, day: int) -> None:
        """Forget the cache; the next day generated is ``day`` (the origin's exact start at day <= 0)."""
        self._noise, self._frames = {}, {}
        if day <= 0:
            self._day, self._state = -1, None
        else:
            self._day, self._state = day - 1, np.zeros(self.shape)

    def _advance(self) -> None:
        """Generate the next day's AR(1) noise (unfiltered) and forget all but the day before it."""
        day = self._day + 1
        white = np.random.default_rng([self.seed, 1, day]).standard_normal((24, *self.shape))
        innovation = math.sqrt(1.0 - self.decay**2)
        eta = np.empty_like(white)
        eta[0] = white[0] if self._state is None else self.decay * self._state + innovation * white[0]
        for hour in range(1, 24):
            eta[hour] = self.decay * eta[hour - 1] + innovation * white[hour]
        self._state = eta[-1].copy()
        self._noise = {d: n for d, n in self._noise.items() if d == day - 1}
        self._noise[day] = eta
        self._frames = {k: f for k, f in self._frames.items() if k // 24 >= day - 1}
        self._day = day

    def _filter(self, noise: np.ndarray, mode: str) -> np.ndarray:
        """Band-pass over the last two axes: Gaussian(sigma) minus Gaussian(sigma_large)."""
        lead = (0,) * (noise.ndim - 2)
        smooth = ndi.gaussian_filter(noise, sigma=(*lead, self.sigma, self.sigma), mode=mode)
        if self.sigma_large > 0:
            smooth -= ndi.gaussian_filter(noise, sigma=(*lead, self.sigma_large, self.sigma_large), mode=mode)
        return smooth

