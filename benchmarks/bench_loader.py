"""Training samples per second: our data module vs the DiffScaler data pattern, same crops, same machine.

DiffScaler keeps one zstd-compressed torch dict per day and variable group
(``YYYY-MM-DD_low.pt.zst``: the coarse predictors by hour; ``YYYY-MM-DD_high_2mT.pt.zst``: the fine
2-m temperature by hour) and, for every sample, reads and decompresses both day files whole,
unpickles them, and keeps one hour. Ours (:class:`pdeldm.data.datasets.DownscalingDataModule`)
loads the training split into memory once (``training.in_memory: true``, the default) and slices
each crop out of it; with ``in_memory: false`` it reads each item from the zarr store instead.

Both read the same synthetic store (smooth fields; our store layout, one zarr chunk per day) and
serve the same items in the same order with the same crops (our seeded crop origins). The
DiffScaler side gets no wind field and no time features, so it does strictly less per item. Batches
of the compared loaders are drawn alternately; times are CPU seconds of the process (robust on a
shared machine; wall seconds are in the CSV too). Our in-memory load is timed separately (setup).
Goal: at least 10 times DiffScaler's samples per second.

    python benchmarks/bench_loader.py [--scale ci|full] [--out results/benchmarks]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, print_run, scale_parser, write_csv  # noqa: E402

GOAL = 10.0
#: name -> (fine shape, coarse predictors, static fields, crop, batch, days, timed batches) per scale
SIZES = {
    "ci": {"default": ((96, 96), 3, 3, 64, 16, 14, 12), "paper": ((672, 576), 14, 19, 512, 4, 2, 6)},
    "full": {"default": ((96, 96), 3, 3, 64, 16, 60, 60), "paper": ((672, 576), 14, 19, 512, 8, 7, 20)},
    "tiny": {"default": ((32, 32), 3, 3, 16, 4, 2, 3)},
}
FACTOR = 8


def synthetic_store(directory: Path, shape: tuple[int, int], n_coarse: int, n_static: int,
                    days: int) -> tuple[Path, Path]:
    """A training store (layout of :mod:`pdeldm.data.store`, train split only) of smooth random fields."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    from pdeldm.io import write_json

    rng = np.random.default_rng(0)
    ny, nx = shape
    nt = 24 * days
    times = pd.date_range("2001-01-01", periods=nt, freq="h")

    def smooth(*lead: int, size: tuple[int, int] = shape) -> np.ndarray:
        noise = rng.standard_normal((*lead, *size), dtype=np.float32)
        return (noise.cumsum(-1).cumsum(-2) / np.float32(size[0])).astype(np.float32)

    predictors = [f"p{k}" for k in range(n_coarse - 1)] + ["t2m"]
    static_vars = ["HSURF", "FR_LAND", "lat"] + [f"s{k}" for k in range(n_static - 3)]
    coarse_shape = (ny // FACTOR, nx // FACTOR)
    ds = xr.Dataset(
        {"target": (("time", "y", "x"), 285.0 + smooth(nt)),
         "coarse": (("time", "cvar", "yc", "xc"), smooth(nt, n_coarse, size=coarse_shape)),
         "wind": (("time", "wvar", "y", "x"), 5.0 * smooth(nt, 2)),
         "static": (("svar", "y", "x"), smooth(n_static))},
        coords={"time": times, "lon": (("y", "x"), np.broadcast_to(np.linspace(5, 19, nx, dtype=np.float32), shape)),
                "cvar": predictors, "svar": static_vars, "wvar": ["u10", "v10"]},
    )
    store = directory / "store.zarr"
    encoding = {"target": {"chunks": (24, ny, nx)}, "coarse": {"chunks": (24, n_coarse, *coarse_shape)},
                "wind": {"chunks": (24, 2, ny, nx)}}
    ds.to_zarr(store, mode="w", encoding=encoding, consolidated=True)
    unit = {"mean": 0.0, "std": 1.0}
    meta = directory / "store.json"
    write_json(meta, {"factor": FACTOR, "dx_m": 2200.0, "dy_m": 2200.0, "shape": [ny, nx],
                      "coarse_shape": list(coarse_shape), "predictors": predictors, "static_vars": static_vars,
                      "splits": {"train": [0, nt], "val": [0, 24]}, "n_times": nt,
                      "norm": {"target": {"mean": 285.0, "std": 5.0}, "coarse": {p: unit for p in predictors},
                               "static": {v: unit for v in static_vars}}})
    return store, meta


def write_day_files(store: Path, directory: Path) -> Path:
    """The same data in DiffScaler's layout: per day, zstd-compressed torch dicts by hour."""
    import numcodecs
    import torch
    import xarray as xr

    codec = numcodecs.Zstd(level=3)
    directory.mkdir(parents=True, exist_ok=True)
    with xr.open_zarr(store) as ds:
        for day in range(ds.sizes["time"] // 24):
            block = ds.isel(time=slice(24 * day, 24 * day + 24))
            stamp = str(block["time"].values[0])[:10]
            for suffix, name in (("low", "coarse"), ("high_2mT", "target")):
                values = block[name].values
                payload = io.BytesIO()
                torch.save({hour: torch.from_numpy(values[hour].copy()) for hour in range(24)}, payload)
                (directory / f"{stamp}_{suffix}.pt.zst").write_bytes(codec.encode(payload.getvalue()))
    return directory


class DiffScalerPattern:
    """DiffScaler's per-sample access: decompress both day files whole, unpickle, keep one hour, crop.

    Serves the items of ``ours`` (a :class:`DownscalingDataset`): same times, same crop origins,
    same normalisation, the static fields held in memory as DiffScaler does.
    """

    def __init__(self, ours: Any, day_files: Path) -> None:
        import numcodecs
        import pandas as pd
        import xarray as xr

        self.ours, self.day_files, self.codec = ours, day_files, numcodecs.Zstd()
        with xr.open_zarr(ours.store_path) as ds:
            self.times = pd.DatetimeIndex(ds["time"].values)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ours)

    def _load(self, stamp: str, suffix: str) -> dict[int, Any]:
        import torch

        raw = self.codec.decode((self.day_files / f"{stamp}_{suffix}.pt.zst").read_bytes())
        return torch.load(io.BytesIO(raw), weights_only=True)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        k, epoch = key
        t = int(self.ours.indices[k])
        stamp, hour = str(self.times[t].date()), int(self.times[t].hour)
        y0, x0 = self.ours.crop_origin(k, epoch)
        c, f = self.ours.crop, self.ours.factor
        coarse = self._load(stamp, "low")[hour][:, y0 // f:(y0 + c) // f, x0 // f:(x0 + c) // f]
        target = self._load(stamp, "high_2mT")[hour][y0:y0 + c, x0:x0 + c]
        return {"coarse": coarse.contiguous(), "static": self.ours.static[:, y0:y0 + c, x0:x0 + c].contiguous(),
                "target": ((target - self.ours._t_mean) / self.ours._t_std).unsqueeze(0).contiguous()}


def compare(name: str, spec: tuple[Any, ...], workdir: Path) -> list[dict[str, Any]]:
    import torch
    from torch.utils.data import DataLoader

    from pdeldm.data.datasets import DownscalingDataModule, EpochSampler

    shape, n_coarse, n_static, crop, batch, days, n_batches = spec
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    store, meta = synthetic_store(directory, shape, n_coarse, n_static, days)
    day_files = write_day_files(store, directory / "diffscaler")
    loaders: dict[str, Any] = {}
    setup: dict[str, tuple[float, float]] = {}
    for mode, in_memory in (("ours_in_memory", True), ("ours_zarr", False)):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        module = DownscalingDataModule(store, meta, batch_size=batch, num_workers=0, crop=crop, seed=0,
                                       in_memory=in_memory, time_features=True)
        module.setup("fit")
        setup[mode] = (time.perf_counter() - wall0, time.process_time() - cpu0)
        loaders[mode] = module.train_dataloader()
        if in_memory:
            theirs = DiffScalerPattern(module.train_set, day_files)
            loaders["diffscaler"] = DataLoader(theirs, batch_size=batch, num_workers=0,
                                               sampler=EpochSampler(len(theirs), shuffle=True, seed=0))
            setup["diffscaler"] = (0.0, 0.0)
    iterators = {mode: iter(loader) for mode, loader in loaders.items()}
    measured: dict[str, dict[str, list[float]]] = {mode: {"wall": [], "cpu": []} for mode in loaders}
    for step in range(n_batches + 1):  # the first batch of each warms up
        for mode, iterator in iterators.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            try:
                items = next(iterator)
            except StopIteration:
                iterators[mode] = iterator = iter(loaders[mode])
                items = next(iterator)
            if step:
                measured[mode]["wall"].append(time.perf_counter() - wall0)
                measured[mode]["cpu"].append(time.process_time() - cpu0)
            assert items["target"].shape[-1] == crop
    # The same items and crops on both sides: the first batch's targets agree.
    first_ours = next(iter(loaders["ours_in_memory"]))["target"]
    first_theirs = next(iter(loaders["diffscaler"]))["target"]
    torch.testing.assert_close(first_ours, first_theirs)
    day_bytes = sum(p.stat().st_size for p in day_files.glob("*.zst")) / max(days, 1)
    rows = []
    for mode, times in measured.items():
        per_batch = median(times["cpu"])
        rows.append({"size": name, "shape": f"{shape[0]}x{shape[1]}", "crop": crop, "batch": batch, "mode": mode,
                     "batches": len(times["cpu"]), "samples_per_cpu_s": batch / per_batch,
                     "samples_per_wall_s": batch / median(times["wall"]), "setup_wall_s": setup[mode][0],
                     "setup_cpu_s": setup[mode][1], "compressed_mib_per_day": day_bytes / 2**20})
    return rows


def run(out_dir: Path, scale: str = "ci") -> list[str]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pdeldm-loader-") as tmp:
        for name, spec in SIZES[scale].items():
            rows += compare(name, spec, Path(tmp))
    write_csv(out_dir / "loader.csv", rows)
    lines = []
    for name in SIZES[scale]:
        part = {r["mode"]: r for r in rows if r["size"] == name}
        ours, zarr_, theirs = part["ours_in_memory"], part["ours_zarr"], part["diffscaler"]
        ratio = ours["samples_per_cpu_s"] / theirs["samples_per_cpu_s"]
        lines.append(
            f"loader [{name}, {ours['shape']} px, crop {ours['crop']}, batch {ours['batch']}]: ours in memory "
            f"{ours['samples_per_cpu_s']:.0f} samples/s vs DiffScaler pattern {theirs['samples_per_cpu_s']:.1f} "
            f"samples/s: {ratio:.1f}x (goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'}); "
            f"ours from zarr {zarr_['samples_per_cpu_s']:.1f} samples/s "
            f"({zarr_['samples_per_cpu_s'] / theirs['samples_per_cpu_s']:.1f}x); "
            f"in-memory load {ours['setup_wall_s']:.1f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = scale_parser(__doc__, SIZES).parse_args(argv)
    return print_run(run, args.out, args.scale)


if __name__ == "__main__":
    sys.exit(main())
