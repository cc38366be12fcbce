"""Cores shared by the jobs of one local workflow run: a job alone uses them all, jobs side by side split them.

Snakemake allots every torch job one thread (``threads: 1``), so that two trainings can run side by
side on two cores. When one runs alone (the UNet -> autoencoder -> LDM -> fine-tuning chain is
long and mostly alone) the other cores would idle. Each job of a local run therefore holds a
*lease*, a small file ``<directory>/<pid>.json`` naming the threads Snakemake gave it; a torch job
asks :meth:`CoreShare.fair_threads` before each batch and uses the cores no other job holds:

    threads = max(own threads, shared cores - threads held by the other live jobs)

so the critical path uses every core when it runs alone, and jobs that run side by side never ask
for more cores than Snakemake handed out. Leases of processes that died are ignored and removed.
Every job holds a lease (so that torch jobs leave its cores alone); only jobs told the run's core
count (``total`` >= 1) adapt their threads. Where a scheduler allots the cores (SLURM), ``total`` is
0 and each job keeps its own threads.

The price: a training's numbers depend on its number of threads (the order of floating-point
sums), and with shared cores that number depends on what else runs, so two runs can differ in
the last digits. ``--set-resources train:shared_cores=0 finetune:shared_cores=0
predict:shared_cores=0`` pins every job to its own threads (byte-identical reruns).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

#: The lease this process holds, if any (:func:`holding`); :func:`adapt_threads` consults it.
_ACTIVE: CoreShare | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class CoreShare:
    """One job's lease on the ``total`` cores of a local run (``own``: the threads Snakemake gave it)."""

    def __init__(self, directory: str | os.PathLike[str], total: int, own: int = 1) -> None:
        self.directory = Path(directory)
        self.total = int(total)  # < 1: not told the run's cores, keep `own`
        self.own = max(min(int(own), self.total), 1) if self.total >= 1 else max(int(own), 1)
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.path = self.directory / f"{self.host}-{self.pid}.json"
        #: Most threads this job used at once (reported with the job's cost record).
        self.max_threads = self.own

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": self.host, "pid": self.pid, "threads": self.own}))
        tmp.replace(self.path)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def others(self) -> int:
        """Threads held by the other live jobs of the run (stale leases are removed)."""
        held = 0
        for lease in self.directory.glob("*.json"):
            if lease == self.path:
                continue
            try:
                entry = json.loads(lease.read_text())
                host, pid, threads = str(entry["host"]), int(entry["pid"]), int(entry["threads"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written or removed right now
            if host != self.host:
                continue  # a job on another machine shares none of these cores
            if _alive(pid):
                held += threads
            else:
                lease.unlink(missing_ok=True)
        return held

    def fair_threads(self) -> int:
        """The cores no other job holds, at least the job's own threads (its own, if not told the total)."""
        if self.total < 1:
            return self.own
        return max(self.own, self.total - self.others())

    def apply(self) -> int:
        """Set torch's intra-op threads to :meth:`fair_threads` (if they changed); returns them."""
        import torch

        threads = self.fair_threads()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.max_threads = max(self.max_threads, threads)
        return threads


@contextlib.contextmanager
def holding(directory: str | os.PathLike[str] | None, total: int, own: int = 1) -> Iterator[CoreShare | None]:
    """Hold a lease for the duration of a job (nothing when ``directory`` is None)."""
    global _ACTIVE
    if directory is None:
        yield None
        return
    share = CoreShare(directory, total, own)
    share.acquire()
    previous, _ACTIVE = _ACTIVE, share
    try:
        yield share
    finally:
        _ACTIVE = previous
        share.release()


def adapt_threads() -> int | None:
    """Follow the run's free cores (see module docstring); None when this process holds no lease."""
    return None if _ACTIVE is None else _ACTIVE.apply()


def active_share() -> CoreShare | None:
    """The lease this process holds, if any."""
    return _ACTIVE
