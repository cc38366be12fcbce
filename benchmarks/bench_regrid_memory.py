"""Peak memory of regridding one month of hourly ERA5 at paper size with ``pdeldm.data.regrid``.

Paper size: 14 ERA5 predictors on the 0.25-degree grid over Italy (about 50 x 60 points; the
synthetic source is sized to cover the target plus the regridder's margin, and its size is printed)
-> a 672 x 576 rotated-pole grid at ~2 km (EUR-11 pole, centred on the `italy` region). The month
is processed the way ``pdeldm.data.store.build_store`` does it: one day (24 steps) per block, the
predictors remapped with ``--method`` and block-averaged 8:1 (``coarsen_to_aligned``), the winds
remapped bilinearly at full resolution; fine fields are dropped after each block, the coarse
result of the whole month is kept.

The work runs in a child process so that its peak is not polluted by the parent:
``tracemalloc`` (Python + NumPy allocations) and the peak resident memory (``ru_maxrss_mib``: the
whole process, including the interpreter and libraries) are reported against the 2 GiB target.

    python benchmarks/bench_regrid_memory.py                 # whole month (slow on 2 cores)
    python benchmarks/bench_regrid_memory.py --days 2        # quicker look; memory is per block
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

TARGET_MIB = 2048.0
POLE = {"grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0, "north_pole_grid_longitude": 0.0}
# centre of the `italy` region of config/config.yaml (rlat0 -13.5, rlon0 -9.0, 96 x 96 cells of 0.11 deg)
CENTRE_RLAT, CENTRE_RLON = -13.5 + 96 * 0.11 / 2, -9.0 + 96 * 0.11 / 2
PREDICTORS = ["t2m", "msl", "u10", "v10", "d2m", "sst", "sd", "tp", "ssrd", "q850", "t850", "u850", "v850", "w850"]


def _mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def _peak_rss_mib() -> float:
    """This process's peak resident memory (MiB). Linux's ``ru_maxrss`` would also count the parent's
    peak at the fork that started it; ``VmHWM`` of the process's own memory map does not."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_inputs(ny: int, nx: int, spacing_m: float, days: int, n_vars: int):  # type: ignore[no-untyped-def]
    """Target grid and a synthetic normalised ERA5 month (float32, latitude ascending)."""
    import pandas as pd
    import xarray as xr

    from pdeldm.data.cosmo import crs_from_params, latlon_2d
    from pdeldm.data.regrid import TargetGrid

    step = np.rad2deg(spacing_m / 6371229.0)
    rlat = CENTRE_RLAT + (np.arange(ny) - (ny - 1) / 2) * step
    rlon = CENTRE_RLON + (np.arange(nx) - (nx - 1) / 2) * step
    lat, lon = latlon_2d(rlat, rlon, crs_from_params(POLE))
    grid = TargetGrid(rlat=rlat, rlon=rlon, pole=dict(POLE), lat=lat, lon=lon)

    # ERA5 0.25-degree points covering the target with a 1-degree margin (the conservative
    # regridder samples a slightly larger intermediate grid than the fine domain)
    src_lat = np.arange(np.floor(lat.min() - 1.0), np.ceil(lat.max() + 1.0) + 1e-9, 0.25)
    src_lon = np.arange(np.floor(lon.min() - 1.0), np.ceil(lon.max() + 1.0) + 1e-9, 0.25)
    times = pd.date_range("2001-01-01", periods=24 * days, freq="h")
    hours = np.arange(times.size, dtype=np.float32)[:, None, None]
    names = (PREDICTORS * (n_vars // len(PREDICTORS) + 1))[:n_vars]
    base = np.sin(np.deg2rad(src_lat) * 7.0)[:, None] * np.cos(np.deg2rad(src_lon) * 5.0)[None, :]
    data_vars = {}
    for k, name in enumerate(names):
        field = (280.0 + k + 5.0 * base[None] + np.sin(2 * np.pi * hours / 24.0 + 0.3 * k)).astype(np.float32)
        data_vars[name] = (("time", "latitude", "longitude"), field)
    era5 = xr.Dataset(data_vars, coords={"time": times, "latitude": src_lat, "longitude": src_lon})
    return grid, era5


def child(args: argparse.Namespace) -> dict[str, object]:
    """Run the regridding and measure; returns the numbers as a dict (printed as JSON)."""
    from pdeldm.data import regrid as rg

    grid, era5 = build_inputs(args.ny, args.nx, args.spacing_m, args.days, args.vars)
    rss_before = _peak_rss_mib()
    tracemalloc.start()
    t0, cpu0 = time.perf_counter(), time.process_time()

    # adapt to the regridder's signature (memory_mb / supersample appeared while it was written)
    params = inspect.signature(rg.Regridder.__init__).parameters
    extra = {k: v for k, v in (("memory_mb", args.memory_mb / 2), ("supersample", args.supersample)) if k in params and v}
    wind_extra = {k: v for k, v in extra.items() if k == "memory_mb"}
    lat, lon = era5["latitude"].values, era5["longitude"].values
    pred = rg.Regridder(lat, lon, grid, args.method, **extra)
    wind = pred if args.method == "bilinear" else rg.Regridder(lat, lon, grid, "bilinear", **wind_extra)
    setup_s = time.perf_counter() - t0
    peak_setup = tracemalloc.get_traced_memory()[1]

    coarse_parts = []
    block_peaks = []
    for i0 in range(0, era5.sizes["time"], args.block):
        tracemalloc.reset_peak()
        block = era5.isel(time=slice(i0, i0 + args.block))
        fine = pred(block)
        coarse_parts.append(rg.coarsen_to_aligned(fine, args.factor).load())
        winds = fine[["u10", "v10"]] if wind is pred else wind(block[["u10", "v10"]])
        wind_arr = np.stack([winds["u10"].values, winds["v10"].values], axis=1).astype(np.float32)
        del fine, winds, wind_arr  # written to the store and dropped, as build_store does
        block_peaks.append(tracemalloc.get_traced_memory()[1])
    total_s = time.perf_counter() - t0
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = max([peak_setup, *block_peaks])
    return {
        "method": args.method,
        "target_shape": [args.ny, args.nx],
        "spacing_m": args.spacing_m,
        "era5_shape": [int(era5.sizes["latitude"]), int(era5.sizes["longitude"])],
        "variables": args.vars,
        "time_steps": int(era5.sizes["time"]),
        "block": args.block,
        "regridder_kwargs": extra,
        "era5_input_mib": round(_mib(era5.nbytes), 1),
        "coarse_result_mib": round(_mib(sum(part.nbytes for part in coarse_parts)), 1),
        "retained_at_end_mib": round(_mib(current), 1),  # regridder geometry + coarse result
        "tracemalloc_peak_mib": round(_mib(peak), 1),
        "tracemalloc_peak_setup_mib": round(_mib(peak_setup), 1),
        "rss_before_mib": round(rss_before, 1),
        "ru_maxrss_mib": round(_peak_rss_mib(), 1),
        "setup_s": round(setup_s, 1),
        "seconds": round(total_s, 1),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "seconds_per_day": round(total_s / max(args.days, 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=["conservative", "bilinear"], default="conservative")
    p.add_argument("--days", type=int, default=31, help="days of hourly data (31 = one month)")
    p.add_argument("--vars", type=int, default=14)
    p.add_argument("--ny", type=int, default=672)
    p.add_argument("--nx", type=int, default=576)
    p.add_argument("--spacing-m", type=float, default=2000.0)
    p.add_argument("--factor", type=int, default=8)
    p.add_argument("--block", type=int, default=24, help="time steps per block (the store uses one day)")
    p.add_argument("--memory-mb", type=float, default=512.0, help="the store's memory_mb (split over two regridders)")
    p.add_argument("--supersample", type=int, default=0, help="0 = the regridder's default")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    cmd = [sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in result.items():
        print(f"{key:28s} {value}")
    worst = max(result["tracemalloc_peak_mib"], result["ru_maxrss_mib"])
    verdict = "within" if worst <= TARGET_MIB else "OVER"
    print(f"peak {worst:.0f} MiB (max of tracemalloc and ru_maxrss) vs target {TARGET_MIB:.0f} MiB: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
