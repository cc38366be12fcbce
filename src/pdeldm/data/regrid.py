"""Regridding ERA5 (regular lat-lon) onto the COSMO-CLM fine grid, and fine -> coarse blocks.

The fine grid is either rotated-pole (``rlat``/``rlon`` in degrees) or projected (EPSG:3035 LAEA:
``rlat``/``rlon`` hold y/x in metres); :class:`TargetGrid` carries its grid-mapping parameters.

Two methods, both built on maintained libraries rather than hand-written interpolation loops:

``bilinear``
    The target is curvilinear in geographic lat/lon, so the ERA5 field is interpolated with
    xarray's ``.interp`` (scipy ``interpn``) at the target cells' 2-D ``lat``/``lon``: vectorised
    advanced indexing with DataArrays on dims ``(rlat, rlon)``.

``conservative``
    ``xarray-regrid`` does exact first-order conservative remapping between *rectilinear* grids
    (separable overlap weights, with the spherical sin-latitude correction). The rotated target
    is not rectilinear in lat/lon, so ERA5 is first remapped conservatively onto an intermediate
    regular lat-lon grid with about half the fine spacing that covers the target's bounding box,
    and each fine cell then averages that field at ``supersample x supersample`` points spread
    evenly over the cell (nearest intermediate cell). Both stages are linear, so they are composed
    once into one sparse (fine cells x ERA5 cells) matrix (xarray-regrid's per-axis weights, read
    off by remapping basis fields, ``kron``-ed and multiplied by the sub-cell averaging); each time
    step is then one small sparse product. The result is first-order conservative up to
    the supersampling resolution: the only error is where an ERA5 cell edge cuts a fine cell, and
    it shrinks with the intermediate spacing and ``supersample``. Area-weighted means over the fine
    domain agree with the source integral to well below 0.1 % of the field's range (tested).

Both process time in chunks so memory stays bounded by the chunk, not the record length.

Winds: ERA5 ``u10``/``v10`` are eastward/northward components; on the fine grid a PDE works
with components along ``+rlon``/``+rlat`` (x/y on a projected grid). :func:`rotate_wind_to_grid` converts between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyproj
import scipy.sparse
import xarray as xr
import xarray_regrid  # noqa: F401  (registers the ``.regrid`` accessor)

from pdeldm.data.cosmo import (
    EARTH_RADIUS_M,
    crs_from_params,
    is_projected,
    latlon_2d,
    rotated_pole_params,
    rotated_to_geographic,
)
from pdeldm.errors import InputError

METHODS = ("bilinear", "conservative")
#: The intermediate regular lat-lon grid of the conservative method has (fine spacing) / this.
INTERMEDIATE_REFINE = 2.0
#: One degree of arc on COSMO's sphere (m): converts projected steps to intermediate lat-lon steps.
M_PER_DEGREE = EARTH_RADIUS_M * np.pi / 180.0
XrObj = TypeVar("XrObj", xr.Dataset, xr.DataArray)


@dataclass
class TargetGrid:
    """A fine grid: 1-D ``rlat``/``rlon``, 2-D ``lat``/``lon``, grid-mapping parameters ``pole``.

    Rotated pole: ``rlat``/``rlon`` in degrees. Projected (LAEA, e.g. EPSG:3035): ``rlat``/``rlon``
    hold y/x in metres and ``pole`` the projection parameters (:func:`cosmo.grid_mapping_params`).
    """

    rlat: np.ndarray
    rlon: np.ndarray
    pole: dict[str, float]
    lat: np.ndarray = field(repr=False)
    lon: np.ndarray = field(repr=False)

    @classmethod
    def from_xarray(cls, obj: xr.Dataset | xr.DataArray) -> TargetGrid:
        """From anything with ``rlat``/``rlon`` coords and a rotated-pole grid mapping.

        The 2-D lat/lon are always recomputed from the grid mapping, so a float32-rounded file
        copy cannot make the sub-cell sampling inconsistent with the cell centres.
        """
        for name in ("rlat", "rlon"):
            if name not in obj.coords:
                raise InputError(f"target grid has no '{name}' coordinate (coords: {list(obj.coords)})")
        pole = rotated_pole_params(obj)
        rlat = obj["rlat"].values.astype(np.float64)
        rlon = obj["rlon"].values.astype(np.float64)
        lat, lon = latlon_2d(rlat, rlon, crs_from_params(pole))
        return cls(rlat=rlat, rlon=rlon, pole=pole, lat=lat, lon=lon)

    @property
    def crs(self) -> pyproj.CRS:
        return crs_from_params(self.pole)

    @property
    def projected(self) -> bool:
        """True when ``rlat``/``rlon`` are projected y/x in metres (LAEA), False on a rotated grid."""
        return is_projected(self.pole)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rlat.size, self.rlon.size)

    def spacing(self) -> tuple[float, float]:
        """Grid steps ``(drlat, drlon)`` in the native unit (degrees rotated, metres projected)."""
        return float(np.median(np.diff(self.rlat))), float(np.median(np.diff(self.rlon)))

    def spacing_deg(self) -> tuple[float, float]:
        """Grid steps ``(drlat, drlon)`` in degrees of arc (projected: metres / :data:`M_PER_DEGREE`)."""
        dy, dx = self.spacing()
        return (dy / M_PER_DEGREE, dx / M_PER_DEGREE) if self.projected else (dy, dx)

    def axis_attrs(self) -> dict[str, dict[str, str]]:
        """CF attributes of the ``rlat``/``rlon`` axes (grid_latitude/degrees or projection_y/x/m)."""
        if self.projected:
            return {"rlat": {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"},
                    "rlon": {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}}
        return {"rlat": {"standard_name": "grid_latitude", "units": "degrees"},
                "rlon": {"standard_name": "grid_longitude", "units": "degrees"}}

    def coords(self) -> dict[str, xr.DataArray]:
        """rlat/rlon/lat/lon coordinates for a ``(..., rlat, rlon)`` result."""
        axis = self.axis_attrs()
        return {
            "rlat": xr.DataArray(self.rlat, dims="rlat", attrs=axis["rlat"]),
            "rlon": xr.DataArray(self.rlon, dims="rlon", attrs=axis["rlon"]),
            "lat": xr.DataArray(self.lat, dims=("rlat", "rlon"), attrs={"standard_name": "latitude", "units": "degrees_north"}),
            "lon": xr.DataArray(self.lon, dims=("rlat", "rlon"), attrs={"standard_name": "longitude", "units": "degrees_east"}),
        }


def _as_grid(target: TargetGrid | xr.Dataset | xr.DataArray) -> TargetGrid:
    return target if isinstance(target, TargetGrid) else TargetGrid.from_xarray(target)


def _check_source(src: xr.Dataset | xr.DataArray) -> None:
    for name in ("latitude", "longitude"):
        if name not in src.dims:
            raise InputError(f"regrid source must have dims latitude/longitude (normalised ERA5); has {src.dims}")
    for name in ("latitude", "longitude"):
        values = src[name].values
        if values.size > 1 and not np.all(np.diff(values) > 0):
            raise InputError(f"regrid source {name} must be strictly ascending (use era5.normalise_era5)")


def _source_edges(values: np.ndarray) -> tuple[float, float]:
    """Outer cell edges of a regular source axis (centres +- half a step)."""
    half = 0.5 * float(np.median(np.diff(values))) if values.size > 1 else 0.0
    return float(values.min()) - half, float(values.max()) + half


def _check_coverage(src: xr.Dataset | xr.DataArray, lat: np.ndarray, lon: np.ndarray, what: str) -> None:
    lat0, lat1 = _source_edges(src["latitude"].values)
    lon0, lon1 = _source_edges(src["longitude"].values)
    eps = 1e-9
    if lat.min() < lat0 - eps or lat.max() > lat1 + eps or lon.min() < lon0 - eps or lon.max() > lon1 + eps:
        raise InputError(
            f"ERA5 grid (cells span latitude {lat0:.3f}..{lat1:.3f}, longitude {lon0:.3f}..{lon1:.3f}) "
            f"does not cover the {what} (latitude {lat.min():.3f}..{lat.max():.3f}, "
            f"longitude {lon.min():.3f}..{lon.max():.3f}); download a larger ERA5 area"
        )


def _pad_edges(src: XrObj) -> XrObj:
    """Replicate the outermost ERA5 row/column one step outwards.

    An ERA5 value stands for its whole cell, but both scipy (bilinear) and xarray-regrid
    (conservative) treat the outermost cell *centres* as the domain edge. With the padding, targets
    in the outer half cell get the edge cell's value (conservative: exactly that cell's share;
    bilinear: constant extrapolation), so the usable domain is the union of the ERA5 cells.
    """
    coords = {}
    for name in ("latitude", "longitude"):
        values = src[name].values.astype(np.float64)
        step = float(np.median(np.diff(values))) if values.size > 1 else 1.0
        coords[name] = np.concatenate([[values[0] - step], values, [values[-1] + step]])
    padded = src.pad(latitude=1, longitude=1, mode="edge")
    return padded.assign_coords(coords)


def _time_slices(n: int, chunk: int) -> list[slice]:
    chunk = max(int(chunk), 1)
    return [slice(i, min(i + chunk, n)) for i in range(0, max(n, 1), chunk)]


class Regridder:
    """Precomputed ERA5 -> rotated fine grid remapping (one ERA5 grid, one target grid).

    Create once and call on successive time chunks; the sampling geometry (target lat/lon, the
    intermediate conservative grid and the sparse sub-cell averaging matrix) is computed in
    ``__init__``. ``source_lat``/``source_lon`` only size the working memory: both methods take the
    source coordinates of each call from the data itself.
    """

    def __init__(
        self,
        source_lat: np.ndarray,
        source_lon: np.ndarray,
        target: TargetGrid | xr.Dataset | xr.DataArray,
        method: str = "conservative",
        supersample: int = 4,
        memory_mb: float = 256.0,
    ) -> None:
        if method not in METHODS:
            raise InputError(f"unknown regrid method '{method}'; expected one of {list(METHODS)}")
        if supersample < 1:
            raise InputError(f"supersample must be >= 1, got {supersample}")
        self.grid = _as_grid(target)
        self.method = method
        self.supersample = int(supersample)
        self.memory_mb = float(memory_mb)
        self.source_lat = np.asarray(source_lat, np.float64)
        self.source_lon = np.asarray(source_lon, np.float64)
        dims = ("rlat", "rlon")
        self._lat = xr.DataArray(self.grid.lat, dims=dims)
        self._lon = xr.DataArray(self.grid.lon, dims=dims)
        self._matrix: scipy.sparse.csr_matrix | None = None
        self._matrix_key: tuple[bytes, bytes] | None = None
        if method == "conservative":
            self._setup_conservative()

    def _setup_conservative(self) -> None:
        grid = self.grid
        drlat, drlon = grid.spacing()  # native unit: the sub-cell offsets are taken in the grid's own CRS
        s = self.supersample
        offsets = ((np.arange(s) + 0.5) / s - 0.5)
        # Sub-cell sample points, evenly spread over each fine cell in rotated coordinates.
        sub_rlat = grid.rlat[:, None, None, None] + offsets[None, None, :, None] * drlat
        sub_rlon = grid.rlon[None, :, None, None] + offsets[None, None, None, :] * drlon
        sub_rlat, sub_rlon = np.broadcast_arrays(sub_rlat, sub_rlon)
        sub_lat, sub_lon = rotated_to_geographic(sub_rlat, sub_rlon, grid.crs)
        shape = (grid.rlat.size, grid.rlon.size, s * s)
        sub_lat = sub_lat.reshape(shape)
        sub_lon = sub_lon.reshape(shape)

        if np.ptp(sub_lon) > 180.0:
            raise InputError("the fine domain crosses the antimeridian (longitude +-180), which the regridder does not support")
        # Intermediate grid: ~half the fine spacing (in metres) in both directions everywhere. The
        # step in degrees of latitude comes from the fine step in degrees of arc (projected grids:
        # metres / M_PER_DEGREE, the scale factor of LAEA stays within a few % of 1).
        dlat = min(abs(d) for d in grid.spacing_deg()) / INTERMEDIATE_REFINE
        max_cos = float(np.cos(np.deg2rad(np.min(np.abs(sub_lat)))))
        dlon = dlat / max(max_cos, 1e-6)
        lat0, lat1 = sub_lat.min() - dlat, sub_lat.max() + dlat
        lon0, lon1 = sub_lon.min() - dlon, sub_lon.max() + dlon
        ilat = lat0 + dlat * np.arange(int(np.ceil((lat1 - lat0) / dlat)) + 1)
        ilon = lon0 + dlon * np.arange(int(np.ceil((lon1 - lon0) / dlon)) + 1)
        self._ilat, self._ilon = ilat, ilon
        self._inter_grid = xr.Dataset(coords={"latitude": ilat, "longitude": ilon})
        # Nearest intermediate cell = the cell containing the point (regular grid); pandas does the lookup.
        iy = self._inter_grid.indexes["latitude"].get_indexer(sub_lat.ravel(), method="nearest").reshape(shape)
        ix = self._inter_grid.indexes["longitude"].get_indexer(sub_lon.ravel(), method="nearest").reshape(shape)
        # The sub-cell average is linear in the intermediate field: a sparse (fine cells x
        # intermediate cells) matrix with weight 1/s^2 per sub-point (repeated cells add up), built
        # once. Applying it is one scipy sparse product per chunk instead of s^2 gathers.
        n_fine, n_inter = grid.rlat.size * grid.rlon.size, ilat.size * ilon.size
        rows = np.repeat(np.arange(n_fine), s * s)
        cols = (iy * ilon.size + ix).reshape(-1)
        data = np.full(rows.size, 1.0 / (s * s), dtype=np.float32)
        self._sampler = scipy.sparse.csr_matrix((data, (rows, cols)), shape=(n_fine, n_inter))
        self._sampler.sum_duplicates()

    def bytes_per_step(self, n_vars: int) -> int:
        """Rough peak working memory (bytes) per time step for ``n_vars`` variables."""
        ny, nx = self.grid.shape
        src = (self.source_lat.size + 2) * (self.source_lon.size + 2)
        if self.method == "bilinear":
            return 8 * n_vars * (src + 3 * ny * nx)
        return 4 * n_vars * (src + 4 * ny * nx)

    def check_coverage(self, src: xr.Dataset | xr.DataArray) -> None:
        """InputError unless the ERA5 cells (centres +- half a step) enclose everything the method samples."""
        _check_source(src)
        if self.method == "conservative":
            _check_coverage(src, self._ilat, self._ilon, "intermediate grid of the fine domain (conservative regridding)")
        else:
            _check_coverage(src, self.grid.lat, self.grid.lon, "fine domain")

    def _axis_weights(self, src_lat: np.ndarray, src_lon: np.ndarray, axis: str) -> np.ndarray:
        """Conservative weights (intermediate points x source points) along one axis, from xarray-regrid.

        xarray-regrid factorises conservative remapping between rectilinear grids axis by axis
        (cos-latitude area weights on the latitude axis). Its weights along ``axis`` are read off by
        remapping basis fields (one per source row/column, constant along the other axis) onto the
        intermediate axis and 3 points of the other axis.
        """
        along, other = (src_lat, src_lon) if axis == "latitude" else (src_lon, src_lat)
        other_name = "longitude" if axis == "latitude" else "latitude"
        step = float(np.median(np.diff(other)))
        mid = float(other[other.size // 2])
        n = along.size
        basis = np.eye(n, dtype=np.float64)
        values = basis[:, :, None] if axis == "latitude" else basis[:, None, :]
        shape = (n, n, other.size) if axis == "latitude" else (n, other.size, n)
        da = xr.DataArray(np.ascontiguousarray(np.broadcast_to(values, shape)), dims=("k", "latitude", "longitude"),
                          coords={"latitude": src_lat, "longitude": src_lon})
        target_axis = self._ilat if axis == "latitude" else self._ilon
        target = xr.Dataset(coords={axis: target_axis, other_name: mid + step * np.array([-1.0, 0.0, 1.0])})
        out = da.regrid.conservative(target, latitude_coord="latitude", skipna=False).transpose("k", axis, other_name)
        return np.asarray(out.values[:, :, 1].T)  # (intermediate points, source points)

    def _conservative_matrix(self, src_lat: np.ndarray, src_lon: np.ndarray) -> scipy.sparse.csr_matrix:
        """Sparse (fine cells x source cells) matrix of the whole conservative remap, cached per source grid.

        Both stages are linear: ERA5 -> intermediate (xarray-regrid, ``kron`` of its per-axis
        weights) and intermediate -> fine cells (sub-cell averages). Their product touches only the
        few ERA5 cells under each fine cell, so applying it is one small sparse product per time
        step, without the ~10^6-cell intermediate field ever being formed.
        """
        key = (src_lat.tobytes(), src_lon.tobytes())
        if self._matrix_key != key:
            w_lat = scipy.sparse.csr_matrix(self._axis_weights(src_lat, src_lon, "latitude"))
            w_lon = scipy.sparse.csr_matrix(self._axis_weights(src_lat, src_lon, "longitude"))
            w_lat.eliminate_zeros()
            w_lon.eliminate_zeros()
            inter = scipy.sparse.kron(w_lat, w_lon, format="csc")  # row iy * n_ilon + ix, col sy * n_slon + sx
            matrix = (self._sampler.astype(np.float64) @ inter).tocsr()
            matrix.eliminate_zeros()
            self._matrix, self._matrix_key = matrix, key
        return self._matrix

    def _regrid_block(self, block: XrObj) -> XrObj:
        if self.method == "bilinear":
            out = block.interp(latitude=self._lat, longitude=self._lon, method="linear")
            return out.drop_vars(["latitude", "longitude"], errors="ignore")
        block = block.sortby("latitude").sortby("longitude")
        matrix = self._conservative_matrix(block["latitude"].values.astype(np.float64),
                                           block["longitude"].values.astype(np.float64))
        ny, nx = self.grid.shape

        def sample(da: xr.DataArray) -> xr.DataArray:
            values = da.transpose("time", "latitude", "longitude").values
            flat = values.reshape(values.shape[0], -1)
            out = np.asarray(matrix @ flat.T, dtype=np.float32).T.reshape(values.shape[0], ny, nx)
            return xr.DataArray(out, dims=("time", "rlat", "rlon"), coords={"time": da["time"]}, attrs=da.attrs, name=da.name)

        if isinstance(block, xr.DataArray):
            return sample(block)
        return xr.Dataset({name: sample(var) for name, var in block.data_vars.items()}, attrs=block.attrs)

    def __call__(self, src: XrObj, time_chunk: int | None = None) -> XrObj:
        """Regrid ``src`` (dims ``[time,] latitude, longitude``) to ``(time, rlat, rlon)`` float32.

        The input may be lazy (dask); it is loaded ``time_chunk`` steps at a time (default: as many
        as fit in ``memory_mb`` of working memory).
        """
        self.check_coverage(src)
        has_time = "time" in src.dims
        if not has_time:
            src = src.expand_dims("time")
        if time_chunk is None:
            n_vars = len(src.data_vars) if isinstance(src, xr.Dataset) else 1
            time_chunk = max(1, int(self.memory_mb * 2**20 // max(self.bytes_per_step(n_vars), 1)))
        pieces = []
        for sl in _time_slices(src.sizes["time"], time_chunk):
            block = _pad_edges(src.isel(time=sl).load())
            piece = self._regrid_block(block).transpose("time", "rlat", "rlon", ...)
            pieces.append(piece.astype(np.float32) if isinstance(piece, xr.DataArray) else piece.map(lambda v: v.astype(np.float32)))
        out = xr.concat(pieces, dim="time") if len(pieces) > 1 else pieces[0]
        out = out.assign_coords(self.grid.coords())
        if not has_time:
            out = out.isel(time=0, drop=True)
        return out


def regrid(
    src: XrObj,
    target: TargetGrid | xr.Dataset | xr.DataArray,
    method: str = "conservative",
    supersample: int = 4,
    time_chunk: int | None = None,
) -> XrObj:
    """Regrid normalised ERA5 ``src`` to the rotated grid of ``target`` (see module docstring)."""
    regridder = Regridder(src["latitude"].values, src["longitude"].values, target, method, supersample)
    return regridder(src, time_chunk=time_chunk)


def regrid_bilinear(src: XrObj, target: TargetGrid | xr.Dataset | xr.DataArray, time_chunk: int | None = None) -> XrObj:
    """Bilinear interpolation at the target cells' geographic lat/lon."""
    return regrid(src, target, "bilinear", time_chunk=time_chunk)


