"""What the workflow itself costs: planning (``snakemake -n``), time outside stage code, idle cores.

* ``snakemake -n`` on a finished default run (the repository's own ``results/`` after
  ``make pipeline``, or ``--workdir``): goal at most 5 s. Also the dry run of the default DAG
  with nothing built yet (every job planned), which needs no finished run;
* from the finished run's cost records (``results/benchmarks/jobs_summary.json``, rule
  ``job_costs``): the share of the run's wall time in which no stage code ran, the share of the
  jobs' own time spent starting up, how busy the cores were, and how many cores a job used while
  it ran alone (the torch jobs take the run's free cores, :mod:`pdeldm.cores`).

    python benchmarks/bench_workflow.py [--workdir .] [--out results/benchmarks]
    python benchmarks/bench_workflow.py --workdir RUN --configfile config/config.yaml config/ci.yaml RUN/paths.yaml
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_line, median, write_csv  # noqa: E402

GOAL_DRY_RUN_S = 5.0


def dry_run(workdir: Path, configfiles: list[Path], repeats: int = 2) -> dict[str, Any]:
    """Wall and CPU seconds of ``snakemake -n`` in ``workdir`` (median of ``repeats``), and its verdict."""
    walls, cpus, out = [], [], ""
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                               "--directory", str(workdir), "-n", "--configfile", *map(str, configfiles)],
                              capture_output=True, text=True, cwd=workdir)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"snakemake -n in {workdir} failed:\n{out[-3000:]}")
    planned = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            planned = int(parts[1])
    return {"wall_s": median(walls), "cpu_s": median(cpus), "planned_jobs": planned,
            "nothing_to_do": "Nothing to be done" in out}


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f}%"


def run(out_dir: Path, scale: str = "ci", workdir: Path = ROOT,  # noqa: ARG001 - one size
        configfiles: list[Path] | None = None) -> list[str]:
    """``configfiles``: the configuration of the finished run in ``workdir`` (default: config/config.yaml)."""
    rows, lines = [], []
    configfiles = configfiles or [ROOT / "config" / "config.yaml"]
    label = "default" if configfiles == [ROOT / "config" / "config.yaml"] else "+".join(p.stem for p in configfiles)
    with tempfile.TemporaryDirectory(prefix="pdeldm-dry-") as tmp:
        paths = Path(tmp) / "paths.yaml"
        paths.write_text(f"paths: {{static_source: {ROOT / 'data' / 'static' / 'eur11_static.nc'}}}\n")
        fresh = dry_run(Path(tmp), [ROOT / "config" / "config.yaml", paths])
    rows.append({"what": "dry run, default DAG, nothing built", **fresh})
    summary_path = workdir / "results" / "benchmarks" / "jobs_summary.json"
    if summary_path.exists():
        finished = dry_run(workdir, configfiles)
        rows.append({"what": f"dry run, finished {label} run in {workdir}", **finished})
        verdict = "met" if finished["wall_s"] <= GOAL_DRY_RUN_S else "NOT met"
        lines.append(f"workflow dry run [finished {label} run]: {finished['wall_s']:.1f} s wall, {finished['cpu_s']:.1f} s CPU, "
                     f"{finished['planned_jobs']} jobs to run (goal <= {GOAL_DRY_RUN_S:.0f} s: {verdict}); "
                     f"nothing built: {fresh['wall_s']:.1f} s for {fresh['planned_jobs']} jobs "
                     f"({finished['wall_s'] / fresh['wall_s']:.2f}x)")
        summary = json.loads(summary_path.read_text())
        rows.append({"what": f"finished {label} run", **{k: v for k, v in summary.items() if not isinstance(v, dict)}})
        alone = summary.get("critical_alone_cpu_per_s")
        utilisation = summary.get("core_utilisation")
        lines.append(
            f"workflow overhead [finished {label} run, {summary['jobs']} jobs, {summary['span_s'] / 60:.1f} min on "
            f"{summary['cores']} cores]: no stage code ran in {100 * summary['outside_stage_share']:.1f}% of the run's "
            f"wall time, no stage's own work (imports counted outside) in {_percent(summary.get('outside_model_share'))}; "
            f"start-up is {100 * summary['overhead_share_of_job_time']:.1f}% of the jobs' own time; "
            f"cores busy {'–' if utilisation is None else f'{100 * utilisation:.0f}%'}; a job running alone "
            f"({summary['critical_alone_s'] / 60:.1f} min) used {'–' if alone is None else f'{alone:.2f}'} cores")
    else:
        verdict = "met" if fresh["wall_s"] <= GOAL_DRY_RUN_S else "NOT met"
        lines.append(f"workflow dry run [nothing built, {fresh['planned_jobs']} jobs]: {fresh['wall_s']:.1f} s wall, "
                     f"{fresh['cpu_s']:.1f} s CPU (goal <= {GOAL_DRY_RUN_S:.0f} s on a finished run: {verdict} here); "
                     f"no finished default run in {workdir} (no {summary_path.relative_to(workdir)}): run "
                     "`make pipeline` there for the dry run on a finished run, the time outside stage code and the "
                     "core utilisation")
    write_csv(out_dir / "workflow.csv", rows)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where a finished run lives")
    parser.add_argument("--configfile", type=Path, nargs="+", help="its configuration (default: config/config.yaml)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args(argv)
    print(machine_line())
    configfiles = [p.resolve() for p in args.configfile] if args.configfile else None
    for line in run(args.out, "ci", args.workdir.resolve(), configfiles):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
