"""Static high-resolution inputs (orography, land fraction, land cover) on the target grid.

The static channels of the paper configuration come from external datasets on their own grids (a
DEM or land-cover map on a regular lat-lon grid, or fields already on the COSMO-CLM grid).
:func:`build_static_inputs` brings them onto the grid of a COSMO-CLM target file (the rotated EUR-11
grid, or the study's EPSG:3035 2 km grid, both read with :func:`pdeldm.data.cosmo.open_cosmo`) and
writes the static file of ``docs/interfaces.md`` section 1 that the store reads.

Methods
    Orography and land fraction: first-order conservative remapping with
    :class:`pdeldm.data.regrid.Regridder` (area means; a land-sea mask becomes a land fraction).
    Land cover: the *area-weighted mode*. The indicator of each class is remapped conservatively,
    which gives the fraction of every target cell the class covers; the most common class is the
    largest fraction (ties go to the class listed first), one-hot encoded as ``LC_01 .. LC_NN``.
    Sources already on the target's grid (same grid mapping and lattice, possibly larger) are cut
    out, not resampled.

Units and values (InputError names the file, variable and config key)
    Orography must be in metres: ``km`` and geopotential (``m2 s-2``) are rejected with the
    conversion to apply, because silently rescaling heights is how wrong orography goes unnoticed;
    missing units are taken as metres (logged). Land fraction: ``%``/``percent`` units are converted
    to 0..1 with a logged note (that is unambiguous); values outside [0, 1] otherwise are an error
    (percent without units is not guessed). NaNs (decoded ``_FillValue``) in the part of a source that
    covers the target are an error unless the field's ``fill_value`` is set. Each source's cells must
    cover the target's cells plus a 1.5-cell margin that the remapping samples.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from pdeldm.data.cosmo import (
    EARTH_RADIUS_M,
    GRID_MAPPING_VARIABLE,
    PROJECTED_X_ATTRS,
    PROJECTED_Y_ATTRS,
    crs_from_params,
    grid_kind,
    grid_mapping_cf_attrs,
    grid_mapping_params,
    normalise_grid,
    open_cosmo,
)
from pdeldm.data.regrid import Regridder, TargetGrid
from pdeldm.data.static import RLAT_ATTRS, RLON_ATTRS
from pdeldm.errors import InputError
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger

FIELDS = ("orography", "land_fraction", "land_cover")
DEFAULT_CLASSES = 16
DEFAULTS: dict[str, Any] = {"land_cover": None, "supersample": 8, "memory_mb": 512}
_FIELD_KEYS = {"file", "variable", "fill_value"}
_METRES = frozenset({"m", "metre", "metres", "meter", "meters", "m asl", "m a.s.l.", "m above sea level"})
_KM = frozenset({"km", "kilometre", "kilometres", "kilometer", "kilometers"})
_GEOPOTENTIAL = frozenset({"m2 s-2", "m**2 s**-2", "m^2 s^-2", "m2/s2", "m^2/s^2", "m2 s**-2"})
_FRACTION = frozenset({"", "1", "-", "0-1", "0 - 1", "(0 - 1)", "fraction", "dimensionless"})
_PERCENT = frozenset({"%", "percent", "percentage"})
HSURF_RANGE_M = (-500.0, 9000.0)
#: Margin (in target cells) by which a source must extend beyond the target's cells: the
#: conservative remapping samples an intermediate grid reaching about one cell past the domain.
COVERAGE_MARGIN_CELLS = 1.5
#: Relative tolerance on the regularity of a lat-lon source axis (float32 coordinates of fine
#: DEMs are irregular at the 1e-4 level).
_LATLON_RTOL = 1e-2
#: One degree of arc on COSMO's sphere (m): converts projected cell sizes to degrees.
_M_PER_DEGREE = EARTH_RADIUS_M * np.pi / 180.0


# --------------------------------------------------------------------------------------------
# configuration


def _validate(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Config with defaults; InputError naming the offending ``static_inputs`` key."""
    if not isinstance(cfg, Mapping):
        raise InputError(f"static_inputs: expected a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(FIELDS) - set(DEFAULTS))
    if unknown:
        raise InputError(f"static_inputs: unknown key(s) {unknown}; expected {list(FIELDS) + ['supersample', 'memory_mb']}")
    out = {**DEFAULTS, **cfg}
    for name in FIELDS:
        spec = out.get(name)
        if spec is None and name == "land_cover":
            continue
        if not isinstance(spec, Mapping):
            raise InputError(f"static_inputs.{name}: expected a mapping with 'file' and 'variable', got {spec!r}")
        allowed = _FIELD_KEYS | ({"classes"} if name == "land_cover" else set())
        bad = sorted(set(spec) - allowed)
        missing = sorted({"file", "variable"} - set(spec))
        if bad or missing:
            raise InputError(f"static_inputs.{name}: unknown key(s) {bad}, missing key(s) {missing}; allowed {sorted(allowed)}")
        spec = dict(spec)
        if name == "land_cover":
            spec["codes"] = _class_codes(spec.get("classes", DEFAULT_CLASSES))
        out[name] = spec
    if int(out["supersample"]) < 1:
        raise InputError(f"static_inputs.supersample: must be >= 1, got {out['supersample']}")
    return out


def _class_codes(classes: int | Sequence[int]) -> list[int]:
    """Class codes: ``N`` -> 1..N; a list -> those codes (LC_k is the k-th)."""
    if isinstance(classes, bool):
        raise InputError(f"static_inputs.land_cover.classes: expected an int or a list of ints, got {classes!r}")
    if isinstance(classes, int):
        if classes < 1:
            raise InputError(f"static_inputs.land_cover.classes: must be >= 1, got {classes}")
        return list(range(1, classes + 1))
    codes = [int(c) for c in classes]
    if not codes or len(set(codes)) != len(codes) or any(c != v for c, v in zip(codes, classes, strict=True)):
        raise InputError(f"static_inputs.land_cover.classes: expected distinct integer codes, got {classes!r}")
    return codes


def land_cover_names(n: int) -> list[str]:
    """Variable names of the one-hot channels: ``LC_01 .. LC_NN``."""
    width = max(2, len(str(n)))
    return [f"LC_{k:0{width}d}" for k in range(1, n + 1)]


# --------------------------------------------------------------------------------------------
# the target grid


@dataclass
class _Target:
    """The target grid: native 1-D axes (degrees or metres), 2-D lat/lon, grid mapping, spacing."""

    path: Path
    rlat: np.ndarray
    rlon: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    params: dict[str, float]
    dx: float
    dy: float

    @property
    def kind(self) -> str:
        return grid_kind(self.params)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rlat.size, self.rlon.size)

    def regrid_grid(self) -> TargetGrid:
        """The grid to hand to :class:`Regridder` (it handles rotated and projected grids alike)."""
        return TargetGrid(rlat=self.rlat, rlon=self.rlon, pole=self.params, lat=self.lat, lon=self.lon)

    def required_box(self) -> tuple[float, float, float, float]:
        """``(lat0, lat1, lon0, lon1)`` a source must cover: the target's cell corners plus the margin."""
        def edges(c: np.ndarray) -> np.ndarray:
            step = float(np.median(np.diff(c)))
            return np.concatenate([c - step / 2, [c[-1] + step / 2]])

        transformer = pyproj.Transformer.from_crs(crs_from_params(self.params), "EPSG:4326", always_xy=True)
        lon, lat = transformer.transform(*np.meshgrid(edges(self.rlon), edges(self.rlat)))
        if self.kind == "rotated":
            cell_deg = max(abs(float(np.median(np.diff(a)))) for a in (self.rlat, self.rlon))
        else:
            cell_deg = max(self.dx, self.dy) / _M_PER_DEGREE
        m_lat = COVERAGE_MARGIN_CELLS * cell_deg
        m_lon = m_lat / max(float(np.cos(np.deg2rad(np.max(np.abs(lat))))), 1e-6)
        return (float(lat.min()) - m_lat, float(lat.max()) + m_lat, float(lon.min()) - m_lon, float(lon.max()) + m_lon)


