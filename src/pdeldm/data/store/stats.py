"""Normalisation statistics: mean and standard deviation over the train block only.

The build streams, so the statistics merge chunk by chunk (parallel mean/variance in float64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class RunningStats:
    """Mean and variance over streamed chunks (Chan et al. parallel merge, float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def result(self) -> dict[str, float]:
        std = math.sqrt(self.m2 / self.n) if self.n else 0.0
        # A constant field (e.g. all-land FR_LAND in a small region) would divide by zero.
        return {"mean": self.mean, "std": std if std > 1e-8 else 1.0}


class TrainStats:
    """The ``norm`` entry of the metadata, fed with the store's chunks as they are written."""

    def __init__(self, predictors: Sequence[str], train: Sequence[int]) -> None:
        self.predictors = list(predictors)
        self.train0, self.train1 = train  # the train block's store indices, half-open
        self.target = RunningStats()
        self.coarse = {v: RunningStats() for v in self.predictors}

    def update(self, i0: int, i1: int, target: np.ndarray, coarse: np.ndarray) -> None:
        """Add the part of the chunk of store times ``[i0, i1)`` that lies in the train block."""
        a, b = max(i0, self.train0) - i0, min(i1, self.train1) - i0
        if b > a:
            self.target.update(target[a:b])
            for k, var in enumerate(self.predictors):
                self.coarse[var].update(coarse[a:b, k])

    def result(self, static: np.ndarray, static_vars: Sequence[str]) -> dict[str, Any]:
        """The statistics, with those of the (time-invariant) static fields."""
        static_stats = {}
        for k, var in enumerate(static_vars):
            s = RunningStats()
            s.update(static[k])
            static_stats[var] = s.result()
        return {
            "target": self.target.result(),
            "coarse": {v: self.coarse[v].result() for v in self.predictors},
            "static": static_stats,
        }
