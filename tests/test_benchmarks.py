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
                             "--only", "loader", "pde_overhead", "sampler"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "threads" in lines[0]
    loader = next(line for line in lines if line.startswith("loader ["))
    assert "DiffScaler pattern" in loader and "x (goal >= 10x" in loader
    overhead = next(line for line in lines if line.startswith("pde overhead ["))
    for form in ("flux_ratio", "advection_diffusion", "advection_diffusion_matched"):
        assert form in overhead
    # the sampler benchmark is collected once its module exists
    sampler = next(line for line in lines if line.startswith("sampler"))
    assert ("not measured" in sampler) != (BENCHMARKS / "bench_sampler.py").exists()
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
