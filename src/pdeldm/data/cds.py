"""Fetch ERA5 from the Copernicus Climate Data Store (CDS), one month per call, safely.

The real ``cdsapi`` client (0.7.7) does the protocol work; this module wraps it so that a
pipeline job either leaves a validated, normalised monthly file at its target or nothing:

* :func:`build_request` writes the request in today's CDS style;
* :func:`cds_credentials` resolves ``url``/``key`` exactly as the client does, but fails with a
  message that says what to set instead of a traceback from inside the client;
* :func:`retrieve_month` submits, waits, downloads to a temporary file, checks the size, the
  variables, the time steps and the area, normalises (``pdeldm.data.era5.normalise_era5``) and
  renames the result onto the target;
* :func:`main` is the command line used by ``workflow/rules/fetch.smk``.

Why so defensive: depending on the key style (legacy ``UID:KEY`` or a personal access token) and
the fault, the client raises ``Exception``, ``requests.HTTPError``, ``ChunkedEncodingError``,
``AssertionError`` or ``ConnectionError`` (see ``/work/shared/notes/data-sources-and-cdsapi.md``),
and a size check alone does not prove that the file holds what was asked for.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger

ALL_HOURS: tuple[str, ...] = tuple(f"{hour:02d}:00" for hour in range(24))

#: CDS request name -> short name of the variable in the netCDF the new CDS writes.
SHORT_NAMES: dict[str, str] = {
    "2m_temperature": "t2m",
    "2m_dewpoint_temperature": "d2m",
    "mean_sea_level_pressure": "msl",
    "surface_pressure": "sp",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "sea_surface_temperature": "sst",
    "skin_temperature": "skt",
    "snow_depth": "sd",
    "total_precipitation": "tp",
    "surface_solar_radiation_downwards": "ssrd",
    "surface_thermal_radiation_downwards": "strd",
    "total_cloud_cover": "tcc",
    "land_sea_mask": "lsm",
    "geopotential": "z",
    "specific_humidity": "q",
    "relative_humidity": "r",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "vertical_velocity": "w",
}

RC_HELP = (
    "set CDSAPI_URL=https://cds.climate.copernicus.eu/api and CDSAPI_KEY=<your personal access "
    "token> (see https://cds.climate.copernicus.eu/how-to-api), or write them as the lines "
    "'url: ...' and 'key: ...' to ~/.cdsapirc (or to the file named by CDSAPI_RC)"
)


class CDSError(RuntimeError):
    """A CDS retrieval failed (server error, failed job, broken or wrong download)."""


# --------------------------------------------------------------------------------------------
# Requests and credentials
# --------------------------------------------------------------------------------------------
def short_name(variable: str) -> str:
    """Short netCDF name of a CDS variable name (``2m_temperature`` -> ``t2m``)."""
    try:
        return SHORT_NAMES[variable]
    except KeyError:
        raise InputError(
            f"unknown ERA5 variable {variable!r}: pdeldm.data.cds knows {sorted(SHORT_NAMES)}"
        ) from None


def output_names(variables: Sequence[str], pressure_levels: Sequence[str] | None = None) -> list[str]:
    """Variable names in the normalised monthly file.

    Single-level variables keep their short name (``t2m``); pressure-level ones get the level
    appended (``t`` at 850 hPa -> ``t850``) so that one flat file holds every predictor.
    """
    if not pressure_levels:
        return [short_name(v) for v in variables]
    return [f"{short_name(v)}{int(float(p))}" for v in variables for p in pressure_levels]


def _check_area(area: Sequence[float]) -> list[float]:
    if len(area) != 4:
        raise InputError(f"era5 area must be [N, W, S, E], got {list(area)!r}")
    north, west, south, east = (float(a) for a in area)
    if not (-90.0 <= south < north <= 90.0):
        raise InputError(f"era5 area [N, W, S, E] = {list(area)!r}: need -90 <= S < N <= 90")
    if not (-180.0 <= west < east <= 360.0):
        raise InputError(f"era5 area [N, W, S, E] = {list(area)!r}: need W < E (degrees east)")
    return [north, west, south, east]


def build_request(
    variables: Sequence[str],
    year: int,
    month: int,
    area: Sequence[float],
    product_type: str = "reanalysis",
    times: Sequence[str] | None = None,
    pressure_levels: Sequence[str | int] | None = None,
) -> dict[str, Any]:
    """Request for one month of ERA5 in today's CDS style.

    ``area`` is ``[N, W, S, E]`` in degrees; ``times`` defaults to all 24 hours; ``day`` lists
    exactly the days of that month (the CDS rejects or silently drops impossible dates).
    ``pressure_levels`` (hPa) is only for ``reanalysis-era5-pressure-levels``.
    """
    if not variables:
        raise InputError("era5 request: no variables given")
    for variable in variables:
        short_name(variable)  # fail early on a typo, not after a queue wait
    year, month = int(year), int(month)
    if not 1 <= month <= 12:
        raise InputError(f"era5 request: month must be 1..12, got {month}")
    if not 1940 <= year <= 2100:
        raise InputError(f"era5 request: year {year} is outside ERA5 (1940 onwards)")
    hours = list(ALL_HOURS if times is None else times)
    for hour in hours:
        if not re.fullmatch(r"([01]\d|2[0-3]):00", str(hour)):
            raise InputError(f"era5 request: time {hour!r} is not 'HH:00'")
    n_days = calendar.monthrange(year, month)[1]
    request: dict[str, Any] = {
        "product_type": [product_type],
        "variable": list(variables),
        "year": [f"{year:04d}"],
        "month": [f"{month:02d}"],
        "day": [f"{day:02d}" for day in range(1, n_days + 1)],
        "time": [str(h) for h in hours],
        "area": _check_area(area),
        "data_format": "netcdf",
        "download_format": "unarchived",
    }
    if pressure_levels:
        request["pressure_level"] = [str(int(float(p))) for p in pressure_levels]
    return request


def request_times(request: Mapping[str, Any]) -> pd.DatetimeIndex:
    """All valid times a request asks for (days that do not exist in the month are dropped)."""
    stamps = []
    for year in request["year"]:
        for month in request["month"]:
            n_days = calendar.monthrange(int(year), int(month))[1]
            for day in request["day"]:
                if int(day) > n_days:
                    continue
                for hour in request["time"]:
                    stamps.append(f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{hour}")
    return pd.DatetimeIndex(sorted(stamps))


def _read_rc(path: Path) -> dict[str, str]:
    """Parse a ``.cdsapirc`` the way the client does (``name: value`` lines)."""
    config: dict[str, str] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the CDS credentials file {path}: {exc}") from None
    for line in text.splitlines():
        if ":" in line:
            name, value = line.strip().split(":", 1)
            if name in ("url", "key", "verify"):
                config[name] = value.strip()
    return config


def check_key(key: str, source: str) -> str:
    """Return ``key`` if it has one of the two formats the CDS accepts, else raise InputError."""
    key = key.strip()
    if not key:
        raise InputError(f"the CDS key from {source} is empty; {RC_HELP}")
    if re.search(r"\s|[<>]", key):
        raise InputError(
            f"the CDS key from {source} is malformed (it contains spaces or '<>', a placeholder?); "
            "it must be the personal access token from your CDS profile page "
            "(e.g. 'key: 01234567-89ab-cdef-0123-456789abcdef')"
        )
    if ":" in key:
        # legacy 'UID:APIKEY'; the client splits it into exactly two parts for HTTP Basic auth
        parts = key.split(":")
        if len(parts) != 2 or not all(parts):
            raise InputError(
                f"the CDS key from {source} is malformed: a key with ':' must be 'UID:APIKEY' "
                "(legacy CDS); today's CDS uses a personal access token without ':'"
            )
    elif not re.fullmatch(r"[A-Za-z0-9._-]{8,}", key):
        raise InputError(
            f"the CDS key from {source} is malformed: expected a personal access token "
            "(letters, digits and '-', e.g. 01234567-89ab-cdef-0123-456789abcdef)"
        )
    return key


def cds_credentials(
    url: str | None = None,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Resolve the CDS ``(url, key)`` in the client's own order, with helpful errors.

    Order (as ``cdsapi.api.get_url_key_verify``): the arguments, the environment variables
    ``CDSAPI_URL``/``CDSAPI_KEY``, then the file named by ``CDSAPI_RC`` (default
    ``~/.cdsapirc``) with ``url:`` and ``key:`` lines.
    """
    env = os.environ if env is None else env
    url_source = key_source = "the argument"
    if url is None and env.get("CDSAPI_URL"):
        url, url_source = env["CDSAPI_URL"], "CDSAPI_URL"
    if key is None and env.get("CDSAPI_KEY"):
        key, key_source = env["CDSAPI_KEY"], "CDSAPI_KEY"
    if url is None or key is None:
        home = env.get("HOME")
        default_rc = Path(home) / ".cdsapirc" if home else Path("~/.cdsapirc").expanduser()
        rc = Path(env["CDSAPI_RC"]).expanduser() if env.get("CDSAPI_RC") else default_rc
        if not rc.is_file():
            missing = " and ".join(n for n, v in (("url", url), ("key", key)) if v is None)
            where = f"CDSAPI_RC={env['CDSAPI_RC']} does not exist" if env.get("CDSAPI_RC") else (
                f"{rc} does not exist"
            )
            raise InputError(f"no CDS credentials: the {missing} is not set and {where}; {RC_HELP}")
        rc_config = _read_rc(rc)
        if url is None:
            if not rc_config.get("url"):
                raise InputError(
                    f"the CDS credentials file {rc} has no 'url:' line; add "
                    "'url: https://cds.climate.copernicus.eu/api' (or set CDSAPI_URL)"
                )
            url, url_source = rc_config["url"], str(rc)
        if key is None:
            if not rc_config.get("key"):
                raise InputError(
                    f"the CDS credentials file {rc} has no 'key:' line; add "
                    "'key: <your personal access token>' from your CDS profile page "
                    "(or set CDSAPI_KEY)"
                )
            key, key_source = rc_config["key"], str(rc)
    url = url.strip().rstrip("/")
    if not re.match(r"https?://[^\s/]+", url):
        raise InputError(
            f"the CDS url from {url_source} is malformed ({url!r}); "
            "expected e.g. https://cds.climate.copernicus.eu/api"
        )
    return url, check_key(key, key_source)


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------
def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.2f} MB"