def _open_target(path: Path, variable: str) -> _Target:
    da = open_cosmo([path], variable=variable, check_values=False)  # only the grid is needed
    try:
        return _Target(
            path=path,
            rlat=da["rlat"].values.astype(np.float64),
            rlon=da["rlon"].values.astype(np.float64),
            lat=da["lat"].values.astype(np.float64),
            lon=da["lon"].values.astype(np.float64),
            params=grid_mapping_params(da),
            dx=float(da.attrs["dx_m"]),
            dy=float(da.attrs["dy_m"]),
        )
    finally:
        da.close()


# --------------------------------------------------------------------------------------------
# reading and checking the sources


@dataclass
class _Source:
    """One field's data, checked: on (latitude, longitude) ascending, or already on the target grid."""

    name: str  # config key: orography / land_fraction / land_cover
    path: Path
    variable: str
    data: xr.DataArray
    on_target: bool

    @property
    def label(self) -> str:
        return f"{self.path}: variable '{self.variable}' (static_inputs.{self.name})"


def _latlon_dims(ds: xr.Dataset, da: xr.DataArray) -> tuple[str | None, str | None]:
    """Names of the 1-D latitude and longitude dims of ``da`` (by name, standard_name or units)."""
    lat_dim = lon_dim = None
    for dim in da.dims:
        attrs = ds[dim].attrs if dim in ds.variables else {}
        std, units = attrs.get("standard_name"), str(attrs.get("units", "")).lower()
        if dim in ("lat", "latitude") or std == "latitude" or units in ("degrees_north", "degree_north", "degrees_n"):
            lat_dim = str(dim)
        elif dim in ("lon", "longitude") or std == "longitude" or units in ("degrees_east", "degree_east", "degrees_e"):
            lon_dim = str(dim)
    return lat_dim, lon_dim


