"""The time split: the config's blocks, and the store times they select from ERA5 and COSMO.

Store times are the ERA5 ∩ COSMO times inside the blocks, in chronological order; each block must
be covered without gaps at the common time step, or the build stops before any heavy work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pdeldm.errors import InputError


@dataclass(frozen=True)
class Block:
    """One named period of the split."""

    name: str
    start: pd.Timestamp
    end_excl: pd.Timestamp  # exclusive bound: a date-only end includes that whole day
    label: tuple[str, str]


def parse_blocks(split: Mapping[str, Sequence[str]]) -> list[Block]:
    """The split's blocks in time order; each must be an ordered [start, end], none may overlap."""
    blocks = []
    for name, bounds in split.items():
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise InputError(f"store config: split '{name}' must be [start, end], got {bounds!r}")
        try:
            start, end = pd.Timestamp(str(bounds[0])), pd.Timestamp(str(bounds[1]))
        except ValueError as exc:
            raise InputError(f"store config: split '{name}' has an unparsable date ({exc})") from None
        date_only = len(str(bounds[1]).strip()) <= 10
        end_excl = end + pd.Timedelta(days=1) if date_only else end + pd.Timedelta(1, "ns")
        if end_excl <= start:
            raise InputError(f"store config: split '{name}' is unordered: end {bounds[1]} is before start {bounds[0]}")
        blocks.append(Block(str(name), start, end_excl, (str(bounds[0]), str(bounds[1]))))
    ordered = sorted(blocks, key=lambda b: b.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end_excl:
            raise InputError(
                f"store config: split blocks '{a.name}' {list(a.label)} and '{b.name}' {list(b.label)} overlap; "
                "blocks must be contiguous, non-overlapping periods"
            )
    return ordered


def common_step(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The typical step of ``times`` (their median spacing; 1 h for a single time)."""
    return pd.Timedelta(np.median(np.diff(times.values))) if len(times) > 1 else pd.Timedelta("1h")


def select_times(
    era5_t: pd.DatetimeIndex, cosmo_t: pd.DatetimeIndex, blocks: list[Block]
) -> tuple[pd.DatetimeIndex, dict[str, list[int]], pd.Timedelta]:
    """Store times = the ERA5/COSMO intersection within the split blocks, each block fully covered.

    Returns the times, each block's half-open index span ``[i0, i1)`` and the common time step.
    """
    common = era5_t.intersection(cosmo_t).sort_values()
    dt = common_step(common)
    pieces: list[pd.DatetimeIndex] = []
    splits: dict[str, list[int]] = {}
    n = 0
    for b in blocks:
        sel = common[(common >= b.start) & (common < b.end_excl)]
        if len(sel) == 0:
            raise InputError(
                f"split '{b.name}' {list(b.label)} selects zero times: ERA5 covers {_span(era5_t)}, COSMO covers {_span(cosmo_t)}"
            )
        _check_covered(b, sel, dt, era5_t, cosmo_t)
        pieces.append(sel)
        splits[b.name] = [n, n + len(sel)]
        n += len(sel)
    times = pieces[0].append(pieces[1:]) if len(pieces) > 1 else pieces[0]
    return pd.DatetimeIndex(times), splits, dt


def _span(index: pd.DatetimeIndex) -> str:
    return f"{index[0].isoformat()}..{index[-1].isoformat()}" if len(index) else "nothing"


def _check_covered(b: Block, sel: pd.DatetimeIndex, dt: pd.Timedelta, era5_t: pd.DatetimeIndex,
                   cosmo_t: pd.DatetimeIndex) -> None:
    """Every ``dt`` step of the block (on the lattice of its first time) is among ``sel``."""
    k = math.floor((sel[0] - b.start) / dt)
    expected = pd.date_range(sel[0] - k * dt, b.end_excl - pd.Timedelta(1, "ns"), freq=dt)
    missing = expected.difference(sel)
    if len(missing):
        first = missing[0]
        where = [name for name, idx in (("ERA5", era5_t), ("COSMO", cosmo_t)) if first not in idx]
        raise InputError(
            f"split '{b.name}' {list(b.label)} is not covered: {len(missing)} of {len(expected)} expected "
            f"{dt} steps missing, first {first.isoformat()} (absent from {' and '.join(where)} files)"
        )
