"""``pdeldm.data.cds`` with the REAL cdsapi client against the local CDS-protocol server.

Both key styles are exercised (legacy ``UID:KEY`` -> ``cdsapi.api.Client``; personal access token
-> ``ecmwf.datastores.legacy_client.LegacyClient``). Client sleeps are kept small with
``sleep_max``/``retry_max``; where the client waits a fixed time regardless (the legacy download
resume waits 10 s first) the ``fast_sleep`` fixture caps ``time.sleep`` and records what was asked.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the shared server

from cds_server import LEGACY_KEY, TOKEN, CDSTestServer, make_cds_dataset  # noqa: E402
from cds_server import cds_server  # noqa: E402,F401  (fixture)

from pdeldm.data import cds  # noqa: E402
from pdeldm.data.cds import validation  # noqa: E402,F401  (cds.validation)
from pdeldm.errors import InputError  # noqa: E402

pytestmark = pytest.mark.timeout(60)

SINGLE = "reanalysis-era5-single-levels"
PLEV = "reanalysis-era5-pressure-levels"
AREA = [46.0, 8.0, 44.0, 11.0]  # small piece of northern Italy: 9 x 13 points
HOURS = ["00:00", "12:00"]  # keeps payloads small; the whole month of days is still requested
WIND_T = ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind"]
FAST = {"retry_max": 3, "sleep_max": 0.1, "timeout": 10}


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=["legacy", "token"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


def creds(server: CDSTestServer, protocol: str) -> dict[str, str]:
    if protocol == "legacy":
        return {"url": server.legacy_url, "key": LEGACY_KEY}
    return {"url": server.url, "key": TOKEN}


@pytest.fixture
def fast_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Cap every ``time.sleep`` at 20 ms; return the list of sleeps the code asked for."""
    asked: list[float] = []
    real_sleep = time.sleep

    def capped(seconds: float) -> None:
        asked.append(float(seconds))
        real_sleep(min(float(seconds), 0.02))

    monkeypatch.setattr(time, "sleep", capped)
    return asked


@pytest.fixture
def log(tmp_path: Path) -> logging.Logger:
    return cds.stage_logger("test_cds", tmp_path / "fetch.log")


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "fetch.log").read_text()


def expected_normalised(dataset: str, request: dict) -> xr.Dataset:
    """What the server generated, in the normalised layout (time, latitude ascending, K)."""
    ds = make_cds_dataset(dataset, request)
    if "pressure_level" in ds.dims:
        flat = {f"{name}{int(p)}": ds[name].sel(pressure_level=p, drop=True)
                for name in ds.data_vars for p in ds["pressure_level"].values}
        ds = xr.Dataset(flat)
    return ds.rename(valid_time="time").sortby("latitude")


def assert_matches_server(path: Path, dataset: str, request: dict) -> None:
    got = xr.load_dataset(path)
    want = expected_normalised(dataset, request)
    assert sorted(got.data_vars) == sorted(want.data_vars)
    assert list(got.dims) == ["time", "latitude", "longitude"] or set(got.dims) == {"time", "latitude", "longitude"}
    assert np.all(np.diff(got["latitude"].values) > 0), "latitude must be ascending"
    assert "valid_time" not in got.variables and "expver" not in got.variables
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    for name in want.data_vars:
        assert got[name].dtype == np.float32
        assert got[name].dims == ("time", "latitude", "longitude")
        np.testing.assert_array_equal(got[name].values, want[name].values)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "fetch.log")


# --------------------------------------------------------------------------------------------
# build_request
# --------------------------------------------------------------------------------------------
def test_build_request_current_cds_style() -> None:
    req = cds.build_request(["2m_temperature"], 2000, 2, [47.5, 6, 36, 19])
    assert req["product_type"] == ["reanalysis"]
    assert req["variable"] == ["2m_temperature"]
    assert req["year"] == ["2000"] and req["month"] == ["02"]
    assert req["day"] == [f"{d:02d}" for d in range(1, 30)]  # leap year
    assert req["time"] == [f"{h:02d}:00" for h in range(24)]
    assert req["area"] == [47.5, 6.0, 36.0, 19.0]
    assert req["data_format"] == "netcdf" and req["download_format"] == "unarchived"
    assert "pressure_level" not in req
    assert len(cds.build_request(["2m_temperature"], 2001, 2, AREA)["day"]) == 28
    plev = cds.build_request(["temperature"], 2001, 4, AREA, pressure_levels=[850])
    assert plev["pressure_level"] == ["850"] and len(plev["day"]) == 30
    assert cds.output_names(["temperature", "specific_humidity"], ["850"]) == ["t850", "q850"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"area": [36, 6, 47.5, 19]}, "S < N"),
        ({"area": [47.5, 19, 36, 6]}, "W < E"),
        ({"area": [47.5, 6, 36]}, "[N, W, S, E]"),
        ({"month": 13}, "month"),
        ({"variables": ["2m_temprature"]}, "unknown ERA5 variable '2m_temprature'"),
        ({"times": ["12:30"]}, "HH:00"),
    ],
)
def test_build_request_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"variables": ["2m_temperature"], "year": 2000, "month": 1, "area": AREA} | kwargs
    with pytest.raises(InputError, match=None) as info:
        cds.build_request(**args)
    assert message in str(info.value)