def regrid_conservative(
    src: XrObj, target: TargetGrid | xr.Dataset | xr.DataArray, supersample: int = 4, time_chunk: int | None = None
) -> XrObj:
    """First-order conservative remapping (up to the supersampling resolution)."""
    return regrid(src, target, "conservative", supersample=supersample, time_chunk=time_chunk)


def grid_rotation_azimuth(target: TargetGrid | xr.Dataset | xr.DataArray) -> np.ndarray:
    """Azimuth (degrees clockwise from geographic north) of the ``+rlon`` axis at each fine cell.

    A short centred step (1e-4 of a cell) along ``+rlon`` is mapped to geographic coordinates with
    the grid's CRS (pyproj) and its geodesic forward azimuth taken (COSMO's sphere on a rotated
    grid, the projection's ellipsoid on a projected one), exact to the step length.
    """
    grid = _as_grid(target)
    _, dx = grid.spacing()
    h = 1e-4 * abs(dx)
    rlon2, rlat2 = np.meshgrid(grid.rlon, grid.rlat)
    lat_w, lon_w = rotated_to_geographic(rlat2, rlon2 - h, grid.crs)
    lat_e, lon_e = rotated_to_geographic(rlat2, rlon2 + h, grid.crs)
    az, _, _ = _geod(grid).inv(lon_w, lat_w, lon_e, lat_e)
    return np.asarray(az, dtype=np.float64)