class _ClientLog:
    """Collects the client's messages: forwards them to our log and keeps the last few for errors."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.recent: deque[str] = deque(maxlen=6)

    def _emit(self, level: int, msg: Any, *args: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(a) for a in (msg, *args))
        text = text.strip()
        if not text:
            return
        if level >= logging.WARNING and not text.startswith(("Retrying", "Sleeping")):
            self.recent.append(" ".join(text.split()))
        self.log.log(level, "CDS: %s", text)

    def info(self, msg: Any, *args: Any, **_: Any) -> None:
        self._emit(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any, **_: Any) -> None:
        self._emit(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any, **_: Any) -> None:
        self._emit(logging.ERROR, msg, *args)


class _ForwardHandler(logging.Handler):
    """Sends records of the client's libraries (multiurl retries) to a :class:`_ClientLog`."""

    def __init__(self, sink: _ClientLog) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink._emit(record.levelno, record.getMessage())


@contextlib.contextmanager
def _capture_client_output(sink: _ClientLog) -> Iterator[None]:
    """Route warnings and library log records raised while the client runs into our log."""
    handler = _ForwardHandler(sink)
    loggers = [logging.getLogger(name) for name in ("multiurl", "ecmwf.datastores")]
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            for warning in caught:
                sink.warning(str(warning.message))


