"""Atomic writes: a writer that dies leaves neither a partial file nor a stray temporary."""

import json
import os
import signal
import subprocess
import sys

import pytest

from pdeldm.io import atomic_output, read_json, write_json


def test_successful_write_lands_under_the_final_name(tmp_path):
    target = tmp_path / "out" / "data.txt"
    with atomic_output(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert [p.name for p in target.parent.iterdir()] == ["data.txt"]


def test_failed_write_keeps_the_previous_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_directories_are_replaced_atomically(tmp_path):
    target = tmp_path / "store.zarr"
    for content in ("first", "second"):
        with atomic_output(target) as tmp:
            tmp.mkdir()
            (tmp / "chunk").write_text(content)
    assert (target / "chunk").read_text() == "second"


def test_writer_that_creates_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not create"):
        with atomic_output(tmp_path / "x.nc"):
            pass


def test_killed_writer_leaves_no_output(tmp_path):
    """SIGKILL in the middle of a write: the final path never exists, so a rerun cannot trust it."""
    target = tmp_path / "big.bin"
    script = f"""
from pdeldm.io import atomic_output
with atomic_output({str(target)!r}) as tmp:
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 1000)
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert not target.exists()


def test_json_round_trip(tmp_path):
    write_json(tmp_path / "m.json", {"a": [1, 2], "b": {"c": 0.5}})
    assert read_json(tmp_path / "m.json") == {"a": [1, 2], "b": {"c": 0.5}}
    assert json.loads((tmp_path / "m.json").read_text())["b"]["c"] == 0.5