# --------------------------------------------------------------------------------------------
# credentials
# --------------------------------------------------------------------------------------------
def test_credentials_order_args_env_file(tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_text("url: https://cds.example/api\nkey: 01234567-89ab-cdef-0123-456789abcdef\nverify: 1\n")
    env = {"CDSAPI_RC": str(rc), "HOME": str(tmp_path)}
    assert cds.cds_credentials(env=env) == ("https://cds.example/api", "01234567-89ab-cdef-0123-456789abcdef")
    env |= {"CDSAPI_URL": "http://127.0.0.1:1/api/", "CDSAPI_KEY": "123:abc-def"}
    assert cds.cds_credentials(env=env) == ("http://127.0.0.1:1/api", "123:abc-def")
    assert cds.cds_credentials(url="https://x.test/api", env=env)[0] == "https://x.test/api"
    # ~/.cdsapirc (HOME) when CDSAPI_RC is not set
    (tmp_path / ".cdsapirc").write_text("url: https://home.example/api\nkey: abcdef12-3456\n")
    assert cds.cds_credentials(env={"HOME": str(tmp_path)}) == ("https://home.example/api", "abcdef12-3456")


@pytest.mark.parametrize(
    ("rc_text", "env_extra", "message"),
    [
        (None, {}, "no CDS credentials: the url and key is not set"),
        (None, {"CDSAPI_URL": "https://cds.climate.copernicus.eu/api"}, "the key is not set"),
        ("url: https://cds.climate.copernicus.eu/api\n", {}, "has no 'key:' line"),
        ("key: 01234567-89ab-cdef-0123-456789abcdef\n", {}, "has no 'url:' line"),
        ("url: https://cds.climate.copernicus.eu/api\nkey: <your-personal-access-token>\n", {}, "placeholder"),
        ("url: https://cds.climate.copernicus.eu/api\nkey: 123456:abc:def\n", {}, "must be 'UID:APIKEY'"),
        ("url: https://cds.climate.copernicus.eu/api\nkey: 123456:\n", {}, "must be 'UID:APIKEY'"),
        ("url: https://cds.climate.copernicus.eu/api\nkey: abc\n", {}, "expected a personal access token"),
        ("url: cds.climate.copernicus.eu/api\nkey: 01234567-89ab\n", {}, "url from"),
    ],
    ids=["nothing", "env-url-only", "file-without-key", "file-without-url", "placeholder-key",
         "three-part-key", "empty-apikey", "short-token", "url-without-scheme"],
)
def test_credentials_errors_say_what_to_set(tmp_path: Path, rc_text: str | None, env_extra: dict, message: str) -> None:
    rc = tmp_path / "cdsapirc"
    if rc_text is not None:
        rc.write_text(rc_text)
    env = {"CDSAPI_RC": str(rc), "HOME": str(tmp_path)} | env_extra
    with pytest.raises(InputError) as info:
        cds.cds_credentials(env=env)
    text = str(info.value)
    assert message in text
    if rc_text is None:
        assert "CDSAPI_KEY" in text and ".cdsapirc" in text


def test_cli_without_credentials_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CDSAPI_URL", "CDSAPI_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "missing"))
    out = tmp_path / "x.nc"
    rc = cds.main(["--dataset", SINGLE, "--variables", "2m_temperature", "--area", *map(str, AREA),
                   "--year", "2001", "--month", "1", "--out", str(out), "--log", str(tmp_path / "cli.log")])
    assert rc == cds.EXIT_PERMANENT and not out.exists()  # not worth retrying
    err = capsys.readouterr().err
    assert "no CDS credentials" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# retrieval with the real client
