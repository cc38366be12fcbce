"""The benchmark scripts run (tiny sizes) and write their CSV columns; speed and memory targets
are theirs to report, never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def test_run_all_prints_a_line_per_comparison_and_writes_the_csvs(tmp_path: Path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "run_all"), "--scale", "tiny", "--out", str(tmp_path),
                             "--only", "loader", "pde_overhead", "sampler",
                             "--workdir", str(tmp_path / "no_run")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "threads" in lines[0]
    loader = next(line for line in lines if line.startswith("loader ["))
    assert "DiffScaler pattern" in loader and "x (goal >= 10x" in loader
    overhead = next(line for line in lines if line.startswith("pde overhead ["))
    for form in ("flux_ratio", "advection_diffusion", "advection_diffusion_matched"):
        assert form in overhead
    # the sampler benchmark needs a trained LDM: in an empty work directory it says so
    sampler = next(line for line in lines if line.startswith("sampler"))
    assert "skipped: no trained LDM checkpoint" in sampler, sampler
    assert (tmp_path / "summary.txt").read_text().splitlines() == lines

    table = pd.read_csv(tmp_path / "loader.csv")
    assert {"ours_in_memory", "ours_zarr", "diffscaler"} == set(table["mode"])
    assert {"samples_per_cpu_s", "samples_per_wall_s", "setup_wall_s", "crop", "batch"} <= set(table.columns)
    assert (table["samples_per_cpu_s"] > 0).all()
    table = pd.read_csv(tmp_path / "pde_overhead.csv")
    assert {"ldm", "control", "flux_ratio", "advection_diffusion", "advection_diffusion_matched"} == set(table["variant"])
    assert {"cpu_s_per_step", "wall_s_per_step", "ratio_to_ldm", "ratio_to_control"} <= set(table.columns)
    assert table.loc[table["variant"] == "ldm", "ratio_to_ldm"].item() == 1.0


def test_scaling_points_measure_time_and_memory():
    import bench_scaling

    train = bench_scaling.train_point(32, 1, 1)
    assert train["cpu_s_per_step"] > 0 and train["peak_rss_mib"] >= train["rss_model_mib"] > 0
    predict = bench_scaling.predict_points([32])
    assert predict[0]["cpu_s_per_sample"] > 0 and predict[0]["sampler_steps"] >= 1
    regrid = bench_scaling.regrid_point(1, (32, 32), 8000.0, 4)
    assert regrid["hours"] == 24 and regrid["tracemalloc_peak_mib"] > 0 and regrid["peak_rss_mib"] > 0
    assert bench_scaling.fit_exponent([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)


def test_workflow_benchmark_says_when_there_is_no_finished_run(tmp_path: Path):
    import bench_workflow

    lines = bench_workflow.run(tmp_path / "out", workdir=tmp_path)
    assert len(lines) == 1 and "no finished default run" in lines[0] and "jobs]:" in lines[0]
    table = pd.read_csv(tmp_path / "out" / "workflow.csv")
    assert table.loc[0, "planned_jobs"] > 20 and table.loc[0, "wall_s"] > 0


def test_scaling_lines_fit_the_exponents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The lines and CSVs of bench_scaling from known points (no model run): linear costs give p = 1."""
    import bench_scaling

    def child(args: list[str]) -> dict:
        if args[0] == "--predict":
            return {"rows": [{"size": s, "sampler_steps": 20, "cpu_s_per_sample": 1e-4 * s * s,
                              "wall_s_per_sample": 1e-4 * s * s, "peak_rss_mib": 500.0} for s in map(int, args[1:])]}
        size, batch = int(args[1]), int(args[2])
        cost = 1e-5 * size * size * batch
        return {"size": size, "batch": batch, "cpu_s_per_step": cost, "wall_s_per_step": cost,
                "rss_model_mib": 700.0, "peak_rss_mib": 700.0 + 1e-3 * size * size, "step_memory_mib": 1e-3 * size * size}

    def regrid(days: int, grid: tuple[int, int], spacing_m: float, n_vars: int) -> dict:
        return {"days": days, "hours": 24 * days, "grid": f"{grid[0]}x{grid[1]}", "variables": n_vars,
                "seconds": 1.0 + 0.5 * days, "cpu_s": 1.0 + 0.5 * days, "peak_rss_mib": 300.0,
                "tracemalloc_peak_mib": 30.0, "coarse_result_mib": 0.1 * days}

    monkeypatch.setattr(bench_scaling, "_child", child)
    monkeypatch.setattr(bench_scaling, "regrid_point", regrid)
    lines = bench_scaling.run(tmp_path, "ci")
    assert len(lines) == 4
    assert "time ~ pixels^1.00 (256->512 px: ^1.00), step memory ~ pixels^1.00" in lines[0]
    assert "time ~ batch^1.00" in lines[1] and "time ~ pixels^1.00" in lines[2]
    assert "a fixed 1.0 s of set-up, then 0.50 s per day: linear" in lines[3] and "(bounded)" in lines[3]
    for name in ("scaling_train", "scaling_predict", "scaling_regrid"):
        assert len(pd.read_csv(tmp_path / f"{name}.csv")) > 0