def _squeeze(da: xr.DataArray, keep: Sequence[str], label: str) -> xr.DataArray:
    """Drop singleton extra dims (time, band); anything else is an error."""
    extra = [d for d in da.dims if d not in keep]
    for dim in extra:
        if da.sizes[dim] != 1:
            raise InputError(f"{label} has dimension '{dim}' of size {da.sizes[dim]}; expected a single 2-D field")
    da = da.squeeze(extra, drop=True) if extra else da
    return da.drop_vars([c for c in da.coords if c not in keep]).transpose(*keep)


def _normalise_latlon(da: xr.DataArray, label: str) -> xr.DataArray:
    """Longitude in -180..180, both axes ascending and regular."""
    lon = da["longitude"].values.astype(np.float64)
    if lon.max() > 180.0:
        da = da.assign_coords(longitude=(lon + 180.0) % 360.0 - 180.0)
    da = da.sortby(["latitude", "longitude"])
    for name in ("latitude", "longitude"):
        values = da[name].values.astype(np.float64)
        if values.size < 2:
            raise InputError(f"{label}: {name} has {values.size} point(s); need a 2-D grid")
        diffs = np.diff(values)
        step = float(np.median(diffs))
        if step <= 0 or float(np.max(np.abs(diffs - step))) > _LATLON_RTOL * step:
            raise InputError(f"{label}: {name} is not a regular axis (steps {diffs.min():.6g}..{diffs.max():.6g} deg)")
    return da


def _crop_latlon(da: xr.DataArray, target: _Target, label: str) -> xr.DataArray:
    """The part of a lat-lon source needed for the target (+1 source cell), after a coverage check."""
    lat0, lat1, lon0, lon1 = target.required_box()
    dlat = float(np.median(np.diff(da["latitude"].values)))
    dlon = float(np.median(np.diff(da["longitude"].values)))
    have = (float(da["latitude"][0]) - dlat / 2, float(da["latitude"][-1]) + dlat / 2,
            float(da["longitude"][0]) - dlon / 2, float(da["longitude"][-1]) + dlon / 2)
    if lat0 < have[0] or lat1 > have[1] or lon0 < have[2] or lon1 > have[3]:
        raise InputError(
            f"{label}: the source grid (cells span latitude {have[0]:.3f}..{have[1]:.3f}, longitude "
            f"{have[2]:.3f}..{have[3]:.3f}) does not cover the target grid of {target.path} (its cells plus a "
            f"{COVERAGE_MARGIN_CELLS:g}-cell margin span latitude {lat0:.3f}..{lat1:.3f}, longitude {lon0:.3f}..{lon1:.3f}); "
            f"use a file covering a larger area"
        )
    return da.sel(latitude=slice(lat0 - dlat, lat1 + dlat), longitude=slice(lon0 - dlon, lon1 + dlon))


def _cut_on_target(da: xr.DataArray, src_params: Mapping[str, float], target: _Target, label: str) -> xr.DataArray:
    """A source on the target's own grid mapping and lattice: select the target's cells exactly."""
    same = set(src_params) == set(target.params) and all(
        np.isclose(src_params[k], target.params[k], rtol=1e-9, atol=1e-6) for k in target.params
    )
    if not same:
        raise InputError(f"{label}: its grid mapping {dict(src_params)} differs from the target's {target.params} "
                         f"({target.path}); give it on a regular lat-lon grid instead")
    index = {}
    for dim, want in (("rlat", target.rlat), ("rlon", target.rlon)):
        have = da[dim].values.astype(np.float64)
        pos = da.indexes[dim].get_indexer(want, method="nearest")
        step = float(np.median(np.abs(np.diff(want))))
        if (pos < 0).any() or float(np.max(np.abs(have[pos] - want))) > 1e-3 * step:
            raise InputError(f"{label}: its {dim} axis ({have.min():.6g}..{have.max():.6g}) does not contain the target's "
                             f"cells ({want.min():.6g}..{want.max():.6g}) of {target.path}")
        index[dim] = pos
    return da.isel(rlat=index["rlat"], rlon=index["rlon"])


