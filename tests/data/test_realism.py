"""The realism check of the twin against real COSMO-CLM: statistics on known fields, the real file.

The stage reads the reference from where Debian's ``libncarg-data`` installs it (``.ci/run``
installs the package); the tests that need that path skip, saying so, where it is absent. The
other tests use the copy of the same file under ``files/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pdeldm.config import load_schema
from pdeldm.data.static import region_static
from pdeldm.data.twin.realism import (
    band_spectrum,
    block_anomaly,
    fine_scale_regression,
    realism_check,
    reference_cells,
    reference_month,
    spectral_slope,
)
from pdeldm.errors import InputError

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "data" / "static" / "eur11_static.nc"
REAL_COPY = Path(__file__).parent / "files" / "tas_rotated_grid_EUR11.nc"
INSTALLED = Path(load_schema()["properties"]["twin"]["properties"]["realism"]["properties"]["reference_file"]["default"])
ITALY_CI = {"rlat0": -9.405, "rlon0": -8.245, "ny": 64, "nx": 64}
needs_installed = pytest.mark.skipif(not INSTALLED.is_file(),
                                     reason=f"{INSTALLED} absent: apt-get install libncarg-data (.ci/run does)")


def test_regression_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(1)
    hsurf = 800.0 * rng.random((32, 48))
    land = (rng.random((32, 48)) > 0.5).astype(float)
    large_scale = np.kron(5.0 * rng.random((4, 6)), np.ones((8, 8)))  # the block means: removed exactly
    noise = 0.2 * rng.standard_normal((32, 48))
    field = 280.0 + large_scale - 5.0e-3 * hsurf - 2.5 * land + noise
    stats = fine_scale_regression(field, hsurf, land, 8)
    assert stats["lapse_rate_K_per_km"] == pytest.approx(-5.0, abs=0.15)
    assert stats["land_sea_K"] == pytest.approx(-2.5, abs=0.1)
    assert stats["residual_std_K"] == pytest.approx(float(block_anomaly(noise, 8).std()), rel=0.05)
    assert stats["fine_std_K"] > 1.0


def test_block_anomaly_needs_whole_blocks() -> None:
    with pytest.raises(InputError, match="not a whole number of 8x8 blocks"):
        block_anomaly(np.zeros((20, 16)), 8)


def test_band_spectrum_slope_of_a_power_law_field() -> None:
    """A random field with power ~ k^-3 has that slope over the band (plane removal and window)."""
    rng = np.random.default_rng(2)
    n = 96
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    amplitude = np.where(k > 0, k, np.inf) ** -1.5
    field = np.real(np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((n, n)))))
    field += np.add.outer(np.linspace(0, 50, n), np.linspace(0, 20, n))  # a plane: removed
    wavelength_km, power = band_spectrum(field, 12_000.0, 16)
    assert wavelength_km.max() <= 16 * 12.0 + 1e-9 and wavelength_km.min() >= 2 * 12.0 - 1e-9
    assert spectral_slope(wavelength_km, power) == pytest.approx(-3.0, abs=0.3)


def test_reference_on_the_region_cells_and_outside() -> None:
    reference = reference_month(REAL_COPY)
    assert reference.attrs["month"] == "2006-01" and reference.dims == ("rlat", "rlon")
    static = region_static(STATIC, ITALY_CI)
    cells = reference_cells(reference, static)
    assert cells is not None and cells.shape == (64, 64) and 250 < cells.mean() < 290
    # the static grid has 13 more cells on each side than the reference: its corner is outside
    corner = region_static(STATIC, {"rlat0": -24.805, "rlon0": -29.805, "ny": 16, "nx": 16})
    assert reference_cells(reference, corner) is None


def test_missing_reference_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="apt-get install libncarg-data"):
        reference_month(tmp_path / "absent.nc")


@needs_installed
def test_realism_table_from_the_installed_reference(tmp_path: Path) -> None:
    """The stage's code on the Debian-installed file: tables, figure, and the real statistics."""
    regions = {"italy_ci": ITALY_CI, "corner": {"rlat0": -24.805, "rlon0": -29.805, "ny": 16, "nx": 16}}
    out = {ext: tmp_path / f"realism.{ext}" for ext in ("csv", "md", "html", "png")}
    wide = realism_check(STATIC, INSTALLED, regions, {"spinup_days": 1}, 7, 8, out["csv"], out["md"], out["html"],
                         out["png"], days=2)
    table = pd.read_csv(out["csv"])
    real = table[(table["region"] == "italy_ci") & (table["source"] == "real")].iloc[0]
    # the real January 2006 over these cells (an independent computation: numpy on the raw file)
    reference = reference_cells(reference_month(REAL_COPY), region_static(STATIC, ITALY_CI))
    expected = fine_scale_regression(reference, region_static(STATIC, ITALY_CI)["HSURF"].values,
                                     region_static(STATIC, ITALY_CI)["FR_LAND"].values, 8)
    assert real["land_sea_K"] == pytest.approx(expected["land_sea_K"], rel=1e-5)
    assert real["land_sea_K"] < -2.0 and real["lapse_rate_K_per_km"] < -3.0
    assert list(wide["region"]) == ["italy_ci"]
    markdown = out["md"].read_text()
    assert "| italy_ci |" in markdown and "Tolerances reached" in markdown and "corner (outside" in markdown
    assert "<table" in out["html"].read_text()
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_realism_region_is_a_config_error() -> None:
    from pdeldm.config import load_config
    from pdeldm.errors import ConfigError

    config = load_config(REPO / "config" / "config.yaml")
    config["twin"]["realism"]["regions"] = ["atlantis"]
    from pdeldm.config import validate_config

    with pytest.raises(ConfigError, match=r"'twin\.realism\.regions': \['atlantis'\] not defined"):
        validate_config(config)
    assert yaml.safe_load((REPO / "config" / "ci.yaml").read_text())["twin"]["realism"]["regions"] == ["italy_ci"]
