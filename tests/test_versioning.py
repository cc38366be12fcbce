"""pdeldm.versioning: what a user sees when versioning cannot start (no DVC call needed)."""

import pytest

from pdeldm.errors import InputError
from pdeldm.versioning import dvc_hash, track


def test_outside_a_dvc_repository_the_error_says_where_to_run(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(InputError, match=r"is not a DVC repository: run the workflow from the repository root"):
        track(["results"], "results/release.yaml", {}, cwd=tmp_path)
    assert not (tmp_path / "results" / "release.yaml").exists()


def test_missing_paths_are_named(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "results" / "models").mkdir(parents=True)
    with pytest.raises(InputError, match=r"cannot version resources/era5: not there \(run the workflow first\)"):
        track(["results/models", "resources/era5"], "results/release.yaml", {}, cwd=tmp_path)


def test_dvc_hash_reads_the_pointer(tmp_path):
    pointer = tmp_path / "models.dvc"
    pointer.write_text("outs:\n- md5: abc.dir\n  size: 10\n  nfiles: 2\n  hash: md5\n  path: models\n")
    assert dvc_hash(pointer) == {"md5": "abc.dir", "size": 10, "nfiles": 2}
