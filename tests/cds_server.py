"""A local stand-in for the Copernicus Climate Data Store, for tests with the real ``cdsapi`` client.

It speaks both protocols the client (cdsapi 0.7.7 / ecmwf-datastores-client 0.5.3) chooses between
by the key style:

* legacy ``UID:KEY`` (HTTP Basic auth), under ``{root}/api/v2``: ``GET status.json``,
  ``POST resources/{dataset}``, ``GET tasks/{id}``, ``DELETE tasks/{id}``;
* personal access token (header ``PRIVATE-TOKEN``), under ``{root}/api``:
  ``GET catalogue/v1/messages``, ``GET retrieve/v1/processes/{dataset}``,
  ``POST retrieve/v1/processes/{dataset}/execution``, ``GET retrieve/v1/jobs/{id}`` (the monitor
  link), ``GET retrieve/v1/jobs/{id}/results``;
* both: ``HEAD``/``GET {root}/download/{id}/{file}`` (no auth, ``Range`` supported).

The payload is a netCDF in the new CDS format (``valid_time``, descending ``latitude``,
``longitude``, short variable names, ``number``, ``expver``) built for the requested variables,
area, days and hours with deterministic values (:func:`make_cds_dataset`), so tests can compare.
Like the real CDS, a request mixing instantaneous and accumulated variables is delivered as a zip
of two netCDFs even with ``download_format: unarchived``.

Faults are chosen per test through :class:`Faults` (``server.faults``). Everything is bounded:
socket timeouts, finite fault counters, and the server thread stops with the fixture.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import io
import itertools
import json
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.data import formats

LEGACY_KEY = "123456:0a1b2c3d-4e5f-6789-abcd-ef0123456789"
TOKEN = "f0e1d2c3-b4a5-4968-8776-655443322110"

# CDS name -> (short name, GRIB paramId, GRIB shortName, long_name, units, standard_name,
#              step type, base value, amplitude). Attributes as cfgrib/the CDS write them
# (standard_name "unknown" for surface parameters, wind units "m s**-1").
VARIABLES: dict[str, tuple[str, int, str, str, str, str, str, float, float]] = {
    "2m_temperature": ("t2m", 167, "2t", "2 metre temperature", "K", "unknown", "instant", 285.0, 8.0),
    "2m_dewpoint_temperature": ("d2m", 168, "2d", "2 metre dewpoint temperature", "K", "unknown", "instant", 280.0, 6.0),
    "mean_sea_level_pressure": ("msl", 151, "msl", "Mean sea level pressure", "Pa", "unknown", "instant", 101325.0, 800.0),
    "surface_pressure": ("sp", 134, "sp", "Surface pressure", "Pa", "unknown", "instant", 95000.0, 3000.0),
    "10m_u_component_of_wind": ("u10", 165, "10u", "10 metre U wind component", "m s**-1", "unknown", "instant", 0.5, 5.0),
    "10m_v_component_of_wind": ("v10", 166, "10v", "10 metre V wind component", "m s**-1", "unknown", "instant", -0.5, 5.0),
    "sea_surface_temperature": ("sst", 34, "sst", "Sea surface temperature", "K", "unknown", "instant", 291.0, 2.0),
    "skin_temperature": ("skt", 235, "skt", "Skin temperature", "K", "unknown", "instant", 286.0, 9.0),
    "snow_depth": ("sd", 141, "sd", "Snow depth", "m of water equivalent", "unknown", "instant", 0.05, 0.05),
    "total_cloud_cover": ("tcc", 164, "tcc", "Total cloud cover", "(0 - 1)", "unknown", "instant", 0.5, 0.5),
    "land_sea_mask": ("lsm", 172, "lsm", "Land-sea mask", "(0 - 1)", "unknown", "instant", 0.5, 0.5),
    "total_precipitation": ("tp", 228, "tp", "Total precipitation", "m", "unknown", "accum", 2e-4, 2e-4),
    "surface_solar_radiation_downwards": ("ssrd", 169, "ssrd", "Surface short-wave (solar) radiation downwards", "J m**-2", "unknown", "accum", 6e5, 6e5),
    "surface_thermal_radiation_downwards": ("strd", 175, "strd", "Surface long-wave (thermal) radiation downwards", "J m**-2", "unknown", "accum", 1e6, 2e5),
    "geopotential": ("z", 129, "z", "Geopotential", "m**2 s**-2", "geopotential", "instant", 14000.0, 300.0),
    "specific_humidity": ("q", 133, "q", "Specific humidity", "kg kg**-1", "specific_humidity", "instant", 6e-3, 2e-3),
    "relative_humidity": ("r", 157, "r", "Relative humidity", "%", "relative_humidity", "instant", 60.0, 30.0),
    "temperature": ("t", 130, "t", "Temperature", "K", "air_temperature", "instant", 276.0, 5.0),
    "u_component_of_wind": ("u", 131, "u", "U component of wind", "m s**-1", "eastward_wind", "instant", 3.0, 8.0),
    "v_component_of_wind": ("v", 132, "v", "V component of wind", "m s**-1", "northward_wind", "instant", 0.0, 8.0),
    "vertical_velocity": ("w", 135, "w", "Vertical velocity", "Pa s**-1", "lagrangian_tendency_of_air_pressure", "instant", 0.0, 0.3),
}
PRESSURE_LEVEL_VARS = {"geopotential", "specific_humidity", "relative_humidity", "temperature",
                       "u_component_of_wind", "v_component_of_wind", "vertical_velocity"}
DATASETS = ("reanalysis-era5-single-levels", "reanalysis-era5-pressure-levels")
GRID_STEP = 0.25


# --------------------------------------------------------------------------------------------
# Payload: the exact netCDF the new CDS writes
# --------------------------------------------------------------------------------------------
def grid_axes(area: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """ERA5 0.25-degree latitudes (descending, N->S) and longitudes inside ``area`` [N, W, S, E]."""
    north, west, south, east = (float(a) for a in area)
    # snap to the 0.25-degree grid as the CDS does, both ends inclusive
    lat0, lat1 = np.ceil(south / GRID_STEP - 1e-9), np.floor(north / GRID_STEP + 1e-9)
    lon0, lon1 = np.ceil(west / GRID_STEP - 1e-9), np.floor(east / GRID_STEP + 1e-9)
    lat = np.arange(lat1, lat0 - 0.5, -1.0) * GRID_STEP
    lon = np.arange(lon0, lon1 + 0.5, 1.0) * GRID_STEP
    return lat, lon


def request_valid_times(request: dict[str, Any]) -> pd.DatetimeIndex:
    """Valid times of a request (impossible days such as 31 February are dropped, as the CDS does)."""
    stamps = []
    for year, month in itertools.product(request["year"], request["month"]):
        n_days = calendar.monthrange(int(year), int(month))[1]
        for day in request["day"]:
            if int(day) <= n_days:
                for hour in request["time"]:
                    stamps.append(pd.Timestamp(f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{hour}"))
    return pd.DatetimeIndex(sorted(stamps))


def field_values(variable: str, times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray,
                 level: float | None = None) -> np.ndarray:
    """Deterministic float32 values ``(time, lat, lon)`` for a CDS variable (tests recompute them)."""
    short, _, _, _, _, _, _, base, amp = VARIABLES[variable]
    hours = ((times - pd.Timestamp("1970-01-01")) // pd.Timedelta(hours=1)).to_numpy(np.float64)
    phase = 2 * np.pi * hours[:, None, None] / 24.0 + 0.1 * lon[None, None, :]
    lat_term = np.cos(np.deg2rad(lat))[None, :, None]
    shift = 0.0 if level is None else (1000.0 - level) * 1e-3 * amp
    values = base + shift + amp * np.sin(phase) * lat_term + 0.01 * amp * np.cos(0.37 * hours)[:, None, None]
    if variable in ("snow_depth", "total_precipitation", "surface_solar_radiation_downwards"):
        values = np.maximum(values, 0.0)
    values = np.broadcast_to(values, (len(times), len(lat), len(lon))).astype(np.float32)
    if short == "sst":  # ERA5 SST is undefined over land: mark a 'land' corner as missing
        values = values.copy()
        values[:, (lat > 45.0)[:, None] & (lon < 9.0)[None, :]] = np.nan
    return values


def make_cds_dataset(dataset: str, request: dict[str, Any], step_type: str | None = None) -> xr.Dataset:
    """The dataset the new CDS writes for ``request`` (optionally only one GRIB step type).

    Single-level ``t2m``/``u10``/``v10`` go through the project's own format writer
    (:func:`pdeldm.data.formats.make_era5_dataset`, shared with the twin); other variables and
    pressure levels are assembled here in the same layout.
    """
    lat, lon = grid_axes(request["area"])
    times = request_valid_times(request)
    levels = [float(p) for p in request.get("pressure_level", [])] if "pressure-levels" in dataset else []
    variables = [v for v in request["variable"] if step_type is None or VARIABLES[v][6] == step_type]
    history = ("GRIB to CDM+CF via cfgrib/ecCodes with "
               f'{{"source": "data.grib", "filter_by_keys": {{"stream": ["oper"], '
               f'"stepType": ["{step_type or "instant"}"]}}}}')
    shorts = [VARIABLES[v][0] for v in variables]
    if not levels and set(shorts) <= set(formats.ERA5_VARIABLES):
        fields = {VARIABLES[v][0]: field_values(v, times, lat, lon) for v in variables}
        return formats.make_era5_dataset(times, lat, lon, fields, history=history)

    coords: dict[str, Any] = {
        "number": xr.Variable((), np.int64(0), {"long_name": "ensemble member numerical id",
                                                "units": "1", "standard_name": "realization"}),
        "valid_time": xr.Variable("valid_time", times.to_numpy(),
                                  {"long_name": "time", "standard_name": "time"}),
        "latitude": xr.Variable("latitude", lat, {"units": "degrees_north", "standard_name": "latitude",
                                                  "long_name": "latitude", "stored_direction": "decreasing"}),
        "longitude": xr.Variable("longitude", lon, {"units": "degrees_east", "standard_name": "longitude",
                                                    "long_name": "longitude"}),
        "expver": xr.Variable("valid_time", np.full(len(times), "0001", dtype=object),
                              {"long_name": "Experiment version"}),
    }
    if levels:
        coords["pressure_level"] = xr.Variable(
            "pressure_level", np.array(levels),
            {"units": "hPa", "long_name": "pressure", "positive": "down",
             "standard_name": "air_pressure", "stored_direction": "decreasing"})
    data_vars = {}
    for variable in variables:
        short, param, grib_short, long_name, units, std, kind, _, _ = VARIABLES[variable]
        attrs = {"GRIB_paramId": param, "GRIB_shortName": grib_short, "GRIB_units": units,
                 "GRIB_name": long_name, "GRIB_stepType": kind,
                 "GRIB_typeOfLevel": "isobaricInhPa" if levels else "surface",
                 "long_name": long_name, "units": units, "standard_name": std}
        if levels:
            stack = np.stack([field_values(variable, times, lat, lon, lev) for lev in levels], axis=1)
            data_vars[short] = xr.Variable(("valid_time", "pressure_level", "latitude", "longitude"), stack, attrs)
        else:
            data_vars[short] = xr.Variable(("valid_time", "latitude", "longitude"),
                                           field_values(variable, times, lat, lon), attrs)
    ds = xr.Dataset(data_vars, coords=coords, attrs=dict(formats.ERA5_GLOBAL_ATTRS))
    ds.attrs["history"] = history
    return ds


def _netcdf_bytes(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.nc"
        formats.write_era5_month(ds, path)  # the same encoding as the twin's files
        return path.read_bytes()


def _with_faults(ds: xr.Dataset, grid_shift: float, moving_nans: bool) -> xr.Dataset:
    """A faulty server's version of ``ds``: grid shifted by ``grid_shift`` degrees, SST NaNs that move."""
    if grid_shift:
        ds = ds.assign_coords(latitude=ds["latitude"] + grid_shift, longitude=ds["longitude"] + grid_shift)
    if moving_nans and "sst" in ds.data_vars:
        values = ds["sst"].values.copy()
        for t in range(values.shape[0]):  # one extra NaN per time step, at a different sea cell each time
            values[t, -1, t % values.shape[2]] = np.nan
        ds["sst"] = ds["sst"].copy(data=values)
    return ds


