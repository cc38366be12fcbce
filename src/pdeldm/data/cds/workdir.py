"""The scratch folder of one fetch: locked, cleaned of what killed runs left, and remembering a finished job.

Every fetch of ``target`` works in one hidden sibling folder, ``.{target name}.fetch/`` (same file
system as the target, so the final rename is atomic). It holds

* ``lock``: held with ``flock`` while a fetch runs (the kernel releases it when the process dies,
  even by SIGKILL), so a second fetch of the same target stops instead of interfering;
* ``job.json``: the location of the CDS job's finished result and a fingerprint of the request,
  written as soon as the job completes, so that a later run (after a broken download, a transient
  error or a killed job) downloads the same result instead of queueing the request again;
* ``download.part``: the bytes received so far (resumed with HTTP ``Range``).

Opening the folder removes what earlier runs left behind: other hidden siblings of the target
(scratch folders of older versions, temporary files of a write that was killed), the partial
download of a different request, and anything else in the folder. A fetch that succeeds or fails
permanently removes the folder; one that fails transiently keeps ``job.json`` and the partial
download for the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pdeldm.data.cds.client import FinishedJob
from pdeldm.errors import InputError

JOB_FILE = "job.json"
PART_FILE = "download.part"
LOCK_FILE = "lock"


def request_fingerprint(dataset: str, request: Mapping[str, Any]) -> str:
    """Hash of the dataset and request: a saved job is only reused for exactly the same request."""
    text = json.dumps({"dataset": dataset, "request": request}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def workdir_of(target: Path) -> Path:
    """The scratch folder of ``target``."""
    return target.with_name(f".{target.name}.fetch")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class FetchWorkdir:
    """The locked scratch folder of one fetch (see the module docstring)."""

    def __init__(self, target: Path, fingerprint: str, log: logging.Logger) -> None:
        self.target = target
        self.path = workdir_of(target)
        self.fingerprint = fingerprint
        self.log = log
        self._lock_fd: int | None = None

    @property
    def part(self) -> Path:
        return self.path / PART_FILE

    def scratch(self, name: str) -> Path:
        """A scratch file in the folder (removed with it)."""
        return self.path / name

    # -- lifecycle --------------------------------------------------------------------------
    def acquire(self) -> None:
        """Create and lock the folder, then remove what earlier runs left behind."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                owner = (self.path / LOCK_FILE).read_text().strip() or "another process"
                raise InputError(
                    f"{self.target}: another fetch of this file is running ({owner}); wait for it to "
                    f"finish, or stop it (its scratch folder is {self.path})"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._lock_fd = fd
        self._remove_stale()

    def _remove_stale(self) -> None:
        # older versions' scratch folders (tempfile: 8 random characters) and killed atomic writes
        leftover = re.compile(rf"\.{re.escape(self.target.name)}\.([a-z0-9_]{{8}}|tmp-\d+)")
        stale = [p for p in self.target.parent.iterdir() if leftover.fullmatch(p.name)]
        saved = self.saved_job()
        for name in os.listdir(self.path):
            if name == LOCK_FILE or (saved is not None and name in (JOB_FILE, PART_FILE)):
                continue
            stale.append(self.path / name)
        for path in stale:
            self.log.info("removing %s, left behind by an interrupted fetch", path)
            _remove(path)

    def release(self, keep_state: bool) -> None:
        """Unlock; remove the folder unless ``keep_state`` (then only the saved job and partial download stay)."""
        if keep_state and (self.path / JOB_FILE).exists():
            for name in os.listdir(self.path):
                if name not in (LOCK_FILE, JOB_FILE, PART_FILE):
                    _remove(self.path / name)
        else:
            _remove(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the finished job ---------------------------------------------------------------------
    def saved_job(self) -> FinishedJob | None:
        """The finished job of an earlier run for the same request, if one was recorded."""
        path = self.path / JOB_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != self.fingerprint:
            self.log.info("%s was for a different request; submitting again", path)
            path.unlink(missing_ok=True)
            self.part.unlink(missing_ok=True)
            return None
        try:
            return FinishedJob.from_dict(record["job"])
        except (KeyError, TypeError, ValueError):
            path.unlink(missing_ok=True)
            return None

    def save_job(self, job: FinishedJob) -> None:
        tmp = self.path / f"{JOB_FILE}.tmp"
        tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "job": job.to_dict()}, indent=1))
        os.replace(tmp, self.path / JOB_FILE)

    def forget_job(self) -> None:
        (self.path / JOB_FILE).unlink(missing_ok=True)
        self.part.unlink(missing_ok=True)


@contextlib.contextmanager
def fetch_workdir(target: Path, fingerprint: str, log: logging.Logger) -> Iterator[FetchWorkdir]:
    """Hold the scratch folder of ``target`` for one fetch.

    On success and on permanent failures the folder is removed; on transient failures (and on
    SIGTERM/KeyboardInterrupt) the finished job and the partial download are kept for the next run.
    """
    from pdeldm.data.cds.errors import CDSError

    work = FetchWorkdir(target, fingerprint, log)
    work.acquire()
    keep = False
    try:
        yield work
    except CDSError as exc:
        keep = exc.transient
        raise
    except (KeyboardInterrupt, SystemExit):
        keep = True
        raise
    finally:
        work.release(keep_state=keep)
