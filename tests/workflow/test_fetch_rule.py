"""``workflow/rules/fetch.smk`` end to end: Snakemake runs the fetch jobs against the local CDS server.

The server runs in this process; Snakemake (a subprocess) reaches it through CDSAPI_URL/CDSAPI_KEY.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the shared server

from cds_server import TOKEN, CDSTestServer, make_cds_dataset  # noqa: E402
from cds_server import cds_server  # noqa: E402,F401  (fixture)

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "paths": {"resources": "resources", "logs": "logs"},
    "data": {"period": {"start": "2001-01-01", "end": "2001-02-28"}},
    "era5": {
        "dataset": "reanalysis-era5-single-levels",
        "product_type": "reanalysis",
        "area": [46.0, 8.0, 44.0, 11.0],
        "times": ["00:00", "12:00"],
        "groups": {
            "surface": ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind"],
            "plev850": {"dataset": "reanalysis-era5-pressure-levels", "pressure_level": ["850"],
                        "variables": ["temperature"]},
        },
        "retries": 0,
        "retry_max": 2,
        "sleep_max": 0.1,
        "timeout": 10,
    },
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "Snakefile").write_text(
        f'include: "{REPO / "workflow" / "rules" / "fetch.smk"}"\n\n'
        "rule all:\n    default_target: True\n    input:\n        era5_fetched_files(),\n"
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return tmp_path


def snakemake(workdir: Path, server: CDSTestServer, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSAPI_")}
    env |= {"CDSAPI_URL": server.url, "CDSAPI_KEY": TOKEN, "CDSAPI_RC": str(workdir / "no-rc-file")}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"),
           "--directory", str(workdir / "run"), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", "--resources", "cds=1", "--printshellcmds", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)


def expected(group: str, year: int, month: int) -> xr.Dataset:
    era5 = CONFIG["era5"]
    spec = era5["groups"][group]
    dataset = spec["dataset"] if isinstance(spec, dict) else era5["dataset"]
    request = {"variable": spec["variables"] if isinstance(spec, dict) else spec,
               "year": [f"{year}"], "month": [f"{month:02d}"], "day": [f"{d:02d}" for d in range(1, 32)],
               "time": era5["times"], "area": era5["area"]}
    if isinstance(spec, dict):
        request["pressure_level"] = spec["pressure_level"]
    ds = make_cds_dataset(dataset, request)
    if "pressure_level" in ds.dims:
        ds = xr.Dataset({f"{n}850": ds[n].sel(pressure_level=850.0, drop=True) for n in ds.data_vars})
    return ds.rename(valid_time="time").sortby("latitude")


def test_fetch_rule_end_to_end_and_partial_rerun(cds_server: CDSTestServer, workdir: Path) -> None:
    run = workdir / "run"
    proc = snakemake(workdir, cds_server)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(cds_server.submitted_months()) == [("2001", "01"), ("2001", "01"), ("2001", "02"), ("2001", "02")]

    for month in (1, 2):
        merged = xr.load_dataset(run / f"resources/era5/era5_2001_{month:02d}.nc")
        assert sorted(merged.data_vars) == ["t2m", "t850", "u10", "v10"]
        for group in ("surface", "plev850"):
            group_file = run / f"resources/era5/{group}/era5_{group}_2001_{month:02d}.nc"
            got = xr.load_dataset(group_file)
            want = expected(group, 2001, month)
            np.testing.assert_array_equal(got["time"].values, want["time"].values)
            for name in want.data_vars:
                np.testing.assert_array_equal(got[name].values, want[name].values)
                np.testing.assert_array_equal(merged[name].values, want[name].values)
        log = (run / f"logs/fetch_era5/surface_2001_{month:02d}.log").read_text()
        assert "request sent" in log and "validated t2m, u10, v10" in log

    # delete one download: `fetch_era5_all` sends only that request again ...
    cds_server.submissions.clear()
    merged = {m: run / f"resources/era5/era5_2001_{m:02d}.nc" for m in (1, 2)}
    before = {m: path.stat().st_mtime_ns for m, path in merged.items()}
    (run / "resources/era5/surface/era5_surface_2001_02.nc").unlink()
    proc = snakemake(workdir, cds_server, "fetch_era5_all")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [(s["dataset"], s["request"]["month"][0]) for s in cds_server.submissions] == [
        ("reanalysis-era5-single-levels", "02")]
    # ... and the next plain run sends no request and leaves the other month alone (month 2 is
    # re-merged only if the download's bytes changed: Snakemake checksums small inputs)
    proc = snakemake(workdir, cds_server)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(cds_server.submissions) == 1
    assert merged[1].stat().st_mtime_ns == before[1]

    # deleting a merged month only re-merges it from the downloads
    merged[1].unlink()
    proc = snakemake(workdir, cds_server)
    assert proc.returncode == 0 and merged[1].exists() and len(cds_server.submissions) == 1

    # and a further run has nothing to do
    proc = snakemake(workdir, cds_server)
    assert proc.returncode == 0 and len(cds_server.submissions) == 1
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_failed_fetch_fails_the_job_without_output(cds_server: CDSTestServer, workdir: Path) -> None:
    cds_server.faults.fail_message = "Request too large: reduce the number of fields"
    run = workdir / "run"
    target = "resources/era5/surface/era5_surface_2001_01.nc"
    proc = snakemake(workdir, cds_server, target)
    assert proc.returncode != 0
    assert not (run / target).exists()
    assert not list((run / "resources/era5/surface").glob(".*")), "no temporary files left behind"
    log = (run / "logs/fetch_era5/surface_2001_01.log").read_text()
    assert "Request too large: reduce the number of fields" in log
    assert "Traceback" not in log


def test_rule_retries_transient_failures_only(cds_server: CDSTestServer, workdir: Path) -> None:
    """With era5.retries = 2: a failed CDS job is submitted once (exit 2, not retried); a download
    that breaks on every transfer of the first attempt is finished by the second attempt of the
    same job, from the same CDS job (no second submission)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["era5"]["retries"] = 2
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = workdir / "run"
    target = "resources/era5/surface/era5_surface_2001_01.nc"

    cds_server.faults.fail_message = "Request too large: reduce the number of fields"
    proc = snakemake(workdir, cds_server, target)
    assert proc.returncode != 0 and not (run / target).exists()
    assert len(cds_server.submissions) == 1, "a permanent failure is not re-submitted"
    log = (run / "logs/fetch_era5/surface_2001_01.log").read_text()
    assert "not retried" in log and "group 'surface'" in log and "2001-01" in log
    assert "non-zero exit status 2" in proc.stdout + proc.stderr  # permanent (75 would be transient)

    cds_server.reset()
    cds_server.faults.truncate = "close"
    cds_server.faults.truncate_count = CONFIG["era5"]["retry_max"]  # every transfer of the first attempt
    proc = snakemake(workdir, cds_server, target)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(cds_server.submissions) == 1
    assert cds_server.count("GET", r"^/download/") == CONFIG["era5"]["retry_max"] + 1
    log = (run / "logs/fetch_era5/surface_2001_01.log").read_text()
    assert "attempt 1 of 3 failed, trying again" in log and "not submitting again" in log
    assert not list((run / "resources/era5/surface").glob(".*")), "no scratch folder left behind"