def make_payload(dataset: str, request: dict[str, Any], drop: list[str] | None = None,
                 grid_shift: float = 0.0, moving_nans: bool = False) -> tuple[bytes, str, str]:
    """``(bytes, file name, content type)`` of the CDS answer to ``request``.

    ``drop`` lists short names to leave out, ``grid_shift`` moves the grid off the 0.25-degree
    lattice and ``moving_nans`` adds SST NaNs that change between time steps (a faulty server), to
    test the validation.
    """
    if drop:
        request = {**request, "variable": [v for v in request["variable"] if VARIABLES[v][0] not in drop]}
    kinds = {VARIABLES[v][6] for v in request["variable"]}

    def build(step_type: str | None = None) -> bytes:
        return _netcdf_bytes(_with_faults(make_cds_dataset(dataset, request, step_type), grid_shift, moving_nans))

    if len(kinds) == 1:
        return build(), "data.nc", "application/netcdf"
    # mixed step types: the new CDS zips one netCDF per step type, whatever download_format says
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for kind in sorted(kinds, reverse=True):  # instant first, then accum
            archive.writestr(f"data_stream-oper_stepType-{kind}.nc", build(kind))
    return buffer.getvalue(), "data.zip", "application/zip"


def validate_request(dataset: str, request: Any) -> str | None:
    """Why the CDS would reject ``request`` at submission, or None."""
    if dataset not in DATASETS:
        return f"dataset {dataset!r} not found"
    if not isinstance(request, dict):
        return "request must be a JSON object"
    for name in ("product_type", "variable", "year", "month", "day", "time", "area", "data_format"):
        if name not in request:
            return f"missing required field {name!r}"
    for variable in request["variable"]:
        if variable not in VARIABLES:
            return f"invalid variable {variable!r}"
        if (variable in PRESSURE_LEVEL_VARS) != ("pressure-levels" in dataset) and variable != "geopotential":
            return f"variable {variable!r} is not available in {dataset}"
    if "pressure-levels" in dataset and not request.get("pressure_level"):
        return "missing required field 'pressure_level'"
    if request["data_format"] != "netcdf":
        return "only data_format 'netcdf' is served by this test server"
    north, _, south, _ = request["area"]
    if float(north) <= float(south):
        return "area: north must be greater than south"
    return None


