"""Cores shared by the jobs of a local run: alone a job uses them all, side by side they split them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from pdeldm.cores import CoreShare, adapt_threads, holding


def _lease(directory: Path, pid: int, threads: int = 1, host: str | None = None) -> Path:
    path = directory / f"{host or socket.gethostname()}-{pid}.json"
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "threads": threads}))
    return path


def test_a_job_alone_uses_every_core_and_yields_to_others(tmp_path: Path):
    share = CoreShare(tmp_path, total=4, own=1)
    share.acquire()
    assert share.fair_threads() == 4
    other = _lease(tmp_path, os.getppid(), threads=1)  # a live process: the job beside this one
    assert share.fair_threads() == 3
    _lease(tmp_path, os.getppid() if os.getppid() != 1 else 1, threads=1, host="another-node")  # not ours
    assert share.fair_threads() == 3
    other.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "threads": 4}))
    assert share.fair_threads() == 1  # never below the threads Snakemake gave the job
    share.release()
    assert not share.path.exists()


def test_leases_of_dead_processes_are_removed(tmp_path: Path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = _lease(tmp_path, int(finished.stdout), threads=2)
    share = CoreShare(tmp_path, total=2, own=1)
    assert share.fair_threads() == 2
    assert not stale.exists()


def test_without_the_runs_cores_a_job_keeps_its_own_threads(tmp_path: Path):
    share = CoreShare(tmp_path, total=0, own=3)
    assert share.fair_threads() == 3


def test_holding_sets_torch_threads_and_lets_go(tmp_path: Path):
    before = torch.get_num_threads()
    try:
        assert adapt_threads() is None  # no lease: nothing changes
        with holding(tmp_path, total=2, own=1) as share:
            assert share is not None and share.path.exists()
            assert adapt_threads() == 2 and torch.get_num_threads() == 2
            _lease(tmp_path, os.getppid(), threads=1)
            assert adapt_threads() == 1 and torch.get_num_threads() == 1
            assert share.max_threads == 2
        assert not share.path.exists() and adapt_threads() is None
        with holding(None, total=2) as nothing:
            assert nothing is None
    finally:
        torch.set_num_threads(before)