def _server_message(exc: BaseException) -> str:
    """The most useful text of a client exception (HTTP status and the server's reply), one line."""
    text = str(exc).strip() or type(exc).__name__
    response = getattr(exc, "response", None)
    # for 4xx the client already put the server's JSON details into the text; for 5xx it did not
    if response is not None and getattr(response, "status_code", 0) >= 500 and (response.text or "").strip():
        text = f"{text} (server said: {response.text.strip()[:500]})"
    return f"{type(exc).__name__}: " + " / ".join(line.strip() for line in text.splitlines() if line.strip())


def _is_auth_failure(message: str) -> bool:
    return bool(re.search(r"\b401\b|authentication failed|unauthori[sz]ed", message, re.I))


def _open_download(raw: Path, workdir: Path) -> xr.Dataset:
    """Open the downloaded file; a zip (the CDS zips several netCDFs, e.g. instant + accum) is merged."""
    try:
        if zipfile.is_zipfile(raw):
            with zipfile.ZipFile(raw) as archive:
                members = [m for m in archive.namelist() if m.endswith(".nc")]
                if not members:
                    raise CDSError(f"the CDS sent a zip without netCDF files: {archive.namelist()}")
                parts = []
                for i, member in enumerate(sorted(members)):
                    part = workdir / f"part{i}.nc"
                    with archive.open(member) as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    parts.append(xr.load_dataset(part))
            return xr.merge(parts, compat="override", join="exact", combine_attrs="override")
        return xr.load_dataset(raw)
    except CDSError:
        raise
    except Exception as exc:  # netCDF/HDF5 errors come in many types
        head = raw.read_bytes()[:64] if raw.exists() else b""
        first_line = (str(exc).splitlines() or [""])[0]
        raise CDSError(
            f"the downloaded file is not a readable netCDF ({type(exc).__name__}: {first_line}); "
            f"first bytes: {head!r}"
        ) from exc