# --------------------------------------------------------------------------------------------
# Server state and faults
# --------------------------------------------------------------------------------------------
@dataclass
class Faults:
    """Fault modes; counters count down as requests arrive, so every fault is finite."""

    queued_polls: int = 0  #: polls answered queued/accepted before running
    running_polls: int = 0  #: polls answered running before the final state
    submit_errors: list[int] = field(default_factory=list)  #: statuses for the next submit attempts
    download_errors: list[int] = field(default_factory=list)  #: statuses for the next download GETs
    truncate: str | None = None  #: "close" (announce all, send part, close) or "short" (send part, keep)
    truncate_count: int = 1_000_000  #: how many download GETs are truncated
    truncate_fraction: float = 0.4  #: share of the (remaining) bytes sent when truncating
    fail_message: str | None = None  #: make the job fail with this message
    fail_reason: str = "The request could not be processed by the adaptor"
    drop_variables: list[str] = field(default_factory=list)  #: short names left out of the payload
    corrupt: bool = False  #: send an HTML page instead of netCDF (with the right size announced)
    grid_shift: float = 0.0  #: degrees added to every latitude and longitude (off the 0.25 lattice)
    moving_nans: bool = False  #: SST NaNs at a different cell every time step (not a land mask)
    stall_seconds: float = 0.0  #: the next download sends part of the file, then waits this long
    no_range: bool = False  #: ignore Range headers (answer 200 with the whole file)


