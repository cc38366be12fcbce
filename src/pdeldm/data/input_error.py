r"""The coarse input's error, on the store's coarse grid: a perfect input and a randomised one.

The coarse t2m a model sees is, on the twin, the ERA5-like observation of the truth (area mean on a
lat-lon grid plus the error model of :mod:`pdeldm.data.twin.observation`), regridded onto the
coarse grid; on real data, ERA5 itself. Two alternatives are built here from the truth, on the
coarse grid of the store (``factor x factor`` blocks of the fine grid), in normalised units:

* the **perfect** input ``B(y)``: the block mean of the target, i.e. the coarse field with no
  error and no regridding at all. Scoring every trained model on it (the ``perfect_input``
  predictions of the workflow) separates what a model learned about the fine scales from what it
  learned about undoing the coarse input's particular error;
* the **randomised** input of robust training (``training.robust_input``): per training sample,
  with probability ``keep_probability`` the store's own coarse input, otherwise
  ``G_s * B(y) + b + e B(HSURF) / 1000 + n eta`` with ``G_s`` a Gaussian smoothing of ``s`` coarse
  cells, bias ``b`` (K), elevation-dependent bias ``e`` (K/km) on the block-mean surface height,
  and white noise of std ``n`` (K), each drawn uniformly from its configured range, so that a model
  meets the whole family of error models, the perfect input (all zero) among them.

The draws come from a generator seeded by ``(seed, epoch, time index)``, like the crops: the
training data stay reproducible and independent of workers and order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pdeldm.errors import ConfigError

#: Ranges of the randomised error model (config keys of ``training.robust_input``).
RANGE_KEYS = ("smoothing_cells", "bias_K", "elevation_bias_K_per_km", "noise_K")


def block_mean(field: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over ``factor x factor`` blocks of the last two axes."""
    *lead, h, w = field.shape
    return field.reshape(*lead, h // factor, factor, w // factor, factor).mean(dim=(-3, -1))


def gaussian_smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of a 2-D ``field`` (reflecting edges); ``sigma`` in cells."""
    if sigma <= 1e-6:
        return field
    h, w = field.shape[-2:]
    radius = min(int(math.ceil(3.0 * sigma)), h - 1, w - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=field.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = field.reshape(1, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.reshape(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.reshape(1, 1, -1, 1))
    return x.reshape(field.shape)


@dataclass(frozen=True)
class CoarseInput:
    """Where the coarse t2m channel sits and how the store normalised target, coarse and static."""

    factor: int
    t2m_channel: int
    hsurf_channel: int | None
    target_mean: float
    target_std: float
    t2m_mean: float
    t2m_std: float
    hsurf_mean: float
    hsurf_std: float

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> CoarseInput:
        """From the store's metadata; needs the ``t2m`` predictor (HSURF is optional)."""
        predictors, static_vars = list(meta["predictors"]), list(meta["static_vars"])
        if "t2m" not in predictors:
            raise ConfigError(f"a perfect or randomised coarse input needs the predictor 't2m' (have {predictors})")
        norm = meta["norm"]
        hsurf = "HSURF" in static_vars
        return cls(
            factor=int(meta["factor"]), t2m_channel=predictors.index("t2m"),
            hsurf_channel=static_vars.index("HSURF") if hsurf else None,
            target_mean=float(norm["target"]["mean"]), target_std=float(norm["target"]["std"]),
            t2m_mean=float(norm["coarse"]["t2m"]["mean"]), t2m_std=float(norm["coarse"]["t2m"]["std"]),
            hsurf_mean=float(norm["static"]["HSURF"]["mean"]) if hsurf else 0.0,
            hsurf_std=float(norm["static"]["HSURF"]["std"]) if hsurf else 1.0,
        )

    def perfect_t2m_kelvin(self, target: torch.Tensor) -> torch.Tensor:
        """Block mean (K) of a normalised target ``[..., 1, H, W]`` -> ``[..., Hc, Wc]``."""
        return block_mean(target[..., 0, :, :] * self.target_std + self.target_mean, self.factor)

    def with_t2m(self, coarse: torch.Tensor, t2m_kelvin: torch.Tensor) -> torch.Tensor:
        """``coarse`` ``[..., C, Hc, Wc]`` with its t2m channel replaced by ``t2m_kelvin`` (normalised here)."""
        out = coarse.clone()
        out[..., self.t2m_channel, :, :] = ((t2m_kelvin - self.t2m_mean) / self.t2m_std).to(coarse.dtype)
        return out

    def perfect(self, coarse: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The coarse input with t2m = the block mean of the truth (batched or single item)."""
        return self.with_t2m(coarse, self.perfect_t2m_kelvin(target))


@dataclass(frozen=True)
class RandomisedInputError:
    """The error model of robust training, its parameters drawn per sample (module docstring)."""

    coarse: CoarseInput
    keep_probability: float
    ranges: dict[str, tuple[float, float]]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> RandomisedInputError:
        """From ``training.robust_input`` (ranges as ``[low, high]``; ``enabled`` is the caller's) and the
        store's metadata."""
        keep = float(cfg["keep_probability"])
        if not 0.0 <= keep <= 1.0:
            raise ConfigError(f"training.robust_input.keep_probability must lie in [0, 1], got {keep}")
        ranges = {}
        for key in RANGE_KEYS:
            low, high = (float(v) for v in cfg[key])
            if high < low or (key in ("smoothing_cells", "noise_K") and low < 0):
                raise ConfigError(f"training.robust_input.{key} must be [low, high] with low <= high"
                                  f"{' and low >= 0' if key in ('smoothing_cells', 'noise_K') else ''}, got {cfg[key]}")
            ranges[key] = (low, high)
        coarse = CoarseInput.from_meta(meta)
        if coarse.hsurf_channel is None and ranges["elevation_bias_K_per_km"] != (0.0, 0.0):
            raise ConfigError("training.robust_input.elevation_bias_K_per_km needs HSURF in data.static_vars")
        return cls(coarse, keep, ranges)

    def draw(self, generator: torch.Generator) -> dict[str, float] | None:
        """Parameters of one sample (None = keep the store's input)."""
        if float(torch.rand((), generator=generator)) < self.keep_probability:
            return None
        values = torch.rand(len(RANGE_KEYS), generator=generator).tolist()
        return {key: low + u * (high - low) for (key, (low, high)), u in zip(self.ranges.items(), values, strict=True)}

    def apply(self, coarse: torch.Tensor, target: torch.Tensor, static: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
        """One item's coarse input ``[C, Hc, Wc]``, randomised from its target ``[1, H, W]``."""
        params = self.draw(generator)
        if params is None:
            return coarse
        c = self.coarse
        t2m = gaussian_smooth(c.perfect_t2m_kelvin(target.double()), params["smoothing_cells"])
        t2m = t2m + params["bias_K"]
        if c.hsurf_channel is not None:
            hsurf_m = block_mean(static[c.hsurf_channel].double() * c.hsurf_std + c.hsurf_mean, c.factor)
            t2m = t2m + params["elevation_bias_K_per_km"] * hsurf_m / 1000.0
        noise = torch.randn(t2m.shape, generator=generator, dtype=torch.float64)
        return c.with_t2m(coarse, t2m + params["noise_K"] * noise)