def _flatten_levels(ds: xr.Dataset) -> xr.Dataset:
    """Turn pressure-level variables into one variable per level (``t`` -> ``t850``)."""
    level_dim = next((d for d in ("pressure_level", "level", "isobaricInhPa") if d in ds.dims), None)
    if level_dim is None:
        return ds
    out = ds.drop_vars([v for v in ds.data_vars if level_dim in ds[v].dims])
    for name, var in ds.data_vars.items():
        if level_dim not in var.dims:
            continue
        for level in ds[level_dim].values:
            flat = var.sel({level_dim: level}).drop_vars(level_dim)
            flat.attrs = {**var.attrs, "pressure_level_hPa": float(level)}
            out[f"{name}{int(float(level))}"] = flat
    return out.drop_vars(level_dim, errors="ignore")


def _era5_module() -> Any:
    # imported late: pdeldm.data.era5 is a sibling module that owns the ERA5 format rules
    from pdeldm.data import era5

    return era5


def retrieve_month(
    dataset: str,
    request: Mapping[str, Any],
    target: str | os.PathLike[str],
    *,
    url: str,
    key: str,
    retry_max: int = 5,
    sleep_max: float = 60.0,
    timeout: float = 120.0,
    expected_variables: Sequence[str] | None = None,
    log: logging.Logger | None = None,
) -> Path:
    """Download one month from the CDS, validate and normalise it, and write it to ``target``.

    ``expected_variables`` are the names in the final file (default: from the request, see
    :func:`output_names`). On any failure nothing is left at ``target`` (and no temporary file
    either); the error is a :class:`CDSError` (or :class:`InputError` for a rejected key) that
    carries the server's message.
    """
    import cdsapi  # imported here: the rest of the package must not need it
    import requests

    target = Path(target)
    log = log or stage_logger("cds")
    request = dict(request)
    label = f"{dataset} {'/'.join(request['year'])}-{'/'.join(request['month'])}"
    levels = request.get("pressure_level")
    expected = list(expected_variables or output_names(request["variable"], levels))
    times = request_times(request)
    sink = _ClientLog(log)

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        # a failed re-fetch must not leave the old month behind looking current (as Snakemake does)
        log.info("%s: removing the existing %s before fetching", label, target)
        target.unlink()
    # the scratch directory sits next to the target: same file system, so the final rename is atomic
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch:
        raw = Path(scratch) / "download.nc"
        log.info(
            "%s: request sent to %s (%d variables, %d time steps, area %s)",
            label, url, len(request["variable"]), len(times), request.get("area"),
        )
        session = requests.Session()  # own session: legacy clients otherwise share one (and its key)
        started = time.monotonic()
        try:
            with _capture_client_output(sink):
                client = cdsapi.Client(
                    url=url,
                    key=key,
                    quiet=True,
                    progress=False,
                    delete=False,  # legacy mode would otherwise DELETE the task from __del__
                    retry_max=int(retry_max),
                    sleep_max=float(sleep_max),
                    timeout=float(timeout),
                    info_callback=sink.info,
                    warning_callback=sink.warning,
                    error_callback=sink.error,
                    session=session,
                )
                result = client.retrieve(dataset, request)  # waits while queued/running
                announced = int(result.content_length)
                log.info("%s: job completed after %.1f s, downloading %s", label,
                         time.monotonic() - started, _mib(announced))
                t0 = time.monotonic()
                result.download(str(raw))
        except Exception as exc:  # Exception, HTTPError, ChunkedEncodingError, AssertionError, ...
            message = _server_message(exc)
            recent = [m for m in sink.recent if m not in message]
            if recent:
                message += " | last client messages: " + " / ".join(recent)
            if _is_auth_failure(message):
                raise InputError(
                    f"the CDS at {url} rejected the key ({message}); check CDSAPI_KEY or the "
                    "'key:' line of ~/.cdsapirc (today's CDS needs the personal access token, "
                    "not the old 'UID:KEY')"
                ) from None
            raise CDSError(f"CDS retrieval of {label} {request['variable']} failed: {message}") from None
        finally:
            session.close()

        size = raw.stat().st_size if raw.exists() else 0
        elapsed = max(time.monotonic() - t0, 1e-6)
        log.info("%s: downloaded %s in %.1f s (%s/s)", label, _mib(size), elapsed, _mib(size / elapsed))
        if size != announced:  # the client checks this too, but not in every code path
            raise CDSError(f"{label}: downloaded {size} bytes but the CDS announced {announced}")

        ds = _flatten_levels(_open_download(raw, Path(scratch)))
        checked = Path(scratch) / "checked.nc"  # what check_era5_file reads (zips merged, levels flat)
        ds.to_netcdf(checked)
        era5 = _era5_module()
        # ERA5 SST is NaN over land; allow that in the check (the file keeps the NaNs)
        maskable = {name: 271.35 for name in expected if name == "sst"}
        try:
            era5.check_era5_file(checked, expected, times=times, area=request.get("area"),
                                 fill_values=maskable)
        except InputError as exc:
            raise CDSError(f"{label}: the CDS sent a file that does not match the request: {exc}") from None
        normalised = era5.normalise_era5(ds)
        normalised.attrs.update(
            source=f"Copernicus Climate Data Store, {dataset}",
            cds_request=json.dumps(request, sort_keys=True),
        )
        log.info(
            "%s: validated %s (%d time steps, %d x %d grid)", label, ", ".join(expected),
            normalised.sizes.get("time", 0), normalised.sizes.get("latitude", 0),
            normalised.sizes.get("longitude", 0),
        )
        encoding = {
            name: {"zlib": True, "complevel": 1}
            for name, var in normalised.data_vars.items()
            if var.dtype.kind == "f"
        }
        with atomic_output(target) as tmp:
            normalised.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    log.info("%s: wrote %s", label, target)
    return target