@dataclass
class Job:
    id: str
    protocol: str
    dataset: str
    request: dict[str, Any]
    payload: bytes
    filename: str
    content_type: str
    queued: int
    running: int
    fail_message: str | None
    fail_reason: str
    polls: int = 0

    def state(self) -> str:
        """Legacy state name after ``polls`` status polls."""
        if self.polls < self.queued:
            return "queued"
        if self.polls < self.queued + self.running:
            return "running"
        return "failed" if self.fail_message else "completed"


TOKEN_STATUS = {"queued": "accepted", "running": "running", "completed": "successful", "failed": "failed"}


class CDSTestServer:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port) answering both CDS protocols."""

    def __init__(self, legacy_key: str = LEGACY_KEY, token: str = TOKEN) -> None:
        self.legacy_key = legacy_key
        self.token = token
        self.faults = Faults()
        self.submissions: list[dict[str, Any]] = []  #: accepted jobs: protocol, dataset, request
        self.hits: list[tuple[str, str, int]] = []  #: (method, path, status) of every request
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> CDSTestServer:
        handler = type("BoundHandler", (_Handler,), {"cds": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cds-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> CDSTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """API url for personal-access-token clients (like https://cds.climate.copernicus.eu/api)."""
        return f"{self.root}/api"

    @property
    def legacy_url(self) -> str:
        """API url for legacy ``UID:KEY`` clients (like the old https://cds.climate.copernicus.eu/api/v2)."""
        return f"{self.root}/api/v2"

    # -- helpers for tests ------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.submissions.clear()
            self.hits.clear()
            self.jobs.clear()

    def count(self, method: str, pattern: str) -> int:
        """How many requests matched ``method`` and the regular expression ``pattern`` (on the path)."""
        with self.lock:
            return sum(1 for m, p, _ in self.hits if m == method and re.search(pattern, p))

    def submitted_months(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(s["request"]["year"][0], s["request"]["month"][0]) for s in self.submissions]

    def new_job(self, protocol: str, dataset: str, request: dict[str, Any]) -> Job:
        with self.lock:
            drop, corrupt = list(self.faults.drop_variables), self.faults.corrupt
            shift, moving = self.faults.grid_shift, self.faults.moving_nans
        if corrupt:
            payload, filename, content_type = (b"<html><body>502 Bad Gateway</body></html>\n" * 20,
                                               "data.nc", "application/netcdf")
        else:
            payload, filename, content_type = make_payload(dataset, request, drop=drop, grid_shift=shift,
                                                           moving_nans=moving)
        with self.lock:
            f = self.faults
            job = Job(id=f"job-{next(self._ids):04d}", protocol=protocol, dataset=dataset,
                      request=request, payload=payload, filename=filename, content_type=content_type,
                      queued=f.queued_polls, running=f.running_polls, fail_message=f.fail_message,
                      fail_reason=f.fail_reason)
            self.jobs[job.id] = job
            self.submissions.append({"protocol": protocol, "dataset": dataset, "request": request,
                                     "job": job.id})
        return job

    def take_fault(self, name: str) -> int | None:
        """Pop the next status of the ``submit_errors``/``download_errors`` list, if any."""
        with self.lock:
            queue = getattr(self.faults, name)
            return queue.pop(0) if queue else None

    def take_truncation(self) -> str | None:
        with self.lock:
            if self.faults.truncate and self.faults.truncate_count > 0:
                self.faults.truncate_count -= 1
                return self.faults.truncate
            return None


class _Handler(BaseHTTPRequestHandler):
    cds: CDSTestServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service
    timeout = 10  # a stuck client connection cannot hold a server thread for ever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        # Recorded before anything is sent: a client that has its reply may count the hits at once.
        self._record_hit(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _record_hit(self, status: int) -> None:
        with self.cds.lock:
            self.cds.hits.append((self.command, urlparse(self.path).path, status))

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError:
            return None

    def _legacy_auth(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                if base64.b64decode(header[6:]).decode() == self.cds.legacy_key:
                    return True
            except (ValueError, UnicodeDecodeError):
                pass
        self._json(401, {"message": "Authentication failed",
                         "reason": "The UID:KEY pair is not valid for this service"})
        return False

    def _token_auth(self) -> bool:
        if self.headers.get("PRIVATE-TOKEN") == self.cds.token:
            return True
        self._json(401, {"type": "https://cds.climate.copernicus.eu/errors/authentication",
                         "title": "Authentication failed",
                         "status": 401, "detail": "Authentication failed: the API token is not valid"})
        return False

    def _job(self, job_id: str) -> Job | None:
        with self.cds.lock:
            job = self.cds.jobs.get(job_id)
        if job is None:
            self._json(404, {"message": "Task not found", "title": "Job not found",
                             "detail": f"job {job_id} does not exist"})
        return job

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        parsed = urlparse(self.path)
        path, query = parsed.path, parse_qs(parsed.query)
        routes = [
            ("GET", r"/api/v2/status\.json", self._legacy_status),
            ("POST", r"/api/v2/resources/(?P<dataset>[^/]+)", self._legacy_submit),
            ("GET", r"/api/v2/tasks/(?P<job_id>[^/]+)", self._legacy_task),
            ("DELETE", r"/api/v2/tasks/(?P<job_id>[^/]+)", self._legacy_delete),
            ("GET", r"/api/catalogue/v1/messages", self._token_messages),
            ("GET", r"/api/retrieve/v1/processes/(?P<dataset>[^/]+)", self._token_process),
            ("POST", r"/api/retrieve/v1/processes/(?P<dataset>[^/]+)/execution", self._token_submit),
            ("GET", r"/api/retrieve/v1/jobs/(?P<job_id>[^/]+)", self._token_job),
            ("GET", r"/api/retrieve/v1/jobs/(?P<job_id>[^/]+)/results", self._token_results),
            ("GET", r"/download/(?P<job_id>[^/]+)/[^/]+", self._download),
            ("HEAD", r"/download/(?P<job_id>[^/]+)/[^/]+", self._download),
        ]
        for route_method, pattern, func in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                func(query=query, **match.groupdict())
                return
        if method == "POST":
            self._body()  # drain, so that the keep-alive connection stays usable
        self._json(404, {"message": f"no route {method} {path}", "title": "Not found"})

    # -- legacy protocol --------------------------------------------------------------------
    def _legacy_status(self, query: dict[str, list[str]]) -> None:
        self._json(200, {"info": [], "warning": []})

    def _legacy_reply(self, job: Job) -> dict[str, Any]:
        state = job.state()
        reply: dict[str, Any] = {"state": state, "request_id": job.id}
        if state == "completed":
            reply.update(location=f"{self.cds.root}/download/{job.id}/{job.filename}",
                         content_length=len(job.payload), content_type=job.content_type)
        elif state == "failed":
            reply["error"] = {"message": job.fail_message, "reason": job.fail_reason,
                              "context": {"traceback": "Traceback (most recent call last):\n  adaptor\n"}}
        return reply

    def _legacy_submit(self, query: dict[str, list[str]], dataset: str) -> None:
        request = self._body()
        if not self._legacy_auth():
            return
        status = self.cds.take_fault("submit_errors")
        if status is not None:
            self._json(status, {"message": "Too many requests" if status == 429 else "Internal server error",
                                "reason": f"test server fault {status}"})
            return
        problem = validate_request(dataset, request)
        if problem:
            self._json(400, {"message": problem, "reason": "Invalid request"})
            return
        self._json(202, self._legacy_reply(self.cds.new_job("legacy", dataset, request)))

    def _legacy_task(self, query: dict[str, list[str]], job_id: str) -> None:
        if not self._legacy_auth():
            return
        job = self._job(job_id)
        if job is not None:
            with self.cds.lock:
                job.polls += 1
            self._json(200, self._legacy_reply(job))

    def _legacy_delete(self, query: dict[str, list[str]], job_id: str) -> None:
        if self._legacy_auth() and self._job(job_id) is not None:
            self._json(200, {"state": "deleted", "request_id": job_id})

    # -- token protocol ---------------------------------------------------------------------
    def _token_messages(self, query: dict[str, list[str]]) -> None:
        self._json(200, {"messages": []})

    def _token_process(self, query: dict[str, list[str]], dataset: str) -> None:
        if dataset not in DATASETS:
            self._json(404, {"title": "Process not found", "detail": f"dataset {dataset} not found"})
            return
        self._json(200, {"id": dataset, "title": dataset, "version": "1.0.0",
                         "links": [{"rel": "self", "href": f"{self.cds.url}/retrieve/v1/processes/{dataset}"}]})

    def _token_job_json(self, job: Job, with_links: bool = True) -> dict[str, Any]:
        status = TOKEN_STATUS[job.state()]
        job_url = f"{self.cds.url}/retrieve/v1/jobs/{job.id}"
        reply: dict[str, Any] = {
            "processID": job.dataset, "type": "process", "jobID": job.id, "status": status,
            "created": "2025-01-01T00:00:00", "updated": "2025-01-01T00:00:01",
            "metadata": {"log": [], "request": {"ids": job.request}},
            "links": [{"href": job_url, "rel": "self", "type": "application/json"},
                      {"href": job_url, "rel": "monitor", "type": "application/json"}],
        }
        if status == "successful" and with_links:
            reply["links"].append({"href": f"{job_url}/results", "rel": "results"})
        return reply

    def _token_submit(self, query: dict[str, list[str]], dataset: str) -> None:
        body = self._body()
        if not self._token_auth():
            return
        status = self.cds.take_fault("submit_errors")
        if status is not None:
            self._json(status, {"title": "Too many requests" if status == 429 else "Internal server error",
                                "detail": f"test server fault {status}"})
            return
        request = body.get("inputs") if isinstance(body, dict) else None
        problem = validate_request(dataset, request)
        if problem:
            self._json(400, {"title": "invalid request", "detail": problem})
            return
        job = self.cds.new_job("token", dataset, request)
        self._json(201, self._token_job_json(job))

    def _token_job(self, query: dict[str, list[str]], job_id: str) -> None:
        if not self._token_auth():
            return
        job = self._job(job_id)
        if job is None:
            return
        reply = self._token_job_json(job)
        if "log" in query:
            # only status polls advance the job (not the link look-up); the 201 reply to the
            # submission is not shown to the user, so the first poll still sees 'accepted'
            with self.cds.lock:
                job.polls += 1
        self._json(200, reply)

    def _token_results(self, query: dict[str, list[str]], job_id: str) -> None:
        if not self._token_auth():
            return
        job = self._job(job_id)
        if job is None:
            return
        state = job.state()
        if state == "failed":
            self._json(400, {"type": "job results failed", "title": "The job has failed",
                             "status": 400, "traceback": f"{job.fail_message}\n{job.fail_reason}"})
        elif state != "completed":
            self._json(404, {"title": "results not ready", "detail": f"job {job.id} is {state}"})
        else:
            self._json(200, {"asset": {"value": {
                "type": job.content_type, "href": f"{self.cds.root}/download/{job.id}/{job.filename}",
                "file:checksum": hashlib.md5(job.payload).hexdigest(), "file:size": len(job.payload),
                "file:local_path": f"s3://cache/{job.id}/{job.filename}"}}})

    # -- download (both) --------------------------------------------------------------------
    def _download(self, query: dict[str, list[str]], job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        if job.state() != "completed":
            self._json(404, {"message": "result not available"})
            return
        data = job.payload
        headers = {"Accept-Ranges": "bytes"}
        if self.command == "HEAD":
            self._send(200, data, job.content_type, headers)
            return
        status_fault = self.cds.take_fault("download_errors")
        if status_fault is not None:
            self._json(status_fault, {"message": f"test server fault {status_fault}"})
            return
        status, start = 200, 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and int(match.group(1)) < len(data) and not self.cds.faults.no_range:
            status, start = 206, int(match.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        with self.cds.lock:
            stall, self.cds.faults.stall_seconds = self.cds.faults.stall_seconds, 0.0
        if stall:
            # send the headers and part of the body, then hang (bounded) like a stuck transfer
            self._record_hit(status)
            self.send_response(status)
            self.send_header("Content-Type", job.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            half = len(body) // 2
            self.wfile.write(body[:half])
            self.wfile.flush()
            time.sleep(min(stall, 60.0))
            try:
                self.wfile.write(body[half:])
            except OSError:  # the client is gone
                pass
            return
        mode = self.cds.take_truncation()
        if mode is None:
            self._send(status, body, job.content_type, headers)
            return
        part = body[: max(1, int(len(body) * self.cds.faults.truncate_fraction))]
        if mode == "short":
            # a consistent HTTP reply that is shorter than the size the job announced
            self._send(status, part, job.content_type, headers)
        else:
            # announce everything, send a part and drop the connection
            self.close_connection = True
            self._send(status, part, job.content_type, {**headers, "Connection": "close"}, length=len(body))
            self.wfile.flush()


@pytest.fixture
def cds_server():
    """A started :class:`CDSTestServer`; stopped when the test ends."""
    server = CDSTestServer().start()
    try:
        yield server
    finally:
        server.stop()
