"""The netCDF products pass the IOOS compliance checker (``compliance-checker --test cf:1.8``) without errors.

Checked: the workflow's predictions (src/pdeldm/predict.py), ``pdeldm downscale`` output, the
twin's COSMO-CLM-format files and the region's static file, from the ``twin_workflow`` session
fixture (the paper path's static inputs are checked in tests/data/test_static_inputs.py). The twin's ERA5-format files copy the real CDS files,
quirks included; for them only those quirks are allowed (see ``ERA5_QUIRKS``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pdeldm import cli

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds the shared checker helper

from cf_check import cf_report  # noqa: E402

#: Errors the checker reports on real new-CDS ERA5 files, which the twin copies on purpose:
#: int64 ``valid_time``/``number``, ``standard_name: unknown`` and ``_FillValue`` on the axes.
ERA5_QUIRKS = (
    "The variable number failed because the datatype is int64",
    "The variable valid_time failed because the datatype is int64",
    "standard_name unknown is not defined in Standard Name Table",
    "The coordinate variable 'latitude' must not have the _FillValue attribute.",
    "The coordinate variable 'longitude' must not have the _FillValue attribute.",
)


@pytest.fixture(scope="module")
def products(twin_workflow: SimpleNamespace) -> dict[str, Path]:
    out = twin_workflow.root / "cf" / "downscaled.nc"
    assert cli.main(["downscale", "--checkpoint", str(twin_workflow.ckpts["gan"]), "--era5",
                     *map(str, twin_workflow.era5), "--static", str(twin_workflow.static), "--out", str(out),
                     "--start", "2001-03-03", "--end", "2001-03-03", "--stride", "6"]) == 0
    return {"prediction": twin_workflow.root / "pred" / "gan.nc", "downscaled": out,
            "cosmo": twin_workflow.cosmo[0], "static": twin_workflow.static}


@pytest.mark.parametrize("product", ["prediction", "downscaled", "static"])
def test_products_have_no_errors_or_warnings(products: dict[str, Path], product: str, tmp_path: Path) -> None:
    report = cf_report(products[product], tmp_path)
    assert report == {"errors": [], "warnings": []}


def test_twin_cosmo_files_have_no_errors(products: dict[str, Path], tmp_path: Path) -> None:
    report = cf_report(products["cosmo"], tmp_path)
    assert report["errors"] == []
    # the one warning: COSMO-CLM writes Conventions = "CF-1.4", and the twin copies its files
    assert report["warnings"] == ['§2.6 Attributes: §2.6.1 Conventions global attribute does not contain "CF-1.8"']


def test_twin_era5_files_have_only_the_cds_quirks(twin_workflow: SimpleNamespace, tmp_path: Path) -> None:
    report = cf_report(twin_workflow.era5[0], tmp_path)
    unexpected = [e for e in report["errors"] if not any(q in e for q in ERA5_QUIRKS)]
    assert unexpected == []
    assert any("valid_time" in e for e in report["errors"]), "the check must see the copied quirks"