# --------------------------------------------------------------------------------------------
def test_both_protocols_download_validate_normalise(cds_server: CDSTestServer, protocol: str,
                                                    tmp_path: Path, log: logging.Logger) -> None:
    req = cds.build_request(WIND_T, 2001, 2, AREA, times=HOURS)
    target = tmp_path / "era5_2001_02.nc"
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert cds_server.submissions[0]["protocol"] == protocol
    assert cds_server.submissions[0]["request"] == req
    assert leftovers(tmp_path) == ["era5_2001_02.nc"]
    text = log_text(tmp_path)
    for phrase in ("request sent", "job completed", "downloaded", "MB in", "validated t2m, u10, v10", "wrote"):
        assert phrase in text


def test_queued_then_running_is_polled(cds_server: CDSTestServer, protocol: str, tmp_path: Path,
                                       log: logging.Logger) -> None:
    cds_server.faults.queued_polls = 1
    cds_server.faults.running_polls = 1
    req = cds.build_request(["2m_temperature"], 2001, 3, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    started = time.monotonic()
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert time.monotonic() - started >= 1.0  # the client's first poll sleeps 1 s whatever sleep_max is
    assert_matches_server(target, SINGLE, req)
    text = log_text(tmp_path)
    if protocol == "legacy":
        assert cds_server.count("GET", r"/tasks/") == 2
        assert "Request is queued" in text and "Request is running" in text
    else:
        assert cds_server.count("GET", r"/jobs/job-\d+$") >= 3
        assert "status has been updated to accepted" in text and "updated to running" in text


def test_429_and_500_are_retried(cds_server: CDSTestServer, protocol: str, tmp_path: Path,
                                 log: logging.Logger) -> None:
    cds_server.faults.submit_errors = [429, 500]
    req = cds.build_request(["2m_temperature"], 2001, 4, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert cds_server.count("POST", r"/(resources|execution)") == 3


def test_server_errors_beyond_retry_max_give_one_clear_error(cds_server: CDSTestServer, protocol: str,
                                                             tmp_path: Path, log: logging.Logger) -> None:
    cds_server.faults.submit_errors = [500] * 5
    req = cds.build_request(["2m_temperature"], 2001, 5, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.CDSError) as info:
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert "test server fault 500" in str(info.value)  # the server's message survives
    assert cds_server.count("POST", r"/(resources|execution)") == FAST["retry_max"]
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["close", "short"])
def test_broken_download_keeps_the_finished_job_and_the_next_run_does_not_resubmit(
        cds_server: CDSTestServer, protocol: str, mode: str, tmp_path: Path, log: logging.Logger) -> None:
    """A dropped ('close') or short transfer is resumed; when it stays broken, the next run downloads
    the finished result again instead of queueing the request again."""
    cds_server.faults.truncate = mode
    req = cds.build_request(["2m_temperature"], 2001, 6, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    target.write_text("stale month from an earlier run")
    with pytest.raises(cds.TransientCDSError) as info:
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert "2001-06" in str(info.value) and str(target) in str(info.value)
    assert "stopped at" in str(info.value)
    assert not target.exists(), "a failed fetch must not leave a file at the target"
    assert cds_server.count("GET", r"^/download/") == FAST["retry_max"]  # bounded, each resuming
    # only the scratch folder with the finished job (and the bytes received) is left
    assert leftovers(tmp_path) == [".m.nc.fetch"]
    assert sorted(p.name for p in cds.workdir_of(target).iterdir()) == ["download.part", "job.json", "lock"]

    cds_server.faults.truncate = None
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert len(cds_server.submissions) == 1, "the finished job is downloaded again, not re-submitted"
    assert leftovers(tmp_path) == ["m.nc"]
    assert "not submitting again" in log_text(tmp_path)


@pytest.mark.parametrize("mode", ["close", "short"])
def test_truncated_once_is_resumed_with_range(cds_server: CDSTestServer, protocol: str, mode: str,
                                              tmp_path: Path, log: logging.Logger) -> None:
    cds_server.faults.truncate = mode
    cds_server.faults.truncate_count = 1
    req = cds.build_request(["2m_temperature"], 2001, 7, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert "resuming the download at byte" in log_text(tmp_path)
    downloads = [(m, s) for m, p, s in cds_server.hits if m == "GET" and p.startswith("/download/")]
    assert downloads == [("GET", 200), ("GET", 206)]  # the second asked only for the missing bytes
    assert len(cds_server.submissions) == 1


def test_server_ignoring_range_gets_the_whole_file_again(cds_server: CDSTestServer, tmp_path: Path,
                                                         log: logging.Logger) -> None:
    cds_server.faults.truncate, cds_server.faults.truncate_count = "short", 1
    cds_server.faults.no_range = True
    req = cds.build_request(["2m_temperature"], 2001, 7, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "token"), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert "downloading the whole file again" in log_text(tmp_path)


def test_failed_job_surfaces_server_message(cds_server: CDSTestServer, protocol: str, tmp_path: Path,
                                            log: logging.Logger) -> None:
    cds_server.faults.running_polls = 1
    cds_server.faults.fail_message = "No data available for 2031-01: ERA5 ends before"
    req = cds.build_request(["2m_temperature"], 2001, 8, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.CDSError) as info:
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, protocol), **FAST, log=log)
    assert "No data available for 2031-01: ERA5 ends before" in str(info.value)
    assert "2001-08" in str(info.value)
    assert not target.exists() and leftovers(tmp_path) == []


def test_wrong_key_is_an_input_error(cds_server: CDSTestServer, protocol: str, tmp_path: Path,
                                     log: logging.Logger) -> None:
    wrong = {"url": creds(cds_server, protocol)["url"],
             "key": "123456:00000000-0000-0000-0000-000000000000" if protocol == "legacy"
             else "00000000-0000-0000-0000-000000000000"}
    req = cds.build_request(["2m_temperature"], 2001, 9, AREA, times=HOURS)
    with pytest.raises(InputError) as info:
        cds.retrieve_month(SINGLE, req, tmp_path / "m.nc", **wrong, **FAST, log=log)
    assert "rejected the key" in str(info.value) and "Authentication failed" in str(info.value)
    assert cds_server.submissions == []


def test_legacy_clients_do_not_share_keys(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    """cdsapi's legacy clients share one requests.Session by default; we pass our own."""
    req = cds.build_request(["2m_temperature"], 2001, 10, AREA, times=HOURS)
    bad = {"url": cds_server.legacy_url, "key": "123456:00000000-0000-0000-0000-000000000000"}
    with pytest.raises(InputError):
        cds.retrieve_month(SINGLE, req, tmp_path / "a.nc", **bad, **FAST, log=log)
    cds.retrieve_month(SINGLE, req, tmp_path / "b.nc", **creds(cds_server, "legacy"), **FAST, log=log)
    assert (tmp_path / "b.nc").exists()


def test_file_not_matching_request_is_rejected(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    cds_server.faults.drop_variables = ["v10"]
    req = cds.build_request(WIND_T, 2001, 11, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.CDSError, match=r"does not match the request.*v10"):
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "token"), **FAST, log=log)
    assert not target.exists() and leftovers(tmp_path) == []


def test_non_netcdf_body_is_rejected(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    cds_server.faults.corrupt = True
    req = cds.build_request(["2m_temperature"], 2001, 12, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.CDSError, match="not a readable netCDF.*html"):
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "legacy"), **FAST, log=log)
    assert not target.exists() and leftovers(tmp_path) == []