def _geod(grid: TargetGrid) -> pyproj.Geod:
    return grid.crs.get_geod() if grid.projected else pyproj.Geod(a=EARTH_RADIUS_M, b=EARTH_RADIUS_M)


def wind_to_grid_matrix(target: TargetGrid | xr.Dataset | xr.DataArray) -> np.ndarray:
    """Per-cell 2x2 matrix ``M`` (shape ``(2, 2, ny, nx)``) with ``(u_grid, v_grid) = M (u, v)``.

    ``u``/``v`` are eastward/northward ground speeds (m/s); ``u_grid``/``v_grid`` the rates of
    change of the grid's own coordinates, i.e. what the advection term ``u_grid dT/dx + v_grid
    dT/dy`` with the grid's spacing in metres needs.

    * Rotated pole (conformal, spacing taken as ground metres): a pure rotation by the azimuth
      ``theta`` of ``+rlon``: ``u_grid = u sin(theta) + v cos(theta)``, ``v_grid = -u cos(theta) + v sin(theta)``.
    * Projected (LAEA is equal-area, not conformal): the Jacobian of the projection, projection
      metres per ground metre eastward and northward, found by stepping 1 m east and north on the
      ellipsoid and projecting with pyproj. It turns winds by the meridian convergence and scales
      them by the local scale factors (~1 +- 0.3 % over the study's domain), so speed is not
      exactly preserved, and the images of x and y are not exactly orthogonal on the ground.
    """
    grid = _as_grid(target)
    if not grid.projected:
        theta = np.deg2rad(grid_rotation_azimuth(grid))
        return np.array([[np.sin(theta), np.cos(theta)], [-np.cos(theta), np.sin(theta)]])
    geod = _geod(grid)
    to_grid = pyproj.Transformer.from_crs(pyproj.CRS("EPSG:4326"), grid.crs, always_xy=True)
    x0, y0 = to_grid.transform(grid.lon, grid.lat)
    step = np.ones_like(grid.lat)
    columns = []
    for azimuth in (90.0, 0.0):  # one ground metre east, then north
        lon1, lat1, _ = geod.fwd(grid.lon, grid.lat, np.full_like(grid.lat, azimuth), step)
        x1, y1 = to_grid.transform(lon1, lat1)
        columns.append((np.asarray(x1) - x0, np.asarray(y1) - y0))
    (dx_e, dy_e), (dx_n, dy_n) = columns
    return np.array([[dx_e, dx_n], [dy_e, dy_n]])


