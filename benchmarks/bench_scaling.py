"""How the cost grows: training step and prediction against field size and batch, regridding against hours.

* training: one PDE-LDM fine-tuning step (``config/config.yaml`` networks, the study's flux-ratio
  form, decode included) on square fields of 64 ... 512 px, and at 64 px against the batch size;
  each point in its own process, whose peak resident memory above the model's is reported;
* prediction: one sample of the LDM (the configured DDIM steps, decode included) per field size;
* regridding: ERA5 predictors onto the fine grid and back onto the aligned coarse grid the way the
  store does it (one day per block, :mod:`bench_regrid_memory`), for a day, a week and a month
  of hours, each in its own process: time should grow with the hours, the working memory of the
  regridding (Python and NumPy allocations, per day block) should not.

Each line gives the fitted exponent ``p`` of ``cost ~ size^p`` (size: pixels of the field, samples
of the batch, hours): ``p`` = 1 is linear. Times are CPU seconds of the process (robust on a shared
machine; wall seconds are in the CSVs).

    python benchmarks/bench_scaling.py [--scale ci|full] [--out results/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (build, current_rss_mib, fit_exponent, load_cfg, median, peak_rss_mib,  # noqa: E402
                    print_run, random_batch, reset_peak_rss, scale_parser, tail_exponent, training_step, write_csv)

HERE = Path(__file__).resolve().parent
#: per scale: training (sizes, batch, steps), batches at 64 px, prediction sizes, regrid (days, grid, spacing m)
SIZES: dict[str, dict[str, Any]] = {
    "ci": {"train_sizes": [64, 128, 256, 512], "train_batch": 2, "steps": 2, "batches": [1, 4, 16],
           "predict_sizes": [64, 128, 256, 512], "regrid_days": [1, 7, 31], "regrid_grid": (128, 112),
           "regrid_spacing_m": 8000.0, "regrid_vars": 4},
    "full": {"train_sizes": [64, 128, 256, 512], "train_batch": 4, "steps": 4, "batches": [1, 4, 16, 64],
             "predict_sizes": [64, 128, 256, 512], "regrid_days": [1, 7, 31], "regrid_grid": (672, 576),
             "regrid_spacing_m": 2000.0, "regrid_vars": 14},
    "tiny": {"train_sizes": [32, 64], "train_batch": 1, "steps": 1, "batches": [1, 2], "predict_sizes": [32, 64],
             "regrid_days": [1, 2], "regrid_grid": (32, 32), "regrid_spacing_m": 8000.0, "regrid_vars": 4},
}


def _child(args: list[str]) -> dict[str, Any]:
    """Run this script with ``args`` in a fresh process; its last output line is a JSON record."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_scaling {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_point(size: int, batch: int, steps: int) -> dict[str, Any]:
    """(in a child process) CPU seconds of one PDE-LDM step and its peak memory above the resident
    model, batch and optimiser state."""
    import torch

    torch.manual_seed(0)
    model = build("pde_ldm", load_cfg("config"), form="flux_ratio")
    data = random_batch(model, batch, size)
    step = training_step(model)
    step(data, 0)  # warm-up, and the optimiser's state exists from here on
    before = current_rss_mib()
    reset_peak_rss()
    walls, cpus = [], []
    for repeat in range(1, steps + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        step(data, repeat)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return {"size": size, "batch": batch, "cpu_s_per_step": median(cpus), "wall_s_per_step": median(walls),
            "rss_model_mib": before, "peak_rss_mib": peak_rss_mib(), "step_memory_mib": peak_rss_mib() - before}


def predict_points(sizes: list[int]) -> list[dict[str, Any]]:
    """(in a child process) CPU seconds of one LDM sample per field size."""
    import torch

    cfg = load_cfg("config")
    model = build("ldm", cfg).eval()
    rows = []
    for size in sizes:
        data = random_batch(model, 1, size)
        inputs = {"coarse": data["coarse"], "static": data["static"]}
        for repeat in range(2):  # the first call warms up
            wall0, cpu0 = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                model.generate(inputs, members=1, generators=[torch.Generator().manual_seed(repeat)])
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rows.append({"size": size, "sampler_steps": int(model.sampler_steps), "cpu_s_per_sample": cpu,
                     "wall_s_per_sample": wall, "peak_rss_mib": peak_rss_mib()})
    return rows


def regrid_point(days: int, grid: tuple[int, int], spacing_m: float, n_vars: int) -> dict[str, Any]:
    """Regridding ``days`` of hourly predictors in a child of bench_regrid_memory (its own process)."""
    proc = subprocess.run([sys.executable, str(HERE / "bench_regrid_memory.py"), "--child", "--days", str(days),
                           "--ny", str(grid[0]), "--nx", str(grid[1]), "--spacing-m", str(spacing_m),
                           "--vars", str(n_vars)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_regrid_memory --days {days} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"days": days, "hours": 24 * days, "grid": f"{grid[0]}x{grid[1]}", "variables": n_vars,
            "seconds": record["seconds"], "cpu_s": record.get("cpu_s", record["seconds"]),
            "peak_rss_mib": record["ru_maxrss_mib"], "tracemalloc_peak_mib": record["tracemalloc_peak_mib"],
            "coarse_result_mib": record["coarse_result_mib"]}


def run(out_dir: Path, scale: str = "ci") -> list[str]:
    s = SIZES[scale]
    train = [_child(["--train", str(size), str(s["train_batch"]), str(s["steps"])]) for size in s["train_sizes"]]
    batches = [_child(["--train", str(s["train_sizes"][0]), str(b), str(s["steps"])]) for b in s["batches"]]
    predict = _child(["--predict", *map(str, s["predict_sizes"])])["rows"]
    regrid = [regrid_point(d, s["regrid_grid"], s["regrid_spacing_m"], s["regrid_vars"]) for d in s["regrid_days"]]
    write_csv(out_dir / "scaling_train.csv", [dict(r, varied="size") for r in train]
              + [dict(r, varied="batch") for r in batches])
    write_csv(out_dir / "scaling_predict.csv", predict)
    write_csv(out_dir / "scaling_regrid.csv", regrid)

    pixels = [r["size"] ** 2 for r in train]
    train_s = [r["cpu_s_per_step"] for r in train]
    train_mib = [max(r["step_memory_mib"], 1.0) for r in train]
    predict_pixels = [r["size"] ** 2 for r in predict]
    predict_s = [r["cpu_s_per_sample"] for r in predict]
    hours = [r["hours"] for r in regrid]
    regrid_s = [r["cpu_s"] for r in regrid]
    per_day = (regrid_s[-1] - regrid_s[0]) / (regrid[-1]["days"] - regrid[0]["days"])
    working = [r["tracemalloc_peak_mib"] for r in regrid]
    lines = [
        f"scaling training step [PDE-LDM, batch {s['train_batch']}]: "
        + ", ".join(f"{r['size']} px {r['cpu_s_per_step']:.2f} s {r['step_memory_mib']:.0f} MiB" for r in train)
        + f"; time ~ pixels^{fit_exponent(pixels, train_s):.2f} ({train[-2]['size']}->{train[-1]['size']} px: "
        f"^{tail_exponent(pixels, train_s):.2f}), step memory ~ pixels^{fit_exponent(pixels, train_mib):.2f} "
        f"(^{tail_exponent(pixels, train_mib):.2f})",
        f"scaling training step [PDE-LDM, {s['train_sizes'][0]} px]: "
        + ", ".join(f"batch {r['batch']} {r['cpu_s_per_step']:.2f} s {r['step_memory_mib']:.0f} MiB" for r in batches)
        + f"; time ~ batch^{fit_exponent(s['batches'], [r['cpu_s_per_step'] for r in batches]):.2f}, per sample "
        f"{batches[0]['cpu_s_per_step'] / batches[0]['batch']:.3f} -> {batches[-1]['cpu_s_per_step'] / batches[-1]['batch']:.3f} s",
        f"scaling prediction [LDM, {predict[0]['sampler_steps']} DDIM steps, 1 member]: "
        + ", ".join(f"{r['size']} px {r['cpu_s_per_sample']:.2f} s/sample" for r in predict)
        + f"; time ~ pixels^{fit_exponent(predict_pixels, predict_s):.2f} ({predict[-2]['size']}->{predict[-1]['size']} "
        f"px: ^{tail_exponent(predict_pixels, predict_s):.2f})",
        f"scaling regrid [{regrid[0]['grid']}, {regrid[0]['variables']} predictors, day blocks]: "
        + ", ".join(f"{r['hours']} h {r['cpu_s']:.1f} s {r['tracemalloc_peak_mib']:.0f} MiB" for r in regrid)
        + f"; time ~ hours^{fit_exponent(hours, regrid_s):.2f} (a fixed {regrid_s[0] - per_day:.1f} s of set-up, then "
        f"{per_day:.2f} s per day: linear); working memory {working[-1] / working[0]:.2f}x from {hours[0]} to "
        f"{hours[-1]} h ({'bounded' if working[-1] <= 1.25 * working[0] else 'GROWS'}); process peak "
        f"{regrid[0]['peak_rss_mib']:.0f} -> {regrid[-1]['peak_rss_mib']:.0f} MiB (holds the synthetic input whole)",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = scale_parser(__doc__, SIZES)
    parser.add_argument("--train", nargs=3, type=int, metavar=("SIZE", "BATCH", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--predict", nargs="+", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train:
        print(json.dumps(train_point(*args.train)))
        return 0
    if args.predict:
        print(json.dumps({"rows": predict_points(args.predict)}))
        return 0
    return print_run(run, args.out, args.scale)


if __name__ == "__main__":
    sys.exit(main())
