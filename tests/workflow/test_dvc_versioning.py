"""DVC round trip of the CI run's boundary data and released models, in temporary clones.

The lead's side: a clone of this repository adopts the session's CI run, versions it with
`snakemake dvc_track`, commits the pointers and pushes to the default (offline, local-directory)
remote. Then the data and the DVC cache are deleted and `dvc pull` must restore byte-identical
files, after which `snakemake --touch` leaves nothing to do. The collaborator's side: a fresh
`git clone` of that clone, `dvc pull`, `snakemake --touch`, and again nothing to do.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ci_workflow import ROOT, run_ci_snakemake, write_paths_overlay

from pdeldm.versioning import REMOTE_VARIABLE, use_remote_from_environment

pytestmark = pytest.mark.slow

GIT_IDENTITY = ["-c", "user.name=pdeldm tests", "-c", "user.email=tests@pdeldm.invalid"]


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def _dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"dvc {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def _clone_working_tree(dest: Path) -> Path:
    """A git repository holding this working tree's files (committed or not, never ignored ones)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "clone of the working tree")
    return dest


def _file_hashes(repo: Path, paths: list[str]) -> dict[str, str]:
    hashes = {}
    for path in paths:
        root = repo / path
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            hashes[str(file.relative_to(repo))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return hashes


def _nothing_to_do(repo: Path) -> None:
    touched = run_ci_snakemake(repo, "--touch", "--cores", "1", snakefile=repo / "Snakefile")
    assert touched.returncode == 0, touched.stderr[-3000:]
    dry = run_ci_snakemake(repo, "--dry-run", snakefile=repo / "Snakefile")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]


def test_dvc_push_pull_restores_identical_files_and_snakemake_has_nothing_to_do(ci_workflow_run, tmp_path):
    lead = _clone_working_tree(tmp_path / "work" / "lead")
    # Adopt the finished CI run (copied with its modification times) as this clone's own.
    for part in ("results", "resources"):
        shutil.copytree(ci_workflow_run / part, lead / part, symlinks=True, dirs_exist_ok=True)
    write_paths_overlay(lead, root=lead)
    adopted = run_ci_snakemake(lead, "--touch", "--cores", "1", snakefile=lead / "Snakefile")
    assert adopted.returncode == 0, adopted.stderr[-3000:]

    tracked = run_ci_snakemake(lead, "--cores", "1", "dvc_track", snakefile=lead / "Snakefile")
    assert tracked.returncode == 0, tracked.stdout[-3000:] + tracked.stderr[-3000:]
    release = yaml.safe_load((lead / "results" / "release.yaml").read_text())
    paths = list(release["tracked"])
    assert "resources/twin/italy_ci/era5" in paths and "resources/twin/italy_ci/cosmo" in paths
    assert {"results/models", "results/metrics", "results/tables", "results/figures", "results/report"} <= set(paths)
    assert release["config"]["data"]["region"] == "italy_ci" and release["software"]["dvc"]
    _git(lead, "add", "-A")
    _git(lead, "commit", "-q", "-m", "data: version boundary data and released models")
    committed = _git(lead, "ls-files")
    assert all(f"{p}.dvc" in committed for p in paths) and "results/release.yaml" in committed
    assert "results/models/unet/model.ckpt" not in committed  # the data itself stays out of git

    # The default remote is the directory beside the clone: offline, no configuration.
    _dvc(lead, "push")
    assert any((tmp_path / "work" / "pdeldm-dvc-store").rglob("*")), "dvc push wrote nothing to the default remote"
    before = _file_hashes(lead, paths)
    assert any(name.endswith("model.ckpt") for name in before) and any(name.endswith(".nc") for name in before)

    for path in paths:
        shutil.rmtree(lead / path)
    shutil.rmtree(lead / ".dvc" / "cache")
    _dvc(lead, "pull")
    assert _file_hashes(lead, paths) == before
    _nothing_to_do(lead)

    # A collaborator: git clone -> dvc pull -> snakemake --touch -> nothing to rerun.
    collaborator = tmp_path / "work" / "collaborator"
    subprocess.run(["git", "clone", "-q", str(lead), str(collaborator)], check=True, timeout=120)
    assert not (collaborator / "results" / "models").exists()
    _dvc(collaborator, "pull")
    assert _file_hashes(collaborator, paths) == before
    _nothing_to_do(collaborator)


def test_remote_from_the_environment_becomes_this_machines_default(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    assert use_remote_from_environment(repo, environ={}) is None
    remote = tmp_path / "shared-store"
    assert use_remote_from_environment(repo, environ={REMOTE_VARIABLE: str(remote)}) == str(remote)
    assert str(remote) in _dvc(repo, "remote", "list", "--local")
    assert _dvc(repo, "remote", "default").strip() == "local"