def test_zip_of_instant_and_accum_is_merged(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    variables = ["2m_temperature", "sea_surface_temperature", "total_precipitation"]
    req = cds.build_request(variables, 2002, 1, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "token"), **FAST, log=log)
    assert cds_server.jobs["job-0001"].content_type == "application/zip"
    assert_matches_server(target, SINGLE, req)
    assert np.isnan(xr.load_dataset(target)["sst"].values).any()  # SST keeps its land NaNs


def test_pressure_levels_are_flattened(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    variables = ["temperature", "specific_humidity", "u_component_of_wind", "v_component_of_wind", "vertical_velocity"]
    req = cds.build_request(variables, 2002, 2, AREA, times=HOURS, pressure_levels=["850"])
    target = tmp_path / "m.nc"
    cds.retrieve_month(PLEV, req, target, **creds(cds_server, "legacy"), **FAST, log=log)
    assert_matches_server(target, PLEV, req)
    assert sorted(xr.load_dataset(target).data_vars) == ["q850", "t850", "u850", "v850", "w850"]


# --------------------------------------------------------------------------------------------
# permanent vs transient failures, messages, content checks, scratch folders, auth hints
# --------------------------------------------------------------------------------------------
def cli_args(target: Path, month: int, *extra: str) -> list[str]:
    return ["--dataset", SINGLE, "--variables", "2m_temperature", "--area", *map(str, AREA), "--times", *HOURS,
            "--year", "2001", "--month", str(month), "--retry-max", "2", "--sleep-max", "0.05",
            "--timeout", "10", "--out", str(target), *extra]


@pytest.fixture
def cli_env(cds_server: CDSTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CDSAPI_URL", cds_server.url)
    monkeypatch.setenv("CDSAPI_KEY", TOKEN)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "no-rc"))