def _read_source(name: str, spec: Mapping[str, Any], target: _Target, log: logging.Logger) -> _Source:
    path = Path(spec["file"])
    variable = str(spec["variable"])
    if not path.is_file():
        raise InputError(f"static_inputs.{name}.file: {path} does not exist")
    try:
        ds = xr.open_dataset(path)
    except Exception as exc:  # pragma: no cover - backend-specific message
        raise InputError(f"static_inputs.{name}.file: {path} cannot be opened as netCDF ({exc})") from exc
    label = f"{path}: variable '{variable}' (static_inputs.{name})"
    if variable not in ds.data_vars:
        raise InputError(f"{path}: variable '{variable}' (static_inputs.{name}.variable) not found; "
                         f"variables present: {sorted(str(v) for v in ds.data_vars)}")
    lat_dim, lon_dim = _latlon_dims(ds, ds[variable])
    if lat_dim and lon_dim:
        da = ds[variable].rename({lat_dim: "latitude", lon_dim: "longitude"})
        da = _normalise_latlon(_squeeze(da, ("latitude", "longitude"), label), label)
        da = _crop_latlon(da, target, label)
        on_target = False
    else:
        try:
            ds, params = normalise_grid(ds, variable, str(path))
        except InputError as exc:
            raise InputError(
                f"{label} has dims {ds[variable].dims}: expected a regular lat-lon grid (dims lat/lon or "
                f"latitude/longitude) or the target's grid with its grid mapping ({exc})"
            ) from None
        da = _cut_on_target(_squeeze(ds[variable], ("rlat", "rlon"), label), params, target, label)
        on_target = True
    da = da.load().astype(np.float32)  # exact for class codes, ~1e-3 m for heights; halves memory
    ds.close()
    n_nan = int(da.isnull().sum())
    if n_nan:
        if spec.get("fill_value") is None:
            raise InputError(f"{label} has {n_nan} NaN/missing values of {da.size} where it covers the target grid; "
                             f"set static_inputs.{name}.fill_value to fill them (e.g. 0 for sea in a DEM)")
        log.info("%s: filled %d NaN/missing values with %s (static_inputs.%s.fill_value)", label, n_nan, spec["fill_value"], name)
        da = da.fillna(float(spec["fill_value"]))
    src = _Source(name, path, variable, da, on_target)
    {"orography": _check_orography, "land_fraction": _check_land_fraction, "land_cover": _check_land_cover}[name](src, spec, log)
    log.info("%s: %s grid %s%s", label, "target" if on_target else "lat-lon", tuple(da.shape),
             "" if on_target else f" (step {float(np.median(np.diff(da['latitude']))):.5g} deg, cropped to the target)")
    return src


def _check_orography(src: _Source, spec: Mapping[str, Any], log: logging.Logger) -> None:
    units = str(src.data.attrs.get("units", "")).strip()
    low = units.lower()
    if low in _KM:
        raise InputError(f"{src.label} has units '{units}'; expected m (multiply by 1000)")
    if low in _GEOPOTENTIAL:
        raise InputError(f"{src.label} has units '{units}': looks like surface geopotential; expected m "
                         f"(divide by g = 9.80665 m s-2)")
    if not units:
        log.warning("%s has no units attribute; assuming metres", src.label)
    elif low not in _METRES:
        raise InputError(f"{src.label} has units '{units}'; expected m")
    vmin, vmax = float(src.data.min()), float(src.data.max())
    if vmin < HSURF_RANGE_M[0] or vmax > HSURF_RANGE_M[1]:
        raise InputError(f"{src.label} has values {vmin:.1f}..{vmax:.1f}, outside {HSURF_RANGE_M} m; wrong units or fill values?")