def merge_groups(files: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 log: logging.Logger | None = None) -> Path:
    """Merge the normalised per-group files of one month into one file (atomically).

    The groups come from different CDS requests (even datasets), so the time axis and the grid
    must agree exactly; a variable may not appear in two groups.
    """
    log = log or stage_logger("cds")
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("merge: no ERA5 group files given")
    parts = [xr.load_dataset(p) for p in paths]
    ref, ref_path = parts[0], paths[0]
    seen: dict[str, Path] = {}
    for path, ds in zip(paths, parts, strict=True):
        for name in ("time", "latitude", "longitude"):
            if name not in ds.coords:
                raise InputError(f"{path}: no '{name}' coordinate; was it written by pdeldm.data.cds?")
            if ds.sizes[name] != ref.sizes[name] or not np.array_equal(ds[name].values, ref[name].values):
                raise InputError(f"{path}: '{name}' differs from {ref_path} (groups must share area and times)")
        for var in ds.data_vars:
            if var in seen:
                raise InputError(f"variable '{var}' is in both {seen[var]} and {path}; list it in one group only")
            seen[str(var)] = path
    merged = xr.merge(parts, join="exact", compat="override", combine_attrs="drop_conflicts")
    merged.attrs.pop("cds_request", None)
    merged.attrs["source_files"] = ", ".join(p.name for p in paths)
    encoding = {name: {"zlib": True, "complevel": 1} for name in merged.data_vars}
    with atomic_output(out) as tmp:
        merged.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    log.info("merged %d group files (%s) into %s", len(paths), ", ".join(sorted(seen)), out)
    return Path(out)


