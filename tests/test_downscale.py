"""``pdeldm downscale`` / ``pdeldm info`` on a small twin: same fields as the workflow, clear errors.

The session fixture ``twin_workflow`` (tests/conftest.py) runs the workflow's own path on a small
twin region (twin -> store -> training of interpolation, unet and gan -> predict); the tests then
downscale the twin's ERA5 files with those checkpoints and compare, and feed them broken
inputs. The ensemble models are compared in tests/workflow/test_pipeline.py on the CI run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr

from pdeldm import cli
from pdeldm.data.static import extract_region
from pdeldm.downscale import downscale
from pdeldm.errors import InputError

REPO = Path(__file__).resolve().parents[1]
REGION = {"rlat0": -9.405, "rlon0": -8.245, "ny": 32, "nx": 32}
MODELS = ["interpolation", "unet", "gan"]


@pytest.fixture(scope="module")
def dag(twin_workflow: SimpleNamespace) -> SimpleNamespace:
    return twin_workflow


@pytest.mark.parametrize("name", MODELS)
def test_downscale_equals_the_workflow_prediction(dag: SimpleNamespace, name: str) -> None:
    out = dag.root / "down" / f"{name}.nc"
    # the workflow's test period at its time stride (5 h), default seed and noise origin
    rc = cli.main(["downscale", "--checkpoint", str(dag.ckpts[name]), "--era5", *map(str, dag.era5),
                   "--static", str(dag.static), "--out", str(out), "--start", "2001-03-03", "--end", "2001-03-03",
                   "--stride", "5", "--batch-size", "2"])
    assert rc == 0
    with xr.open_dataset(out) as got, xr.open_dataset(dag.root / "pred" / f"{name}.nc") as want:
        assert got["T_2M"].dims == ("realization", "time", "rlat", "rlon")
        assert got["realization"].attrs["standard_name"] == "realization"
        np.testing.assert_array_equal(got["time"].values, want["time"].values)
        # equal up to float32 rounding (the remap sums in another order for another number of times)
        np.testing.assert_allclose(got["T_2M"].values, want["T_2M"].values, atol=1e-3, rtol=0)
        assert got["T_2M"].attrs["grid_mapping"] == "rotated_pole" and got["T_2M"].attrs["units"] == "K"
        assert got["rotated_pole"].attrs == want["rotated_pole"].attrs
        assert got.attrs["seed"] == dag.cfg["seed"] and got.attrs["noise_time_origin"] == "2001-03-01T00:00:00"
        assert "lat" in got.coords and got["lat"].shape == (32, 32)


def test_gan_noise_follows_seed_and_time_origin(dag: SimpleNamespace) -> None:
    """The GAN draws its noise channel from (seed, 0, index): another seed or origin changes the field."""
    common = ["downscale", "--checkpoint", str(dag.ckpts["gan"]), "--era5", *map(str, dag.era5), "--static",
              str(dag.static), "--start", "2001-03-03T00", "--end", "2001-03-03T00"]
    outs = {}
    for label, extra in {"default": [], "seed": ["--seed", "99"], "origin": ["--time-origin", "2001-02-28"]}.items():
        outs[label] = dag.root / "gan_noise" / f"{label}.nc"
        assert cli.main([*common, "--out", str(outs[label]), *extra]) == 0
    fields = {k: xr.load_dataset(v)["T_2M"].values for k, v in outs.items()}
    assert not np.allclose(fields["default"], fields["seed"])
    assert not np.allclose(fields["default"], fields["origin"])


# --------------------------------------------------------------------------------------------
# inputs that do not match the checkpoint
# --------------------------------------------------------------------------------------------
def _era5_copy(dag: SimpleNamespace, tmp_path: Path, change) -> list[Path]:
    paths = []
    for src in dag.era5:
        ds = xr.load_dataset(src, decode_times=False)
        ds = change(ds)
        path = tmp_path / src.name
        ds.to_netcdf(path)
        paths.append(path)
    return paths


def _run(dag: SimpleNamespace, tmp_path: Path, era5: list[Path] | None = None, static: Path | None = None,
         **options: str) -> str:
    with pytest.raises(InputError) as info:
        downscale(dag.ckpts["unet"], era5 or dag.era5, static or dag.static, tmp_path / "out.nc", **options)
    assert not (tmp_path / "out.nc").exists()
    return str(info.value)


def _as_celsius(ds: xr.Dataset) -> xr.Dataset:
    ds["t2m"] = ds["t2m"] - 273.15
    ds["t2m"].attrs["units"] = "degC"
    return ds


def _as_km_per_hour(ds: xr.Dataset) -> xr.Dataset:
    ds["u10"] = ds["u10"] * 3.6
    ds["u10"].attrs["units"] = "km h**-1"
    return ds


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda ds: ds.drop_vars("u10"), ["missing variable(s) ['u10']", "trained on the ERA5 predictors"]),
        (_as_celsius, ["'t2m' has units 'degC': looks like degC, expected K"]),
        (_as_km_per_hour, ["'u10' has units 'km h**-1', expected m s**-1"]),
        (lambda ds: ds.isel(longitude=slice(2, None)), ["grid mismatch", "do not cover the checkpoint's grid"]),
    ],
    ids=["missing-variable", "celsius", "wind-units", "era5-not-covering-the-grid"],
)
def test_era5_files_that_do_not_match_the_checkpoint(dag: SimpleNamespace, tmp_path: Path, change,
                                                     expected: list[str]) -> None:
    text = _run(dag, tmp_path, era5=_era5_copy(dag, tmp_path, change))
    for part in expected:
        assert part in text, text


def test_static_file_on_another_grid(dag: SimpleNamespace, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.nc"
    extract_region(REPO / "data" / "static" / "eur11_static.nc", {**REGION, "rlon0": REGION["rlon0"] + 0.88}, other)
    text = _run(dag, tmp_path, static=other)
    assert "grid mismatch" in text and str(other) in text and "static file of the training region" in text
    assert "rlon -7.3650..-3.9550" in text and "rlon -8.2450..-4.8350" in text


def test_static_file_without_a_static_field(dag: SimpleNamespace, tmp_path: Path) -> None:
    bad = tmp_path / "static.nc"
    xr.load_dataset(dag.static).drop_vars("FR_LAND").to_netcdf(bad)
    text = _run(dag, tmp_path, static=bad)
    assert "FR_LAND" in text and "the checkpoint needs the static fields" in text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"start": "2001-02-27", "end": "2001-03-01"}, "is not covered: the ERA5 files (1) cover 2001-03-01T00:00:00"),
        ({"start": "2001-03-02", "end": "2001-03-04"}, "is not covered"),
        ({"start": "2001-03-02", "time_origin": "2001-03-02T12"}, "is before the noise time origin"),
        ({"start": "2001-03-02T00:30", "end": "2001-03-02T05:30"}, "6 of 6 time steps (1 h) missing"),
        ({"start": "2001-03-02", "time_origin": "2001-03-01T00:30"}, "not a whole number of 1 h steps"),
    ],
    ids=["before-the-files", "after-the-files", "before-the-noise-origin", "between-the-files-time-steps",
         "origin-off-the-time-step"],
)
def test_period_that_does_not_match(dag: SimpleNamespace, tmp_path: Path, options: dict, expected: str) -> None:
    text = _run(dag, tmp_path, **options)
    assert expected in text, text


def test_period_with_a_gap(dag: SimpleNamespace, tmp_path: Path) -> None:
    era5 = _era5_copy(dag, tmp_path, lambda ds: ds.isel(valid_time=[i for i in range(ds.sizes["valid_time"]) if i != 30]))
    text = _run(dag, tmp_path, era5=era5, start="2001-03-02")
    assert "1 of" in text and "missing from the ERA5 files, first 2001-03-02T06:00:00" in text


def test_checkpoint_without_data_record(dag: SimpleNamespace, tmp_path: Path) -> None:
    ckpt = torch.load(dag.ckpts["unet"], map_location="cpu", weights_only=True)
    ckpt["info"] = {"best_epoch": 0}
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with pytest.raises(InputError, match="written by an older pdeldm; retrain it"):
        downscale(old, dag.era5, dag.static, tmp_path / "out.nc")


def test_steps_only_for_diffusion_models(dag: SimpleNamespace, tmp_path: Path) -> None:
    assert "--steps applies to the diffusion models" in _run(dag, tmp_path, steps=3)


# --------------------------------------------------------------------------------------------
# the console script
# --------------------------------------------------------------------------------------------
def _console_script() -> Path:
    script = Path(sys.executable).with_name("pdeldm")
    if not script.exists():
        pytest.skip("the pdeldm console script is not installed (pip install -e .)")
    return script


def test_console_script_help_for_each_command() -> None:
    script = _console_script()
    top = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and "downscale" in top.stdout and "info" in top.stdout
    for command, options in {"downscale": ["--checkpoint", "--era5", "--static", "--out", "--members", "--steps",
                                           "--seed", "--time-origin"],
                             "info": ["checkpoint", "--json"]}.items():
        proc = subprocess.run([script, command, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0
        for option in options:
            assert option in proc.stdout, (command, option)


def test_console_script_error_is_one_line(dag: SimpleNamespace, tmp_path: Path) -> None:
    proc = subprocess.run([_console_script(), "downscale", "--checkpoint", str(dag.ckpts["unet"]), "--era5",
                           *map(str, dag.era5), "--static", str(dag.static), "--out", str(tmp_path / "o.nc"),
                           "--start", "1999-01-01"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == cli.EXIT_INPUT_ERROR
    assert proc.stderr.strip().startswith("pdeldm downscale: error:") and "is not covered" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_shows_model_data_config_and_metrics(dag: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", str(dag.ckpts["gan"])]) == 0
    text = capsys.readouterr().out
    for part in ("model:", "name: gan", "parameters", "data:", "predictors: ['t2m', 'u10', 'v10']",
                 "grid_north_pole_latitude: 39.25", "rlat: 32 values", "training config:", "seed: 1",
                 "models.gan:", "metrics per epoch:", "train_loss", "best_val_loss"):
        assert part in text, part
    assert cli.main(["info", "--json", str(dag.ckpts["interpolation"])]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["model"]["name"] == "interpolation" and card["data"]["time0"] == "2001-03-01T00:00:00"
    assert card["data"]["split_dates"]["test"][0].startswith("2001-03-03")