def _check_land_fraction(src: _Source, spec: Mapping[str, Any], log: logging.Logger) -> None:
    units = str(src.data.attrs.get("units", "")).strip()
    if units.lower() in _PERCENT:
        log.info("%s has units '%s': converted to a fraction 0..1 (divided by 100)", src.label, units)
        src.data = src.data / 100.0
    elif units.lower() not in _FRACTION:
        raise InputError(f"{src.label} has units '{units}'; expected a fraction ('1', 0..1) or '%'")
    vmin, vmax = float(src.data.min()), float(src.data.max())
    if vmin < -1e-6 or vmax > 1.0 + 1e-6:
        raise InputError(f"{src.label} has values {vmin:g}..{vmax:g}, outside [0, 1]"
                         + (" (percent? set its units attribute to '%')" if vmax <= 100.0 + 1e-6 else ""))
    src.data = src.data.clip(0.0, 1.0)


def _check_land_cover(src: _Source, spec: Mapping[str, Any], log: logging.Logger) -> None:
    values = src.data.values
    if not np.all(np.mod(values, 1.0) == 0.0):
        raise InputError(f"{src.label} has non-integer values; expected land-cover class codes")
    present, counts = np.unique(values.astype(np.int64), return_counts=True)
    codes = spec["codes"]
    unexpected = [(int(c), int(n)) for c, n in zip(present, counts, strict=True) if c not in set(codes)]
    if unexpected:
        raise InputError(f"{src.label} has class codes outside static_inputs.land_cover.classes {codes}: "
                         f"(code, cells) {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")


# --------------------------------------------------------------------------------------------
# regridding


def _regrid(src: _Source, regridder: Regridder | None) -> np.ndarray:
    """Conservative remap of a lat-lon source (or the cut-out on-target field) -> (ny, nx) float64."""
    if src.on_target:
        return src.data.values.astype(np.float64)
    assert regridder is not None
    return regridder(src.data).values.astype(np.float64)


