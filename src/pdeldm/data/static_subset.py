"""Rebuild ``data/static/eur11_static.nc`` from the NCL example data of the Debian package
``libncarg-data`` (COSMO-CLM EUR-11 surface height and land fraction).

Usage, from the repository root (a maintainer's tool; the pipeline uses the committed file)::

    python -m pdeldm.data.static_subset SOURCE [--out data/static/eur11_static.nc]

``SOURCE`` is either the ``nug`` directory (``.../usr/share/ncarg/data/nug``) holding
``HSURF_regional_model_0.11deg.nc`` and ``FR-LAND_regional_model_0.11deg.nc``, a directory into
which the package was unpacked, or the ``libncarg-data_*.deb`` itself (obtained with
``apt-get download libncarg-data``), which is unpacked into a temporary directory.

The whole 0.11 degree grid (438 x 450 cells) is kept; it is packed so that the committed file
stays well under 2 MB: HSURF as int16 metres, FR_LAND as uint8 with ``scale_factor`` 1/250,
2-D lat/lon as int32 with ``scale_factor`` 1e-5 degrees (about 1 m), all zlib-compressed with
the shuffle filter.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.io import atomic_output

DEFAULT_OUT = Path("data/static/eur11_static.nc")  # relative to the repository root
HSURF_FILE = "HSURF_regional_model_0.11deg.nc"
FR_LAND_FILE = "FR-LAND_regional_model_0.11deg.nc"
NUG_SUBDIR = Path("usr/share/ncarg/data/nug")
GRID_STEP_DEG = 0.11
FR_LAND_SCALE = 1.0 / 250.0  # 0 and 1 are exact; 0.004 resolution is far below the data's accuracy
LATLON_SCALE = 1e-5


def _unpack_deb(deb: Path, into: Path) -> Path:
    """Unpack a .deb (with dpkg-deb when present, else by reading the ar archive) and return nug/."""
    if shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    else:
        # A .deb is an ar archive; its data.tar.* member holds the files.
        data = deb.read_bytes()
        if not data.startswith(b"!<arch>\n"):
            raise InputError(f"{deb}: not a Debian package (no ar header)")
        pos = 8
        while pos < len(data):
            name = data[pos:pos + 16].decode().strip().rstrip("/")
            size = int(data[pos + 48:pos + 58].decode().strip())
            body = data[pos + 60:pos + 60 + size]
            if name.startswith("data.tar"):
                member = into / name
                member.write_bytes(body)
                with tarfile.open(member) as tar:  # gz, bz2, xz; zstd needs dpkg-deb
                    tar.extractall(into, filter="data")
                break
            pos += 60 + size + (size % 2)
    nug = into / NUG_SUBDIR
    if not nug.is_dir():
        raise InputError(f"{deb}: no {NUG_SUBDIR} inside the package")
    return nug


def find_nug_dir(source: Path, workdir: Path) -> Path:
    """Return the directory holding the two source files, unpacking ``source`` if it is a .deb."""
    if source.is_file() and source.suffix == ".deb":
        return _unpack_deb(source, workdir)
    for candidate in (source, source / NUG_SUBDIR):
        if (candidate / HSURF_FILE).is_file() and (candidate / FR_LAND_FILE).is_file():
            return candidate
    raise InputError(f"{source}: neither a libncarg-data .deb nor a directory with {HSURF_FILE} and {FR_LAND_FILE}")


def _check_same_grid(hsurf: xr.Dataset, fr_land: xr.Dataset) -> None:
    """The two fields must share the rotated grid, the pole and the geographic coordinates."""
    for name in ("rlat", "rlon", "lat", "lon"):
        if hsurf[name].shape != fr_land[name].shape or not np.allclose(hsurf[name], fr_land[name], atol=1e-6):
            raise InputError(f"{HSURF_FILE} and {FR_LAND_FILE} differ in coordinate '{name}'")
    for key in ("grid_north_pole_latitude", "grid_north_pole_longitude"):
        a, b = hsurf["rotated_pole"].attrs[key], fr_land["rotated_pole"].attrs[key]
        if not np.isclose(a, b):
            raise InputError(f"{HSURF_FILE} and {FR_LAND_FILE} differ in rotated_pole.{key}: {a} vs {b}")


def _regular_axis(values: np.ndarray, name: str) -> np.ndarray:
    """Snap the float32 source axis onto the exact 0.11 degree lattice (float64), checking regularity."""
    start = round(float(values[0]), 3)
    exact = start + GRID_STEP_DEG * np.arange(values.size)
    if np.abs(exact - values).max() > 1e-4:
        raise InputError(f"{HSURF_FILE}: axis '{name}' is not a regular {GRID_STEP_DEG} degree grid")
    return np.round(exact, 6)


def build(nug: Path, out: Path) -> None:
    """Read both source files, check them, and write the packed whole-domain static file."""
    hsurf_ds = xr.open_dataset(nug / HSURF_FILE, decode_times=False)
    fr_land_ds = xr.open_dataset(nug / FR_LAND_FILE, decode_times=False)
    _check_same_grid(hsurf_ds, fr_land_ds)
    hsurf = hsurf_ds["HSURF"].isel(time=0).values.astype(np.float64)
    fr_land = fr_land_ds["FR_LAND"].isel(time=0).values.astype(np.float64)
    if np.isnan(hsurf).any() or np.isnan(fr_land).any():
        raise InputError(f"{nug}: HSURF or FR_LAND contains NaNs")
    if fr_land.min() < 0 or fr_land.max() > 1:
        raise InputError(f"{nug / FR_LAND_FILE}: FR_LAND outside [0, 1]")
    pole = hsurf_ds["rotated_pole"].attrs
    rlat = _regular_axis(hsurf_ds["rlat"].values, "rlat")
    rlon = _regular_axis(hsurf_ds["rlon"].values, "rlon")
    dims = ("rlat", "rlon")
    ds = xr.Dataset(
        {
            "HSURF": (dims, np.round(hsurf), {"standard_name": "surface_altitude", "long_name": "surface height",
                                              "units": "m", "grid_mapping": "rotated_pole"}),
            "FR_LAND": (dims, fr_land, {"standard_name": "land_area_fraction", "long_name": "land-sea fraction",
                                        "units": "1", "grid_mapping": "rotated_pole"}),
            "rotated_pole": ((), np.int32(0), {
                "long_name": "coordinates of the rotated North Pole",
                "grid_mapping_name": "rotated_latitude_longitude",
                "grid_north_pole_latitude": float(pole["grid_north_pole_latitude"]),
                "grid_north_pole_longitude": float(pole["grid_north_pole_longitude"]),
            }),
        },
        coords={
            "rlat": ("rlat", rlat, {"standard_name": "grid_latitude", "long_name": "rotated latitude",
                                    "units": "degrees", "axis": "Y"}),
            "rlon": ("rlon", rlon, {"standard_name": "grid_longitude", "long_name": "rotated longitude",
                                    "units": "degrees", "axis": "X"}),
            "lat": (dims, hsurf_ds["lat"].values.astype(np.float64),
                    {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}),
            "lon": (dims, hsurf_ds["lon"].values.astype(np.float64),
                    {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}),
        },
        attrs={
            "Conventions": "CF-1.7",
            "title": "COSMO-CLM EUR-11 (0.11 degree, rotated pole) surface height and land fraction",
            "source": f"NCL example data ({HSURF_FILE}, {FR_LAND_FILE}) of the Debian package libncarg-data",
            "license": "BSD-4-clause, Copyright 2013 University Corporation for Atmospheric Research; "
                       "see LICENSE-libncarg-data.txt",
            # The committed file was packed when this module was scripts/build_static_subset.py;
            # the text stays so that a rebuild remains bit-identical to it.
            "history": "packed by scripts/build_static_subset.py (values unchanged up to the stated packing)",
            "packing": f"HSURF int16 m; FR_LAND uint8 * {FR_LAND_SCALE}; lat/lon int32 * {LATLON_SCALE} degrees",
        },
    )
    compress = {"zlib": True, "complevel": 9, "shuffle": True}
    encoding = {
        "HSURF": {"dtype": "int16", "_FillValue": np.int16(-32768), **compress},
        "FR_LAND": {"dtype": "uint8", "scale_factor": FR_LAND_SCALE, "_FillValue": np.uint8(255), **compress},
        "lat": {"dtype": "int32", "scale_factor": LATLON_SCALE, "_FillValue": np.int32(-2**31), **compress},
        "lon": {"dtype": "int32", "scale_factor": LATLON_SCALE, "_FillValue": np.int32(-2**31), **compress},
        "rlat": {"_FillValue": None},
        "rlon": {"_FillValue": None},
    }
    with atomic_output(out) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m pdeldm.data.static_subset", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="nug directory, unpacked package directory, or libncarg-data .deb")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        nug = find_nug_dir(args.source, Path(workdir))
        build(nug, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