@pytest.mark.parametrize(
    ("fault", "status", "submissions"),
    [
        ({"fail_message": "Request too large"}, cds.EXIT_PERMANENT, 1),  # failed job: not re-submitted
        ({"drop_variables": ["t2m"]}, cds.EXIT_PERMANENT, 1),  # wrong content
        ({"submit_errors": [500] * 6}, cds.EXIT_TRANSIENT, 0),  # server down on every attempt
        ({"truncate": "close"}, cds.EXIT_TRANSIENT, 1),  # download never completes: one submission
    ],
    ids=["failed-job", "wrong-content", "server-errors", "broken-downloads"],
)
def test_exit_status_separates_permanent_from_transient(cds_server: CDSTestServer, cli_env: None, tmp_path: Path,
                                                        fault: dict, status: int, submissions: int) -> None:
    for name, value in fault.items():
        setattr(cds_server.faults, name, value)
    target = tmp_path / "m.nc"
    rc = cds.main(cli_args(target, 1, "--retries", "2", "--log", str(tmp_path / "fetch.log")))
    assert rc == status and not target.exists()
    assert len(cds_server.submissions) == submissions
    posts = cds_server.count("POST", r"/execution")
    # permanent failures are tried once; transient ones three times (--retries 2), two calls each
    assert posts == (1 if status == cds.EXIT_PERMANENT else 6 if submissions == 0 else 1)
    assert "Traceback" not in log_text(tmp_path)


def test_transient_failure_is_retried_by_the_fetch_itself(cds_server: CDSTestServer, cli_env: None,
                                                          tmp_path: Path) -> None:
    cds_server.faults.submit_errors = [503, 503]  # the whole first attempt (--retry-max 2) fails
    target = tmp_path / "m.nc"
    rc = cds.main(cli_args(target, 2, "--retries", "1", "--log", str(tmp_path / "fetch.log")))
    assert rc == cds.EXIT_OK and target.exists()
    assert cds_server.count("POST", r"/execution") == 3 and len(cds_server.submissions) == 1
    assert "attempt 1 of 2 failed, trying again" in log_text(tmp_path)


def test_messages_name_dataset_group_month_target_and_what_to_do(cds_server: CDSTestServer, tmp_path: Path,
                                                                 log: logging.Logger) -> None:
    cds_server.faults.fail_message = "Request too large: reduce the number of fields"
    req = cds.build_request(WIND_T, 2001, 8, AREA, times=HOURS)
    target = tmp_path / "era5_surface_2001_08.nc"
    with pytest.raises(cds.PermanentCDSError) as info:
        cds.retrieve_month(SINGLE, req, target, group="surface", **creds(cds_server, "legacy"), **FAST, log=log)
    text = str(info.value)
    for part in ("group 'surface'", "2001-08", SINGLE, str(target), "Request too large", "not retried",
                 "era5"):
        assert part in text, part

    cds_server.reset()
    cds_server.faults.drop_variables = ["v10"]
    with pytest.raises(cds.PermanentCDSError) as info:
        cds.retrieve_month(SINGLE, req, target, group="surface", **creds(cds_server, "token"), **FAST, log=log)
    text = str(info.value)
    assert "group 'surface'" in text and str(target) in text and "v10" in text
    assert "checked.nc" not in text and "download" not in text.split("->")[0]  # no deleted scratch file named
    assert "run the fetch again later" in text


def test_grid_off_the_lattice_is_rejected(cds_server: CDSTestServer, tmp_path: Path, log: logging.Logger) -> None:
    cds_server.faults.grid_shift = 0.1  # less than half a 0.25 cell: the area check alone passes it
    req = cds.build_request(["2m_temperature"], 2001, 9, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.PermanentCDSError, match=r"off the requested 0.25-degree lattice.*0\.1000 degrees"):
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "token"), **FAST, log=log)
    assert not target.exists() and leftovers(tmp_path) == []


