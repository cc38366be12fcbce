"""The CI configuration through the `slurm` profile on a real single-node Slurm.

The cluster is the one `.ci/run` started (its state directory in ``PDELDM_TEST_SLURM``), or one
that this module starts with
``tests/slurm/local_slurm.sh`` (root and Debian's slurm-wlm + munge needed). Every job goes
through `sbatch` and runs under slurmd (the plugin's jobstep, `srun`), and the metrics must equal
those of the session's local run byte for byte.

The profile is used as a cluster user would, plus what this test cluster needs: the site settings
come from the environment (PDELDM_SLURM_*); job status from `squeue`, as the cluster has no
accounting database; threads as in the local run, because torch's CPU kernels may sum in another
order with another thread count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ci_workflow import ROOT, run_ci_snakemake, write_paths_overlay

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "tests" / "slurm" / "local_slurm.sh"
REQUIRE = "PDELDM_REQUIRE_SLURM"  # set by .ci/run: there a cluster that does not answer is a failure
# A sub-DAG that still has every kind of job (data, the equation's identification, CPU and GPU
# trainings, a fine-tuning, predictions, evaluations), so the cluster run stays a few minutes.
MODELS = ["interpolation", "unet", "ldm", "pde_ldm_adv/seed1"]


def _slurm_env(state: Path) -> dict[str, str]:
    """The environment of a Slurm client of the cluster in ``state`` (its wrappers first on PATH)."""
    return dict(os.environ, PATH=f"{state / 'bin'}{os.pathsep}{os.environ['PATH']}", SLURM_CONF=str(state / "slurm.conf"))


def _cluster_answers(state: Path) -> bool:
    env = _slurm_env(state)
    try:
        states = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=env, capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return states.returncode == 0 and bool({"idle", "mix", "alloc"} & set(states.stdout.split()))


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE):
        pytest.fail(f"{REQUIRE} is set but Slurm cannot be used: {reason}")
    pytest.skip(f"no Slurm for the SLURM profile test: {reason}")


@pytest.fixture(scope="module")
def slurm_state(tmp_path_factory: pytest.TempPathFactory):
    """State directory of a cluster that answers: the one .ci/run started, else one started here."""
    existing = os.environ.get("PDELDM_TEST_SLURM")
    if existing and _cluster_answers(Path(existing)):
        yield Path(existing)
        return
    if os.geteuid() != 0:
        _unavailable("starting slurmd needs root (or start one with tests/slurm/local_slurm.sh, set PDELDM_TEST_SLURM)")
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        _unavailable(f"tests/slurm/local_slurm.sh could not start it: {started.stderr.strip()[-2000:]}")
    try:
        yield state
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def slurm_run(slurm_state: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("ci_workflow_slurm")
    write_paths_overlay(workdir)
    env = {k: v for k, v in _slurm_env(slurm_state).items() if not k.startswith("PDELDM_SLURM_")}
    env.update(PDELDM_SLURM_PARTITION="debug", PDELDM_SLURM_GPU_PARTITION="debug",
               PDELDM_SLURM_ACCOUNT="pdeldm-ci", HOME=str(workdir))
    started = time.monotonic()
    result = run_ci_snakemake(
        workdir, *[f"results/metrics/{model}.csv" for model in MODELS],
        "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs", "--set-threads", "train=1", "finetune=1", "predict=1",
        timeout=1800, env=env,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return workdir, result.stdout + result.stderr, env, seconds


def test_every_job_went_through_sbatch_and_completed(slurm_run):
    workdir, output, env, seconds = slurm_run
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))
    planned = re.search(r"^total\s+(\d+)$", output, flags=re.MULTILINE)
    assert planned, output[-3000:]
    # Every planned job is a Slurm job (the targets are files, so there is no local rule `all`).
    assert len(submitted) == int(planned.group(1)), output[-3000:]
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    queue = subprocess.run(["squeue", "--states=all", "--noheader", "--name", run_id,
                            "--Format=JobID:20,State:20,Account:40,tres-per-job:60"],
                           env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    jobs = {fields[0]: fields[1:] for fields in map(str.split, queue.splitlines()) if fields}
    assert set(submitted.values()) <= set(jobs), (submitted, queue)
    assert all(state == "COMPLETED" for state, _, _ in jobs.values()), queue
    assert all(account == "pdeldm-ci" for _, account, _ in jobs.values()), queue  # from PDELDM_SLURM_ACCOUNT
    assert any("gpu" in gres for _, _, gres in jobs.values()), queue  # training asked for a GPU
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("rule_train" in str(log) for log in logs), logs
    print(f"Slurm run of the CI workflow: {len(submitted)} jobs in {seconds:.0f} s")


def test_metrics_equal_the_local_run(slurm_run, ci_workflow_run):
    workdir = slurm_run[0]
    compared = []
    for model in MODELS:
        for kind in ("", "_rank_hist", "_extremes", "_rapsd"):
            name = Path("results") / "metrics" / f"{model}{kind}.csv"
            assert (workdir / name).read_bytes() == (ci_workflow_run / name).read_bytes(), name
            compared.append(name)
    assert len(compared) == 4 * len(MODELS)