# --------------------------------------------------------------------------------------------
# Command line (used by workflow/rules/fetch.smk)
# --------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pdeldm.data.cds",
        description="Fetch one month of ERA5 from the CDS into a normalised netCDF file.",
    )
    p.add_argument("--config", type=Path, help="JSON or YAML file holding the 'era5' block (or a whole config)")
    p.add_argument("--group", help="variable group of the 'era5' block (with --config), also used in log lines")
    p.add_argument("--dataset", help="CDS dataset, e.g. reanalysis-era5-single-levels")
    p.add_argument("--product-type", default=None)
    p.add_argument("--variables", nargs="+", help="CDS variable names")
    p.add_argument("--pressure-level", nargs="+", default=None, help="hPa, pressure-level datasets only")
    p.add_argument("--area", nargs=4, type=float, metavar=("N", "W", "S", "E"))
    p.add_argument("--times", nargs="+", default=None, help="HH:00 (default: all 24 hours)")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--month", type=int, required=True)
    p.add_argument("--retry-max", type=int, default=None)
    p.add_argument("--sleep-max", type=float, default=None)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, default=None)
    return p


def group_spec(era5_cfg: Mapping[str, Any], group: str) -> dict[str, Any]:
    """Dataset, variables and pressure levels of one group of the ``era5`` config block.

    A group is either a list of CDS variable names (fetched from ``era5.dataset``) or a mapping
    ``{dataset, variables, pressure_level}``.
    """
    groups = era5_cfg.get("groups") or {}
    if group not in groups:
        raise InputError(f"era5.groups has no group {group!r} (have {sorted(groups)})")
    spec = groups[group]
    if isinstance(spec, Mapping):
        variables = spec.get("variables")
        dataset = spec.get("dataset", era5_cfg.get("dataset"))
        levels = spec.get("pressure_level")
    else:
        variables, dataset, levels = spec, era5_cfg.get("dataset"), None
    if not variables:
        raise InputError(f"era5.groups.{group}: no variables")
    if not dataset:
        raise InputError(f"era5.groups.{group}: no dataset (set era5.dataset or the group's 'dataset')")
    if "pressure-levels" in dataset and not levels:
        raise InputError(f"era5.groups.{group}: {dataset} needs 'pressure_level' (e.g. ['850'])")
    return {
        "dataset": dataset,
        "variables": list(variables),
        "pressure_level": [str(p) for p in levels] if levels else None,
    }


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        if path.suffix == ".json":
            cfg = json.loads(text)
        else:
            import yaml

            cfg = yaml.safe_load(text)
    except Exception as exc:
        raise InputError(f"cannot read the config file {path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: expected a mapping")
    return cfg.get("era5", cfg)


def _merge_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pdeldm.data.cds merge",
                                description="Merge the ERA5 group files of one month.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, default=None)
    args = p.parse_args(argv)
    log = stage_logger("merge_era5", args.log)
    try:
        merge_groups(args.files, args.out, log)
    except InputError as exc:
        log.error("%s", exc)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (errors are one readable line).

    ``python -m pdeldm.data.cds --dataset ... --variables ... --area N W S E --year Y --month M
    --out FILE [--log LOG]`` fetches one month; ``python -m pdeldm.data.cds merge --out FILE
    FILES...`` merges the group files of a month.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return _merge_main(argv[1:])
    args = _parser().parse_args(argv)
    log = stage_logger(f"fetch_era5.{args.group or 'era5'}", args.log)
    try:
        era5_cfg = _load_config_file(args.config) if args.config else {}
        spec: dict[str, Any] = {"dataset": None, "variables": None, "pressure_level": None}
        if args.config and args.group:
            spec = group_spec(era5_cfg, args.group)
        dataset = args.dataset or spec["dataset"]
        variables = args.variables or spec["variables"]
        levels = args.pressure_level or spec["pressure_level"]
        area = args.area or era5_cfg.get("area")
        if not dataset or not variables or not area:
            raise InputError("need --dataset, --variables and --area (or --config with --group)")

        def setting(value: Any, name: str, default: Any) -> Any:
            return value if value is not None else era5_cfg.get(name, default)

        request = build_request(
            variables, args.year, args.month, area,
            product_type=setting(args.product_type, "product_type", "reanalysis"),
            times=setting(args.times, "times", None),
            pressure_levels=levels,
        )
        url, key = cds_credentials()
        retrieve_month(
            dataset, request, args.out, url=url, key=key,
            retry_max=setting(args.retry_max, "retry_max", 5),
            sleep_max=setting(args.sleep_max, "sleep_max", 60.0),
            timeout=setting(args.timeout, "timeout", 120.0),
            expected_variables=output_names(variables, levels),
            log=log,
        )
    except (InputError, CDSError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    # Snakemake stops jobs with SIGTERM: turn it into SystemExit so temporary files are cleaned up
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