def test_lattice_and_nan_checks_directly() -> None:
    lat, lon = np.arange(44.0, 46.01, 0.25), np.arange(8.0, 11.01, 0.25)
    ok = xr.Dataset(coords={"latitude": lat, "longitude": lon})
    cds.validation.check_lattice(ok, (0.25, 0.25))
    with pytest.raises(InputError, match="spacing is 0.5000"):
        cds.validation.check_lattice(ok.isel(longitude=slice(None, None, 2)), (0.25, 0.25))
    field = np.ones((3, lat.size, lon.size), np.float32)
    field[:, 0, 0] = np.nan  # a fixed mask is fine
    ds = xr.Dataset({"sst": (("time", "latitude", "longitude"), field)},
                    coords={"time": pd.date_range("2001-01-01", periods=3, freq="h")})
    cds.validation.check_nan_pattern(ds, ["sst"])
    field[2, 3, 4] = np.nan
    with pytest.raises(InputError, match=r"'sst' has missing values that move.*at 2001-01-01T02:00 1 cell\(s\) differ"):
        cds.validation.check_nan_pattern(ds.copy(data={"sst": field}), ["sst"])


def test_nan_pattern_that_changes_between_time_steps_is_rejected(cds_server: CDSTestServer, tmp_path: Path,
                                                                 log: logging.Logger) -> None:
    cds_server.faults.moving_nans = True
    req = cds.build_request(["2m_temperature", "sea_surface_temperature"], 2002, 3, AREA, times=HOURS)
    target = tmp_path / "m.nc"
    with pytest.raises(cds.PermanentCDSError, match=r"'sst' has missing values that move between time steps"):
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "legacy"), **FAST, log=log)
    assert not target.exists() and leftovers(tmp_path) == []


def test_stale_scratch_folders_are_removed_on_the_next_run(cds_server: CDSTestServer, tmp_path: Path,
                                                           log: logging.Logger) -> None:
    target = tmp_path / "m.nc"
    old_scratch = tmp_path / ".m.nc.k2j4h5g6"  # the temporary directory of an older version
    old_scratch.mkdir()
    (old_scratch / "download.nc").write_bytes(b"x" * 1000)
    (tmp_path / ".m.nc.tmp-4000000").write_bytes(b"half-written month")  # a killed atomic write
    work = cds.workdir_of(target)
    work.mkdir()
    (work / "checked.nc").write_bytes(b"leftover")
    (tmp_path / ".other.nc.fetch").mkdir()  # another target's folder is not touched
    req = cds.build_request(["2m_temperature"], 2001, 10, AREA, times=HOURS)
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "token"), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert leftovers(tmp_path) == [".other.nc.fetch", "m.nc"]
    assert "left behind by an interrupted fetch" in log_text(tmp_path)


def test_a_saved_job_of_another_request_is_not_reused(cds_server: CDSTestServer, tmp_path: Path,
                                                      log: logging.Logger) -> None:
    cds_server.faults.truncate = "close"
    target = tmp_path / "m.nc"
    first = cds.build_request(["2m_temperature"], 2001, 11, AREA, times=HOURS)
    with pytest.raises(cds.TransientCDSError):
        cds.retrieve_month(SINGLE, first, target, **creds(cds_server, "token"), **FAST, log=log)
    cds_server.faults.truncate = None
    second = cds.build_request(["2m_temperature"], 2001, 11, AREA, times=["06:00"])  # the config changed
    cds.retrieve_month(SINGLE, second, target, **creds(cds_server, "token"), **FAST, log=log)
    assert_matches_server(target, SINGLE, second)
    assert len(cds_server.submissions) == 2 and leftovers(tmp_path) == ["m.nc"]


def test_expired_saved_result_is_submitted_again(cds_server: CDSTestServer, tmp_path: Path,
                                                 log: logging.Logger) -> None:
    cds_server.faults.truncate = "short"
    target = tmp_path / "m.nc"
    req = cds.build_request(["2m_temperature"], 2001, 12, AREA, times=HOURS)
    with pytest.raises(cds.TransientCDSError):
        cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "legacy"), **FAST, log=log)
    cds_server.faults.truncate = None
    cds_server.jobs.clear()  # the CDS deleted the result meanwhile: its location answers 404
    cds.retrieve_month(SINGLE, req, target, **creds(cds_server, "legacy"), **FAST, log=log)
    assert_matches_server(target, SINGLE, req)
    assert len(cds_server.submissions) == 2
    assert "is gone (HTTP 404); submitting the request again" in log_text(tmp_path)


