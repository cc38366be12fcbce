"""Version the workflow's boundary data and its released models with DVC.

Snakemake stays the only orchestrator: DVC stores and restores files (``dvc add``, ``dvc push``,
``dvc pull``) and runs no pipeline. The rule ``dvc_track`` (``workflow/rules/versioning.smk``)
hands :func:`track` the paths to version:

* boundary data, which costs hours to fetch or cannot be regenerated: the ERA5 and COSMO-CLM files
  the training store is built from (for the embedded twin, the twin's files in those formats) and
  the static inputs of the paper configuration;
* the released model bundle: final checkpoints with their per-epoch training metrics, the test
  metrics, tables and figures, described by a manifest (the configuration that produced them,
  software versions, git commit and the DVC hash of every tracked path).

The default remote (``.dvc/config``) is the directory ``pdeldm-dvc-store`` beside the clone, so a
push and a pull work offline; ``$PDELDM_DVC_REMOTE`` (or ``dvc remote modify --local``) points this
machine elsewhere.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pdeldm.errors import InputError
from pdeldm.io import atomic_output
from pdeldm.provenance import git_commit, software_versions

REMOTE_NAME = "local"
REMOTE_VARIABLE = "PDELDM_DVC_REMOTE"


class DvcError(RuntimeError):
    """A DVC command failed; the message has the command and DVC's own explanation."""


def run_dvc(args: Sequence[str], cwd: str | Path = ".", logger: logging.Logger | None = None) -> str:
    """Run ``dvc ARGS`` (the DVC installed with this Python) in ``cwd`` and return its output."""
    command = [sys.executable, "-m", "dvc", *map(str, args)]
    if logger:
        logger.info("dvc %s", " ".join(map(str, args)))
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise DvcError(f"'dvc {' '.join(map(str, args))}' failed in {Path(cwd).resolve()} "
                       f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()}")
    return result.stdout


def use_remote_from_environment(cwd: str | Path = ".", environ: Mapping[str, str] | None = None,
                                logger: logging.Logger | None = None) -> str | None:
    """Make ``$PDELDM_DVC_REMOTE`` this machine's default remote (in the git-ignored config.local)."""
    environ = os.environ if environ is None else environ
    url = environ.get(REMOTE_VARIABLE)
    if url:
        run_dvc(["remote", "add", "--local", "--default", "--force", REMOTE_NAME, url], cwd, logger)
    return url


def dvc_hash(dvc_file: str | Path) -> dict[str, Any]:
    """The hash, size and file count that a ``.dvc`` file records for its single output."""
    out = yaml.safe_load(Path(dvc_file).read_text())["outs"][0]
    return {key: out[key] for key in ("md5", "size", "nfiles") if key in out}


def track(paths: Sequence[str], manifest: str, cfg: dict[str, Any], cwd: str | Path = ".",
          logger: logging.Logger | None = None) -> dict[str, Any]:
    """``dvc add`` every path (one ``.dvc`` file beside each) and write the release manifest.

    Raises:
        InputError: if ``cwd`` is not a DVC repository or a path does not exist.
        DvcError: if DVC refuses (the message has DVC's reason).
    """
    cwd = Path(cwd)
    if not (cwd / ".dvc").is_dir():
        raise InputError(f"{cwd.resolve()} is not a DVC repository: run the workflow from the repository root "
                         "(or `dvc init` there first)")
    missing = [p for p in paths if not (cwd / p).exists()]
    if missing:
        raise InputError(f"cannot version {', '.join(missing)}: not there (run the workflow first)")
    use_remote_from_environment(cwd, logger=logger)
    run_dvc(["add", *paths], cwd, logger)
    release = {
        "commit": git_commit(cwd),
        "tracked": {p: dvc_hash(cwd / f"{p}.dvc") for p in paths},
        "software": software_versions(),
        "config": cfg,
    }
    with atomic_output(cwd / manifest) as tmp:
        tmp.write_text(
            "# Released with DVC (pdeldm.versioning): `dvc pull` restores the tracked paths;\n"
            "# then `snakemake --touch` (DVC does not keep modification times).\n"
            + yaml.safe_dump(release, sort_keys=False)
        )
    if logger:
        logger.info("tracked %d paths; manifest %s", len(paths), manifest)
    return release