def _land_cover_one_hot(src: _Source, codes: Sequence[int], regridder: Regridder | None) -> np.ndarray:
    """(n_classes, ny, nx) one-hot of the area-weighted most common class (ties -> first listed)."""
    if src.on_target:
        fractions = np.stack([(src.data.values == c).astype(np.float64) for c in codes])
    else:
        assert regridder is not None
        # The class axis poses as 'time', so the regridder works through the classes in chunks that
        # fit its memory budget; the indicators stay lazy (dask) until a chunk is loaded.
        classes = xr.DataArray(np.asarray(codes, np.float64), dims="time", coords={"time": np.arange(len(codes))})
        indicators = (src.data.chunk() == classes).astype(np.float32).transpose("time", "latitude", "longitude")
        fractions = regridder(indicators).values.astype(np.float64)
    best = np.argmax(fractions, axis=0)  # argmax returns the first maximum: the tie rule
    return (np.arange(len(codes))[:, None, None] == best[None]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# output


def _output(target: _Target, hsurf: np.ndarray, fr_land: np.ndarray, one_hot: np.ndarray | None,
            codes: Sequence[int] | None, sources: Mapping[str, _Source]) -> xr.Dataset:
    """The static dataset of interfaces section 1 on the target grid (+ LC_* when given)."""
    dims = ("rlat", "rlon")
    gm = GRID_MAPPING_VARIABLE[target.kind]
    common = {"grid_mapping": gm, "coordinates": "lon lat"}

    def how(name: str) -> str:
        src = sources[name]
        method = "cut out (same grid)" if src.on_target else ("area-weighted mode" if name == "land_cover" else "conservative")
        return f"{src.path.name}:{src.variable}, {method}"

    data: dict[str, Any] = {
        "HSURF": (dims, hsurf.astype(np.float32), {"standard_name": "surface_altitude", "long_name": "surface height",
                                                   "units": "m", "source": how("orography"), **common}),
        "FR_LAND": (dims, fr_land.astype(np.float32), {"standard_name": "land_area_fraction", "long_name": "land fraction",
                                                       "units": "1", "source": how("land_fraction"), **common}),
    }
    if one_hot is not None and codes is not None:
        for name, code, layer in zip(land_cover_names(len(codes)), codes, one_hot, strict=True):
            data[name] = (dims, layer, {"long_name": f"land-cover class {code} (one-hot, most common class by area)",
                                        "units": "1", "class_code": int(code), "source": how("land_cover"), **common})
    gm_attrs = grid_mapping_cf_attrs(target.params)
    if target.kind == "rotated":
        gm_attrs = {"long_name": "coordinates of the rotated North Pole", **gm_attrs}
    data[gm] = ((), np.int32(0), gm_attrs)
    y_attrs, x_attrs = (RLAT_ATTRS, RLON_ATTRS) if target.kind == "rotated" else (PROJECTED_Y_ATTRS, PROJECTED_X_ATTRS)
    ds = xr.Dataset(
        data,
        coords={
            "rlat": ("rlat", target.rlat, dict(y_attrs)),
            "rlon": ("rlon", target.rlon, dict(x_attrs)),
            "lat": (dims, target.lat, {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}),
            "lon": (dims, target.lon, {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "static inputs on the target grid (pdeldm.data.static_inputs)",
            "history": "pdeldm.data.static_inputs: the sources remapped onto the target grid",
            "target_grid_file": str(target.path),
            "source": "; ".join(f"{k}: {s.path}:{s.variable}" for k, s in sources.items()),
            "dx_m": target.dx,
            "dy_m": target.dy,
        },
    )
    if codes is not None:
        ds.attrs["land_cover_codes"] = np.asarray(codes, np.int32)
    return ds


def build_static_inputs(
    cfg_static: Mapping[str, Any],
    target_grid_file: str | Path,
    out: str | Path,
    log: str | Path | None = None,
    variable: str = "T_2M",
) -> None:
    """Write the static file (interfaces section 1, + ``LC_*``) for the grid of ``target_grid_file``.

    ``cfg_static`` = ``{"orography": {"file", "variable", "fill_value"?}, "land_fraction": {...},
    "land_cover": {"file", "variable", "classes": 16 | [codes], "fill_value"?} | None,
    "supersample": 4, "memory_mb": 512}``. ``target_grid_file`` is any COSMO-CLM file of the target
    grid (rotated or EPSG:3035; only its grid is read, ``variable`` names its field). ``log`` is the
    rule's log file. See the module docstring for methods and checks.

    Raises:
        InputError: bad config, missing file/variable, wrong units, NaNs, values out of range, unknown
        land-cover codes, or a source that does not cover the target grid.
    """
    t0 = time.perf_counter()
    logger = stage_logger("static_inputs", log)
    cfg = _validate(cfg_static)
    target = _open_target(Path(target_grid_file), variable)
    logger.info("target grid %s from %s (%s, dx %.1f m, dy %.1f m)", target.shape, target.path, target.kind, target.dx, target.dy)

    # Read and check everything before the heavy work, so bad inputs fail fast.
    names = [n for n in FIELDS if cfg.get(n) is not None]
    sources = {n: _read_source(n, cfg[n], target, logger) for n in names}
    regridder = None
    latlon = [s for s in sources.values() if not s.on_target]
    if latlon:
        # The remapping geometry depends on the target only; the source axes just size the working
        # memory, so one regridder serves every source (sized for the largest).
        big = max(latlon, key=lambda s: s.data.size).data
        regridder = Regridder(big["latitude"].values, big["longitude"].values, target.regrid_grid(),
                              "conservative", supersample=int(cfg["supersample"]), memory_mb=float(cfg["memory_mb"]))

    hsurf = _regrid(sources["orography"], regridder)
    fr_land = np.clip(_regrid(sources["land_fraction"], regridder), 0.0, 1.0)  # float32 round-off only
    one_hot = codes = None
    if "land_cover" in sources:
        codes = cfg["land_cover"]["codes"]
        one_hot = _land_cover_one_hot(sources["land_cover"], codes, regridder)
        counts = one_hot.reshape(len(codes), -1).sum(axis=1).astype(int)
        logger.info("land cover: cells per class %s", dict(zip(codes, counts.tolist(), strict=True)))
    for name, values in (("HSURF", hsurf), ("FR_LAND", fr_land)):
        n_nan = int(np.isnan(values).sum())
        if n_nan:  # cannot happen after the source checks; a guard against a regridding bug
            raise InputError(f"{name} on the target grid of {target.path} has {n_nan} NaN values after regridding")
    logger.info("HSURF %.1f..%.1f m (mean %.1f), FR_LAND %.3f..%.3f (mean %.3f)",
                hsurf.min(), hsurf.max(), hsurf.mean(), fr_land.min(), fr_land.max(), fr_land.mean())

    ds = _output(target, hsurf, fr_land, one_hot, codes, sources)
    encoding: dict[str, dict[str, Any]] = {str(n): {"_FillValue": None} for n in ds.variables}
    for n, var in ds.variables.items():
        if var.ndim == 2:
            encoding[str(n)].update({"zlib": True, "complevel": 4})
    with atomic_output(out) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    logger.info("static inputs: %s written in %.1f s", out, time.perf_counter() - t0)