def test_second_fetch_of_the_same_target_is_refused_while_one_runs(tmp_path: Path, log: logging.Logger) -> None:
    from pdeldm.data.cds.workdir import FetchWorkdir

    target = tmp_path / "m.nc"
    first = FetchWorkdir(target, "f", log)
    first.acquire()
    try:
        with pytest.raises(InputError, match=r"another fetch of this file is running \(pid \d+"):
            FetchWorkdir(target, "f", log).acquire()
    finally:
        first.release(keep_state=False)
    assert not cds.workdir_of(target).exists()


def test_sigkilled_fetch_leaves_a_scratch_folder_that_the_next_run_removes(cds_server: CDSTestServer,
                                                                          cli_env: None, tmp_path: Path) -> None:
    """Killed (SIGKILL, no clean-up) while downloading a finished job: the next run downloads that
    job's result without submitting again, and no scratch folder is left."""
    import os
    import signal
    import subprocess

    cds_server.faults.stall_seconds = 30.0  # the first download hangs half-way
    target = tmp_path / "m.nc"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSAPI_")}
    env |= {"CDSAPI_URL": cds_server.url, "CDSAPI_KEY": TOKEN, "CDSAPI_RC": str(tmp_path / "no-rc")}
    args = cli_args(target, 4, "--retries", "0", "--log", str(tmp_path / "fetch.log"))
    proc = subprocess.Popen([sys.executable, "-m", "pdeldm.data.cds", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while cds_server.count("GET", r"^/download/") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cds_server.count("GET", r"^/download/") == 1, "the fetch never started downloading"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    scratch = cds.workdir_of(target)
    assert scratch.is_dir() and (scratch / "job.json").exists() and not target.exists()

    rc = cds.main(cli_args(target, 4, "--log", str(tmp_path / "fetch.log")))
    assert rc == cds.EXIT_OK
    req = cds.build_request(["2m_temperature"], 2001, 4, AREA, times=HOURS)
    assert_matches_server(target, SINGLE, req)
    assert not scratch.exists() and leftovers(tmp_path) == ["m.nc"]
    assert len(cds_server.submissions) == 1, "the finished job was downloaded, not submitted again"


@pytest.mark.parametrize(
    ("source", "key", "expected", "unexpected"),
    [
        ("env", "00000000-0000-0000-0000-000000000000", ["environment variable CDSAPI_KEY", "personal access token",
                                                         "takes precedence over ~/.cdsapirc"], ["UID:KEY"]),
        ("rc", "00000000-0000-0000-0000-000000000000", ["'key:' line of", "cdsapirc"], ["UID:KEY", "CDSAPI_KEY"]),
        ("rc", "123456:00000000-0000-0000-0000-000000000000", ["'key:' line of", "old-style 'UID:KEY'"], []),
    ],
    ids=["token-from-env", "token-from-rc-file", "legacy-key-from-rc-file"],
)
def test_rejected_key_hint_names_where_the_key_came_from(cds_server: CDSTestServer, tmp_path: Path,
                                                         log: logging.Logger, source: str, key: str,
                                                         expected: list[str], unexpected: list[str]) -> None:
    rc = tmp_path / "cdsapirc"
    url = cds_server.legacy_url if ":" in key else cds_server.url
    env = {"CDSAPI_RC": str(rc), "HOME": str(tmp_path)}
    if source == "env":
        env |= {"CDSAPI_URL": url, "CDSAPI_KEY": key}
    else:
        rc.write_text(f"url: {url}\nkey: {key}\n")
    credentials = cds.resolve_credentials(env=env)
    req = cds.build_request(["2m_temperature"], 2001, 9, AREA, times=HOURS)
    with pytest.raises(InputError) as info:
        cds.retrieve_month(SINGLE, req, tmp_path / "m.nc", credentials=credentials, **FAST, log=log)
    text = str(info.value)
    assert "rejected the key" in text and "Authentication failed" in text
    for part in expected + ([str(rc)] if source == "rc" else []):
        assert part in text, part
    for part in unexpected:
        assert part not in text, part
    assert cds_server.submissions == []
