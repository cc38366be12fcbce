"""predict(): netCDF T_2M(member, time, rlat, rlon) in K for the test split."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.predict import predict
from pdeldm.train import train

_spec = importlib.util.spec_from_file_location("_train_helpers", Path(__file__).with_name("test_train.py"))
helpers = importlib.util.module_from_spec(_spec)
sys.modules["_train_helpers"] = helpers
_spec.loader.exec_module(helpers)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    store, meta = helpers.make_store(root, n_train=32, n_val=8, n_test=10)
    cfg = helpers.tiny_cfg()
    ckpts: dict[str, Path] = {}
    deps = {"autoencoder": ["unet"], "ldm": ["unet", "autoencoder"]}
    for name in ["interpolation", "unet", "gan", "autoencoder", "ldm"]:
        out = root / "models" / name
        train(name, cfg, store, meta, {d: ckpts[d] for d in deps.get(name, [])}, out / "model.ckpt",
              out / "m.csv", root / "work" / name, None)
        ckpts[name] = out / "model.ckpt"
    return {"root": root, "store": store, "meta": meta, "cfg": cfg, "ckpts": ckpts}


@pytest.mark.parametrize("name,members", [("interpolation", 1), ("unet", 1), ("gan", 1), ("ldm", 2)])
def test_predict_writes_netcdf(chain: dict, name: str, members: int) -> None:
    out = chain["root"] / "pred" / f"{name}.nc"
    log = chain["root"] / "logs" / f"{name}.log"
    predict(name, chain["cfg"], chain["store"], chain["meta"], chain["ckpts"], out, log)
    with xr.open_dataset(out) as ds, xr.open_zarr(chain["store"]) as store:
        da = ds["T_2M"]
        assert da.dims == ("realization", "time", "rlat", "rlon")
        assert da.dtype == np.float32 and da.attrs["units"] == "K"
        assert ds.attrs["model"] == name
        # test split = store indices 40..49, every 3rd hour
        assert da.sizes == {"realization": members, "time": 4, "rlat": 32, "rlon": 32}
        # the CF ensemble coordinate: one integer per member
        np.testing.assert_array_equal(ds["realization"].values, np.arange(members))
        assert ds["realization"].attrs["standard_name"] == "realization"
        assert ds.attrs["members"] == members
        np.testing.assert_array_equal(ds["time"].values, store["time"].values[40:50:3])
        np.testing.assert_allclose(ds["rlat"].values, store["rlat"].values)
        np.testing.assert_allclose(ds["rlon"].values, store["rlon"].values)
        assert ds["rlat"].attrs["standard_name"] == "grid_latitude" and ds["rlon"].attrs["units"] == "degrees"
        assert (da.attrs.get("grid_mapping") or da.encoding.get("grid_mapping")) == "rotated_pole"
        assert ds["rotated_pole"].attrs["grid_north_pole_latitude"] == store.attrs["grid_north_pole_latitude"]
        values = da.values
        assert np.isfinite(values).all() and 200 < values.mean() < 350
        if name == "interpolation":  # bicubic of a constant-per-block field stays near the truth
            truth = store["target"].values[40:50:3]
            assert np.abs(values[0] - truth).mean() < 5.0
    assert "wrote" in log.read_text()


def test_ldm_prediction_is_reproducible_and_batch_independent(chain: dict) -> None:
    cfg = dict(chain["cfg"])
    a, b = chain["root"] / "rep" / "a.nc", chain["root"] / "rep" / "b.nc"
    predict("ldm", {**cfg, "evaluation": {"time_stride": 3, "members": 2, "batch_size": 4}}, chain["store"],
            chain["meta"], chain["ckpts"], a, None)
    predict("ldm", {**cfg, "evaluation": {"time_stride": 3, "members": 2, "batch_size": 1}}, chain["store"],
            chain["meta"], chain["ckpts"], b, None)
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        np.testing.assert_allclose(da["T_2M"].values, db["T_2M"].values, atol=1e-4)
        assert not np.allclose(da["T_2M"].values[0], da["T_2M"].values[1])  # members differ


def test_predict_from_a_perfect_coarse_input(chain: dict) -> None:
    """coarse_input="perfect": the coarse t2m is the block mean of the truth (recorded in the file).
    This store's coarse t2m already is that block mean, so both inputs give the same UNet field."""
    outs = {}
    for coarse_input in ("store", "perfect"):
        outs[coarse_input] = chain["root"] / coarse_input / "unet.nc"
        predict("unet", chain["cfg"], chain["store"], chain["meta"], chain["ckpts"], outs[coarse_input], None,
                coarse_input=coarse_input)
    with xr.open_dataset(outs["perfect"]) as perfect, xr.open_dataset(outs["store"]) as store:
        assert perfect.attrs["coarse_input"] == "perfect" and store.attrs["coarse_input"] == "store"
        np.testing.assert_allclose(perfect["T_2M"].values, store["T_2M"].values, atol=2e-3)
    out = chain["root"] / "bad.nc"
    with pytest.raises(InputError, match="coarse_input must be 'store' or 'perfect'"):
        predict("interpolation", chain["cfg"], chain["store"], chain["meta"], chain["ckpts"], out, None,
                coarse_input="ideal")


def test_perfect_input_stage_uses_its_own_member_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pdeldm.predict as predict_module
    from pdeldm import stages

    seen = []
    monkeypatch.setattr(predict_module, "predict", lambda model, cfg, *args, **kwargs: seen.append(
        (cfg["evaluation"]["members"], kwargs["coarse_input"])))
    cfg = {"evaluation": {"members": 6, "perfect_input_members": 2}}
    for coarse_input in ("store", "perfect"):
        stages.predict("ldm", cfg, "s.zarr", "m.json", str(tmp_path / "p.nc"), ckpt="c", coarse_input=coarse_input)
    assert seen == [(6, "store"), (2, "perfect")] and cfg["evaluation"]["members"] == 6


@pytest.mark.parametrize("name", ["interpolation", "unet"])
def test_a_store_with_other_statistics_is_normalised_like_the_training_data(chain: dict, name: str) -> None:
    """Another region's store carries its own normalisation; a model applied to it without retuning
    must see its inputs normalised like its training data (the statistics its checkpoint records),
    or every output is shifted by the difference of the two means."""
    import json

    root = chain["root"] / "other_norm"
    root.mkdir(exist_ok=True)
    meta = json.loads(Path(chain["meta"]).read_text())
    for block in [meta["norm"]["target"], *meta["norm"]["coarse"].values(), *meta["norm"]["static"].values()]:
        block["mean"] = block["mean"] - 5.0  # a colder region
        block["std"] = block["std"] * 1.3
    other_meta = root / "meta.json"
    other_meta.write_text(json.dumps(meta))
    outputs = []
    for tag, meta_path in [("own", chain["meta"]), ("other", other_meta)]:
        out = root / f"{name}_{tag}.nc"
        predict(name, chain["cfg"], chain["store"], meta_path, chain["ckpts"], out, root / f"{name}_{tag}.log")
        with xr.open_dataset(out) as ds:
            outputs.append(ds["T_2M"].values)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-4)
    assert "normalised with the checkpoint's training statistics" in (root / f"{name}_other.log").read_text()
