"""Shared pieces of the benchmarks: models of a configuration with random weights, batches, timing,
peak memory, the CSV and the one printed line per comparison.

Every benchmark module has ``run(out_dir, scale) -> list[str]``: it writes ``<out_dir>/<name>.csv``
and returns the lines to print, each with a ratio of two things measured side by side in the same
process (interleaved, so that the load of a shared machine hits both alike).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Sizes: ``ci`` finishes everything within minutes on two cores; ``full`` is what a release reports.
SCALES = ("ci", "full")


def load_cfg(name: str = "config") -> dict[str, Any]:
    """``config/config.yaml`` (``default``) or it overlaid with ``config/paper.yaml`` (``paper``), validated."""
    from pdeldm.config import load_config

    files = [ROOT / "config" / "config.yaml"] + ([ROOT / "config" / "paper.yaml"] if name == "paper" else [])
    return load_config(*files)


def example_coefficients() -> dict[str, Any]:
    """Identified-equation coefficients of the twin's order of magnitude (shapes are what matter)."""
    from pdeldm.physics.identified_pde import SOURCE_TERMS

    return {"kappa": 2000.0, "tau_s": 3.0 * 3600, "source": {k: 1e-5 for k in SOURCE_TERMS},
            "highpass_cells": 4, "margin_cells": 6, "residual_std": 1e-4}


def build(name: str, cfg: dict[str, Any], shape: tuple[int, int] = (672, 576), dx_m: float = 2200.0,
          **pde: Any) -> Any:
    """Model ``name`` of ``cfg`` with random weights (latent scale 1); ``pde`` overrides ``models.pde_ldm.pde``."""
    import torch

    from pdeldm.models.registry import config_hparams, model_class, nominal_meta

    cfg = copy.deepcopy(cfg)
    if name == "pde_ldm":
        cfg["models"]["pde_ldm"].setdefault("pde", {}).update(pde)
        if cfg["models"]["pde_ldm"]["pde"].get("form", "flux_ratio") != "flux_ratio":
            cfg["models"]["pde_ldm"]["pde"]["coefficients"] = example_coefficients()
    meta = nominal_meta(cfg, shape, dx_m)
    model = model_class(name)(config_hparams(name, cfg, meta))
    if hasattr(model, "latent_scale"):
        with torch.no_grad():
            model.latent_scale.fill_(1.0)
    return model


def random_batch(model: Any, batch: int, size: int, seed: int = 0) -> dict[str, Any]:
    """A batch of ``size`` x ``size`` fine pixels with every field a PDE form may read."""
    import torch

    spec = model.spec
    g = torch.Generator().manual_seed(seed)
    f = spec.factor
    smooth = torch.randn(batch, 1, size, size, generator=g).cumsum(-1).cumsum(-2) / size
    return {
        "coarse": torch.randn(batch, spec.n_coarse, size // f, size // f, generator=g),
        "static": torch.randn(batch, spec.n_static, size, size, generator=g),
        "target": smooth,
        "target_prev": smooth + 0.01 * torch.randn(batch, 1, size, size, generator=g),
        "target_next": smooth - 0.01 * torch.randn(batch, 1, size, size, generator=g),
        "wind": 5.0 * torch.randn(batch, 2, size, size, generator=g),
        "phases": torch.rand(batch, 2, generator=g),
        "surface": torch.stack([1000 * torch.rand(batch, size, size, generator=g),
                                torch.rand(batch, size, size, generator=g),
                                10 + torch.rand(batch, size, size, generator=g)], dim=1),
    }


def training_step(model: Any) -> Callable[[dict[str, Any], int], float]:
    """One optimiser step of ``model``'s own training loss (its trainable parameters only)."""
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = model.make_optimizer(params)

    def step(batch: dict[str, Any], seed: int) -> float:
        torch.manual_seed(seed)  # the same noise level and noise for every model at this step
        if hasattr(model, "_losses"):
            loss = model._losses(batch, model.denoiser)[0]
        elif hasattr(model, "diffusion_terms"):
            loss = model.diffusion_terms(batch, model.denoiser)["loss"]
        else:
            loss = model.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def interleaved_times(steps: dict[str, Callable[[int], Any]], repeats: int,
                      warmup: int = 1) -> dict[str, dict[str, list[float]]]:
    """Seconds of each callable (called with the repeat index), round-robin: A B C A B C ...

    Returns ``name -> {"wall": [...], "cpu": [...]}``. The CPU seconds of the process are what the
    lines compare: on a machine shared with other work the wall time of a step depends on what else
    runs, its CPU time hardly does (with one torch thread, CPU time is the step's wall time on an
    idle machine).
    """
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steps}
    for repeat in range(warmup + repeats):
        for name, step in steps.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            step(repeat)
            if repeat >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall0)
                times[name]["cpu"].append(time.process_time() - cpu0)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB) since it started or since :func:`reset_peak_rss`."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    current = _status_mib("VmRSS")
    return current if current is not None else peak_rss_mib()


def reset_peak_rss() -> bool:
    """Start a new peak (Linux: ``/proc/self/clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """``p`` of the least-squares fit ``value ~ size^p`` in log-log."""
    import numpy as np

    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0])


def tail_exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """``p`` between the two largest sizes: how the cost grows once fixed costs no longer dominate."""
    return math.log(values[-1] / values[-2]) / math.log(sizes[-1] / sizes[-2])


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Rows (dicts with the same keys) -> CSV; numbers rounded to 6 significant digits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def machine_line() -> str:
    """Cores, torch threads and the load average, for the record of a noisy shared machine."""
    import torch

    load = os.getloadavg()
    return (f"machine: {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, no GPU used")


def scale_parser(doc: str, scales: Sequence[str]) -> argparse.ArgumentParser:
    """The command line of a benchmark run on its own: ``--scale`` and ``--out``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(scales), default="ci")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    return parser


def print_run(run: Callable[[Path, str], list[str]], out: Path, scale: str) -> int:
    """Run one benchmark as ``benchmarks/run_all`` would and print its lines after the machine's."""
    print(machine_line())
    for line in run(out, scale):
        print(line, flush=True)
    return 0