def rotate_wind_to_grid(
    u: xr.DataArray,
    v: xr.DataArray,
    target: TargetGrid | xr.Dataset | xr.DataArray,
    matrix: np.ndarray | None = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Eastward/northward wind on the fine grid -> components along ``+rlon``/``+rlat`` (x/y).

    ``(u_grid, v_grid) = M (u, v)`` with ``M`` from :func:`wind_to_grid_matrix` (a rotation on a
    rotated-pole grid, the projection's Jacobian on a projected one). Pass ``matrix`` to skip
    recomputing it per chunk.
    """
    m = wind_to_grid_matrix(target) if matrix is None else np.asarray(matrix)
    if m.shape[:2] != (2, 2) or m.shape[2:] != tuple(u.shape[-2:]):
        raise InputError(f"rotate_wind_to_grid: matrix of shape {m.shape} does not fit winds of shape {u.shape}")
    dims = ("rlat", "rlon")
    coef = lambda a, b: xr.DataArray(m[a, b], dims=dims)  # noqa: E731
    u_grid = (u * coef(0, 0) + v * coef(0, 1)).astype(np.float32)
    v_grid = (u * coef(1, 0) + v * coef(1, 1)).astype(np.float32)
    return u_grid.assign_attrs(u.attrs), v_grid.assign_attrs(v.attrs)


def check_aligned(fine_shape: Sequence[int], coarse_shape: Sequence[int], factor: int) -> None:
    """InputError unless ``coarse_shape == fine_shape // factor`` with no remainder."""
    fine = tuple(int(n) for n in fine_shape)[-2:]
    coarse = tuple(int(n) for n in coarse_shape)[-2:]
    if factor < 1:
        raise InputError(f"factor must be a positive integer, got {factor}")
    expected = tuple(n // factor for n in fine)
    if any(n % factor for n in fine) or coarse != expected:
        raise InputError(
            f"fine grid {fine} and coarse grid {coarse} are not {factor}:1 aligned "
            f"(fine dims must be multiples of {factor} and coarse = fine / {factor})"
        )


def coarsen_to_aligned(fine: XrObj, factor: int) -> XrObj:
    """Block mean over ``factor x factor`` fine cells -> coarse grid ``(..., rlat_c, rlon_c)``.

    ``rlat_c``/``rlon_c`` are the block centres. An unweighted mean is used: on the rotated grid
    the cells of one block differ in area only by cos(rlat) over ``factor`` rows (< 1e-3).
    """
    if "rlat" not in fine.dims or "rlon" not in fine.dims:
        raise InputError(f"coarsen_to_aligned needs dims rlat/rlon, got {fine.dims}")
    ny, nx = fine.sizes["rlat"], fine.sizes["rlon"]
    if factor < 1 or ny % factor or nx % factor:
        raise InputError(f"fine grid ({ny}, {nx}) is not a multiple of factor {factor}; cannot align an {factor}:1 coarse grid")
    drop = [c for c in fine.coords if c not in fine.dims and ("rlat" in fine[c].dims or "rlon" in fine[c].dims)]
    coarse = fine.drop_vars(drop).coarsen(rlat=factor, rlon=factor, boundary="exact").mean()
    coarse = coarse.rename({"rlat": "rlat_c", "rlon": "rlon_c"})
    check_aligned((ny, nx), (coarse.sizes["rlat_c"], coarse.sizes["rlon_c"]), factor)
    return coarse
