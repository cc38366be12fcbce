"""What each workflow job cost: wall time, CPU time, peak memory, and how much of it was the stage itself.

Two records per job, both under ``{logs}/benchmarks/`` at the path :func:`job_record_path` gives
(one directory level per rule, then the job's wildcard values in the order of their names):

* ``<job>.tsv``: Snakemake's ``benchmark:`` record of the job's process tree (``s`` wall seconds,
  ``max_rss`` MB, ``cpu_time`` seconds, ``mean_load`` %, ...). Snakemake samples the process every
  0.5 s for the first 15 s and every 30 s after that, so on long jobs the CPU time can miss the
  last half-minute and the peak memory a short spike;
* ``<job>.stage.json``: written by the job itself (:func:`stage_record`) from the operating system's
  exact accounting: when the process started, when the stage function (the rule's code in
  :mod:`pdeldm.stages`) started and ended, how long of that it spent importing libraries, the CPU
  seconds and peak resident memory of the process, and the most torch threads it used
  (:mod:`pdeldm.cores`).

:func:`collect_job_costs` joins them into one row per job (``results/benchmarks/jobs.csv``) and
:func:`run_summary` sums the run up: its span, the share of that span in which no stage function ran
(Snakemake, interpreter start and imports), and how busy the cores were.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and pandas load only where jobs are collected, not in every job
    import pandas as pd

#: Columns of ``jobs.csv`` (one row per job; times in seconds, memory in MiB, ``start``/``end`` Unix time).
JOB_COLUMNS = ["rule", "job", "wall_s", "cpu_s", "max_rss_mib", "mean_load", "stage_s", "import_s", "model_s",
               "overhead_s", "stage_cpu_s", "stage_max_rss_mib", "threads_max", "start", "end"]


def records_root(logs: str | os.PathLike[str]) -> str:
    """Where the job records of a run live: ``{logs}/benchmarks``."""
    return f"{str(logs).rstrip('/')}/benchmarks"


def job_record_path(root: str | os.PathLike[str], rule: str, wildcards: Mapping[str, Any] | Sequence[str] = (),
                    suffix: str = ".tsv") -> str:
    """``{root}/{rule}[/{value}...]{suffix}``, the wildcards in the order of their names.

    With a sequence of wildcard *names* (what a rule file knows) the values stay Snakemake
    placeholders (``{model}``); with a mapping (what a running job knows) they are filled in, so
    both sides name the same file.
    """
    if isinstance(wildcards, Mapping):
        parts = [str(wildcards[name]) for name in sorted(wildcards)]
    else:
        parts = ["{" + name + "}" for name in sorted(wildcards)]
    return "/".join([str(root).rstrip("/"), rule, *parts]) + suffix


@contextmanager
def stage_record(path: str | os.PathLike[str] | None, rule: str) -> Iterator[dict[str, Any]]:
    """Time the body (a job's stage function) and write its record to ``path`` afterwards.

    The yielded dict may gain entries (e.g. ``threads_max``) before the body ends. Nothing is
    written when ``path`` is None or the body raised (a failed job has no cost record).
    """
    record: dict[str, Any] = {"rule": rule, "process_start": _process_start(), "stage_start": time.time()}
    cpu_before = _cpu_seconds()
    with _timed_imports() as imports:
        yield record
    record["stage_end"] = time.time()
    record["import_s"] = round(imports["seconds"], 3)
    cpu_after = _cpu_seconds()
    record["stage_cpu_s"] = round(cpu_after - cpu_before, 3)
    record["process_cpu_s"] = round(cpu_after, 3)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    record["max_rss_mib"] = round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children) / 1024, 1)
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, sort_keys=True))
        tmp.replace(target)


@contextmanager
def _timed_imports() -> Iterator[dict[str, float]]:
    """Wall seconds spent in (outermost) ``import`` statements meanwhile, on this thread.

    The stages import their heavy libraries (torch, lightning, xarray) lazily, inside the stage
    function: this separates that start-up cost from the stage's own work.
    """
    import builtins
    import threading

    original = builtins.__import__
    local = threading.local()
    totals = {"seconds": 0.0}
    owner = threading.get_ident()

    def timed(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if threading.get_ident() != owner or getattr(local, "depth", 0):
            return original(name, globals, locals, fromlist, level)
        local.depth = 1
        start = time.perf_counter()
        try:
            return original(name, globals, locals, fromlist, level)
        finally:
            totals["seconds"] += time.perf_counter() - start
            local.depth = 0

    builtins.__import__ = timed
    try:
        yield totals
    finally:
        builtins.__import__ = original


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _process_start() -> float:
    """Unix time at which this process started (from /proc; now where that cannot be read)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + start_ticks / ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan  # Snakemake writes NA for jobs shorter than its first sample


def read_job(tsv: Path, root: Path) -> dict[str, Any]:
    """One ``jobs.csv`` row from a job's Snakemake benchmark TSV and (if present) its stage record."""
    import pandas as pd

    relative = tsv.relative_to(root).with_suffix("")
    rule, job = relative.parts[0], "/".join(relative.parts[1:])
    bench = pd.read_csv(tsv, sep="\t").iloc[-1]  # the last repeat, if a rule repeats its benchmark
    wall = _number(bench["s"])
    end = tsv.stat().st_mtime  # Snakemake writes the record right after the job's process ended
    row: dict[str, Any] = {"rule": rule, "job": job, "wall_s": wall, "cpu_s": _number(bench["cpu_time"]),
                           "max_rss_mib": _number(bench["max_rss"]), "mean_load": _number(bench["mean_load"]),
                           "stage_s": math.nan, "import_s": math.nan, "model_s": math.nan,
                           "overhead_s": math.nan, "stage_cpu_s": math.nan,
                           "stage_max_rss_mib": math.nan, "threads_max": math.nan,
                           "start": end - wall, "end": end}
    stage = tsv.with_suffix(".stage.json")
    if stage.exists():
        record = json.loads(stage.read_text())
        stage_s = float(record["stage_end"]) - float(record["stage_start"])
        import_s = float(record.get("import_s", 0.0))
        row.update(stage_s=stage_s, import_s=import_s, model_s=max(stage_s - import_s, 0.0),
                   overhead_s=max(wall - stage_s, 0.0), stage_cpu_s=record["stage_cpu_s"],
                   stage_max_rss_mib=record["max_rss_mib"], threads_max=record.get("threads_max", math.nan),
                   stage_start=record["stage_start"], stage_end=record["stage_end"])
        # Snakemake's sampled CPU time can miss the end of a long job; the process's own is exact.
        exact = float(record.get("process_cpu_s", math.nan))
        row["cpu_s"] = exact if math.isnan(row["cpu_s"]) else max(row["cpu_s"], exact)
    return row


def collect_job_costs(root: str | os.PathLike[str]) -> pd.DataFrame:
    """Every job record under ``root`` (``{logs}/benchmarks``) as a table, earliest start first."""
    import pandas as pd

    root = Path(root)
    rows = [read_job(tsv, root) for tsv in sorted(root.rglob("*.tsv"))]
    frame = pd.DataFrame(rows, columns=[*JOB_COLUMNS, "stage_start", "stage_end"])
    return frame.sort_values(["start", "rule", "job"], ignore_index=True)


def _union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def snakemake_run_start(log_dir: str | os.PathLike[str] = ".snakemake/log") -> float | None:
    """Unix time at which the newest Snakemake run in this working directory started.

    Snakemake names each run's log after its local start time (``2026-12-02T075343.654257.snakemake.log``);
    a job calls this during its own run, so the newest log is that run's. None without one.
    """
    from datetime import datetime

    starts = []
    for log in Path(log_dir).glob("*.snakemake.log"):
        try:
            starts.append(datetime.strptime(log.name.split(".snakemake.log")[0], "%Y-%m-%dT%H%M%S.%f").timestamp())
        except ValueError:
            continue
    return max(starts) if starts else None


def run_summary(jobs: pd.DataFrame, cores: int, run_start: float | None = None,
                run_end: float | None = None) -> dict[str, Any]:
    """The totals of one run from the job table (the jobs that started within ``[run_start, run_end]``).

    * ``span_s``: ``run_start`` (else the first job's start) to ``run_end`` (else the last job's end);
    * ``outside_stage_share``: share of the span in which no stage function was running (Snakemake
      between jobs, interpreter start, imports, reading the configuration);
    * ``outside_model_share``: the same, with the stages' imports counted as outside (the stages
      import torch, lightning and xarray first, so their own work is the rest of their interval);
    * ``overhead_share_of_job_time``: summed (job wall - stage) over summed job wall;
    * ``core_utilisation``: CPU seconds of all jobs over ``span_s x cores`` (None without ``cores``);
    * ``critical_alone_s`` and ``critical_alone_cpu_per_s``: time in which exactly one job ran, and
      the cores that job used on average then (1 = one core idled).
    """
    import numpy as np

    if run_start is not None:
        jobs = jobs[jobs["start"] >= run_start - 1.0]  # records of earlier runs are kept, not counted
    if jobs.empty:
        return {"jobs": 0, "cores": int(cores)}
    start = float(jobs["start"].min()) if run_start is None else float(run_start)
    end = float(jobs["end"].max()) if run_end is None else max(float(run_end), float(jobs["end"].max()))
    span = max(end - start, 1e-9)
    staged = jobs.dropna(subset=["stage_s"])
    in_stage = _union_seconds(list(zip(staged["stage_start"], staged["stage_end"])))
    # the stages import their libraries first: their own work is the rest of the stage's interval
    in_model = _union_seconds(list(zip(staged["stage_start"] + staged["import_s"].fillna(0.0), staged["stage_end"])))
    # time in which exactly one job ran, and the CPU those lone jobs used meanwhile
    alone_s, alone_cpu = 0.0, 0.0
    edges = np.unique(np.concatenate([jobs["start"].to_numpy(), jobs["end"].to_numpy()]))
    for lo, hi in zip(edges[:-1], edges[1:]):
        running = jobs[(jobs["start"] <= lo) & (jobs["end"] >= hi)]
        if len(running) == 1:
            job = running.iloc[0]
            alone_s += hi - lo
            if job["wall_s"] > 0 and np.isfinite(job["cpu_s"]):
                alone_cpu += (hi - lo) * job["cpu_s"] / job["wall_s"]
    return {
        "jobs": int(len(jobs)),
        "cores": int(cores),
        "run_start": round(start, 3),
        "run_end": round(end, 3),
        "span_s": round(span, 1),
        "job_wall_s": round(float(jobs["wall_s"].sum()), 1),
        "job_cpu_s": round(float(jobs["cpu_s"].sum()), 1),
        "stage_s": round(float(staged["stage_s"].sum()), 1),
        "outside_stage_share": round(1.0 - in_stage / span, 4),
        "outside_model_share": round(1.0 - in_model / span, 4),
        "import_s": round(float(staged["import_s"].fillna(0.0).sum()), 1),
        "overhead_share_of_job_time": round(float(staged["overhead_s"].sum() / max(staged["wall_s"].sum(), 1e-9)), 4),
        "core_utilisation": round(float(jobs["cpu_s"].sum()) / (span * int(cores)), 4) if int(cores) > 0 else None,
        "critical_alone_s": round(alone_s, 1),
        "critical_alone_cpu_per_s": round(alone_cpu / alone_s, 3) if alone_s else None,
        "max_rss_mib": round(float(jobs["max_rss_mib"].max()), 1),
    }


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs, wall, CPU and stage seconds summed per rule and the largest peak memory, by wall time."""
    grouped = jobs.groupby("rule").agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                      stage_s=("stage_s", "sum"), import_s=("import_s", "sum"),
                                      overhead_s=("overhead_s", "sum"),
                                      max_rss_mib=("max_rss_mib", "max"), threads_max=("threads_max", "max"))
    return grouped.sort_values("wall_s", ascending=False)


def write_job_costs(root: str | os.PathLike[str], out_csv: str | os.PathLike[str],
                    out_summary: str | os.PathLike[str], cores: int) -> dict[str, Any]:
    """``jobs.csv`` (every record under ``root``) and the summary of the current run (JSON); returns it.

    Called by a job of the run: the run started with the newest Snakemake log of the working
    directory and ends now.
    """
    from pdeldm.io import atomic_output, write_json

    jobs = collect_job_costs(root)
    with atomic_output(out_csv) as tmp:
        jobs[JOB_COLUMNS].to_csv(tmp, index=False, float_format="%.3f")
    summary = run_summary(jobs, cores, run_start=snakemake_run_start(), run_end=time.time())
    write_json(out_summary, summary)
    return summary
