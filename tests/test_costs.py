"""Job cost records: where they live, what a job writes, how a run is summed up."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from pdeldm.costs import (JOB_COLUMNS, collect_job_costs, job_record_path, run_summary, snakemake_run_start,
                          stage_record, write_job_costs)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_rule_files_and_jobs_name_the_same_record():
    pattern = job_record_path("logs/benchmarks", "finetune", ["seed", "run"])
    assert pattern == "logs/benchmarks/finetune/{run}/{seed}.tsv"
    filled = job_record_path("logs/benchmarks", "finetune", {"seed": "2", "run": "pde_ldm_adv"}, ".stage.json")
    assert filled == pattern.format(run="pde_ldm_adv", seed="2").replace(".tsv", ".stage.json")
    assert job_record_path("logs/benchmarks/", "summary_table") == "logs/benchmarks/summary_table.tsv"


def test_stage_record_times_the_stage_and_counts_its_cpu(tmp_path: Path):
    path = tmp_path / "train" / "unet.stage.json"
    with stage_record(path, "train") as record:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:  # burn CPU in the stage
            pass
        record["threads_max"] = 2
    saved = json.loads(path.read_text())
    assert saved["rule"] == "train" and saved["threads_max"] == 2
    assert 0.0 <= saved["import_s"] <= saved["stage_end"] - saved["stage_start"]
    assert saved["process_start"] <= saved["stage_start"] < saved["stage_end"]
    assert saved["stage_cpu_s"] >= 0.19
    assert saved["max_rss_mib"] > 10


def test_stage_record_counts_imports_inside_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import builtins
    import importlib

    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(0.05)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    original = builtins.__import__
    path = tmp_path / "x.stage.json"
    with stage_record(path, "twin"):
        importlib.invalidate_caches()
        import slow_to_import  # noqa: F401 - a fresh import, timed
    assert builtins.__import__ is original  # restored
    assert json.loads(path.read_text())["import_s"] >= 0.05


def test_a_failed_stage_leaves_no_record(tmp_path: Path):
    path = tmp_path / "train.stage.json"
    with pytest.raises(RuntimeError), stage_record(path, "train"):
        raise RuntimeError("stage failed")
    assert not path.exists()


def _job(root: Path, rule: str, job: str, wall: float, cpu: str, end: float, stage: tuple[float, float] | None,
         stage_cpu: float = 0.0, import_s: float = 0.0) -> None:
    tsv = Path(job_record_path(root, rule, {"model": job} if job else {}))
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(HEADER + f"{wall}\t0:00:00\t300.5\t900\t250\t260\t1\t2\t90.0\t{cpu}\n")
    os.utime(tsv, (end, end))
    if stage is not None:
        tsv.with_suffix(".stage.json").write_text(json.dumps(
            {"rule": rule, "stage_start": stage[0], "stage_end": stage[1], "stage_cpu_s": stage_cpu,
             "process_cpu_s": stage_cpu + 1.0, "max_rss_mib": 310.0, "threads_max": 2, "import_s": import_s}))


def test_jobs_are_collected_and_the_run_summed_up(tmp_path: Path):
    root = tmp_path / "benchmarks"
    t0 = 1_800_000_000.0
    # unet runs 0..100 s, gan 100..160 s, the summary table 110..150 s; the run spans 0..170 s
    _job(root, "train", "unet", 100.0, "150.0", t0 + 100, (t0 + 5, t0 + 95), stage_cpu=140.0, import_s=10.0)
    _job(root, "train", "gan", 60.0, "55.0", t0 + 160, (t0 + 104, t0 + 158), stage_cpu=50.0)
    _job(root, "summary_table", "", 40.0, "NA", t0 + 150, None)
    jobs = collect_job_costs(root)
    assert list(jobs["job"]) == ["unet", "gan", ""]
    assert set(JOB_COLUMNS) <= set(jobs.columns)
    unet = jobs.iloc[0]
    assert unet["start"] == pytest.approx(t0) and unet["stage_s"] == pytest.approx(90.0)
    assert unet["overhead_s"] == pytest.approx(10.0)
    assert unet["cpu_s"] == pytest.approx(150.0)  # Snakemake's sample exceeds the exact 141 s here
    assert jobs.iloc[1]["cpu_s"] == pytest.approx(55.0)
    assert math.isnan(jobs.iloc[2]["cpu_s"]) and math.isnan(jobs.iloc[2]["stage_s"])

    summary = run_summary(jobs, cores=2, run_start=t0, run_end=t0 + 170)
    assert summary["jobs"] == 3 and summary["span_s"] == pytest.approx(170.0)
    # stage code ran during 5..95 and 104..158: 144 of 170 s
    assert summary["outside_stage_share"] == pytest.approx(1 - 144 / 170, abs=1e-4)
    # unet's first 10 s of stage were imports: its own work is 15..95
    assert summary["outside_model_share"] == pytest.approx(1 - 134 / 170, abs=1e-4)
    assert unet["model_s"] == pytest.approx(80.0) and summary["import_s"] == pytest.approx(10.0)
    assert summary["overhead_share_of_job_time"] == pytest.approx((10 + 6) / 160, abs=1e-4)
    assert summary["core_utilisation"] == pytest.approx((150 + 55) / (170 * 2), abs=1e-4)
    # alone: unet 0..100, gan 100..110 and 150..160 -> 120 s, at 1.5 and 55/60 cores
    assert summary["critical_alone_s"] == pytest.approx(120.0)
    assert summary["critical_alone_cpu_per_s"] == pytest.approx((100 * 1.5 + 20 * 55 / 60) / 120, abs=1e-3)
    # a later run counts only its own jobs
    later = run_summary(jobs, cores=2, run_start=t0 + 105, run_end=t0 + 170)
    assert later["jobs"] == 1


def test_the_newest_snakemake_log_marks_the_run_start(tmp_path: Path):
    assert snakemake_run_start(tmp_path) is None
    for name in ("2026-12-01T101010.000000.snakemake.log", "2026-12-02T075343.654257.snakemake.log", "notes.txt"):
        (tmp_path / name).write_text("")
    expected = pd.Timestamp("2026-12-02 07:53:43.654257").to_pydatetime().timestamp()
    assert snakemake_run_start(tmp_path) == pytest.approx(expected)


def test_write_job_costs_writes_the_table_and_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no .snakemake/log here: the run is every job on record
    root = tmp_path / "benchmarks"
    now = time.time()
    _job(root, "twin", "", 20.0, "19.0", now - 10, (now - 29, now - 11), stage_cpu=18.0)
    summary = write_job_costs(root, tmp_path / "out" / "jobs.csv", tmp_path / "out" / "summary.json", cores=0)
    table = pd.read_csv(tmp_path / "out" / "jobs.csv")
    assert list(table.columns) == JOB_COLUMNS and len(table) == 1
    assert summary["core_utilisation"] is None  # cores allotted by a scheduler: no run-wide figure
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["jobs"] == 1
