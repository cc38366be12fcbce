"""train(): every model on a tiny synthetic store; checkpoint + metrics; resume from last.ckpt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from pdeldm.models.registry import load_model, read_checkpoint
from pdeldm.train import train

NY = NX = 32
FACTOR = 8


def make_store(root: Path, n_train: int = 48, n_val: int = 16, n_test: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """A store in the layout of interfaces §3 (zarr 2, consolidated) with smooth synthetic fields."""
    rng = np.random.default_rng(seed)
    nt = n_train + n_val + n_test
    times = pd.date_range("2001-01-01", periods=nt, freq="h")
    y, x = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    hsurf = 800 * np.exp(-((y - 16) ** 2 + (x - 12) ** 2) / 60.0)
    phase = rng.uniform(0, 2 * np.pi, nt)
    target = (285 + 5 * np.sin(2 * np.pi * np.arange(nt) / 24)[:, None, None]
              + 2 * np.sin(x[None] / 5 + phase[:, None, None]) - 0.0065 * hsurf[None]
              + 0.3 * rng.standard_normal((nt, NY, NX))).astype(np.float32)
    t2m_c = target.reshape(nt, NY // FACTOR, FACTOR, NX // FACTOR, FACTOR).mean(axis=(2, 4))
    u = 3 + rng.standard_normal((nt, NY // FACTOR, NX // FACTOR))
    v = -1 + rng.standard_normal((nt, NY // FACTOR, NX // FACTOR))
    coarse = np.stack([t2m_c, u, v], axis=1).astype(np.float32)
    wind = np.repeat(np.repeat(coarse[:, 1:], FACTOR, axis=2), FACTOR, axis=3)
    static = np.stack([hsurf, (hsurf > 100).astype(float), 40 + 0.1 * y]).astype(np.float32)
    ds = xr.Dataset(
        {"target": (("time", "y", "x"), target), "coarse": (("time", "cvar", "yc", "xc"), coarse),
         "wind": (("time", "wvar", "y", "x"), wind), "static": (("svar", "y", "x"), static)},
        coords={"time": times,
                "rlat": ("y", -5 + 0.11 * np.arange(NY), {"standard_name": "grid_latitude", "units": "degrees"}),
                "rlon": ("x", -3 + 0.11 * np.arange(NX), {"standard_name": "grid_longitude", "units": "degrees"}),
                "rlat_c": ("yc", np.arange(NY // FACTOR) * 0.88), "rlon_c": ("xc", np.arange(NX // FACTOR) * 0.88),
                "lon": (("y", "x"), np.broadcast_to(10 + 0.15 * np.arange(NX), (NY, NX)).copy()),
                "cvar": ["t2m", "u10", "v10"], "svar": ["HSURF", "FR_LAND", "lat"], "wvar": ["u10", "v10"]},
        attrs={"dx_m": 12_200.0, "dy_m": 12_230.0, "factor": FACTOR,
               "grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0},
    )
    store = root / "store.zarr"
    ds.to_zarr(store, mode="w", zarr_format=2, consolidated=True)
    tr = slice(0, n_train)

    def stats(a: np.ndarray) -> dict[str, float]:
        return {"mean": float(a.mean()), "std": float(a.std())}

    meta = {
        "factor": FACTOR, "dx_m": 12_200.0, "dy_m": 12_230.0, "shape": [NY, NX],
        "coarse_shape": [NY // FACTOR, NX // FACTOR], "predictors": ["t2m", "u10", "v10"],
        "static_vars": ["HSURF", "FR_LAND", "lat"],
        "splits": {"train": [0, n_train], "val": [n_train, n_train + n_val], "test": [n_train + n_val, nt]},
        "split_dates": {}, "n_times": nt,
        "norm": {"target": stats(target[tr]),
                 "coarse": {n: stats(coarse[tr, i]) for i, n in enumerate(["t2m", "u10", "v10"])},
                 "static": {n: stats(static[i]) for i, n in enumerate(["HSURF", "FR_LAND", "lat"])}},
    }
    meta_path = root / "store.json"
    meta_path.write_text(json.dumps(meta))
    return store, meta_path


TINY_MODELS = {
    "interpolation": {"mode": "bicubic"},
    "unet": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "optimizer": {"lr": 1e-3}},
    "gan": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "loss": "hinge",
            "content_weight": 1.0, "adversarial_weight": 0.01, "discriminator": {"base_channels": 8, "n_layers": 2}},
    "autoencoder": {"kind": "vq", "base_channels": 8, "channel_mult": [1, 1, 2], "latent_channels": 2,
                    "vq": {"n_codes": 32}},
    "ldm": {"denoiser": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "cond_channels": 4},
            "diffusion": {"timesteps": 100}, "sampler": {"steps": 3}, "scheduler": {"factor": 0.5, "patience": 1}},
    "pde_ldm": {"pde": {"form": "flux_ratio", "lambda": 0.1, "cell": 16, "t_max": 50}},
}


def tiny_cfg(**training: object) -> dict:
    # keys left out take the schema's defaults; crop None trains on the whole (tiny) field
    opts = {"max_epochs": 1, "batch_size": 8, "limit_train_batches": 2, "limit_val_batches": 1,
            "accelerator": "cpu", "devices": 1, "latent_scale_batches": 2, "crop": None}
    opts.update(training)
    return {"seed": 1, "data": {"time_features": True}, "models": json.loads(json.dumps(TINY_MODELS)), "training": opts,
            "evaluation": {"time_stride": 3, "members": 2, "batch_size": 4}}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


CHAIN_DEPS = {"autoencoder": ["unet"], "ldm": ["unet", "autoencoder"], "pde_ldm": ["unet", "autoencoder", "ldm"]}


def train_chain(root: Path, names: list[str], cfg: dict | None = None) -> dict:
    """Train ``names`` in order on a fresh tiny store under ``root`` (each gets its dependencies)."""
    store, meta = make_store(root)
    cfg = cfg or tiny_cfg()
    ckpts: dict[str, Path] = {}
    for name in names:
        out = root / "results" / name
        train(name, cfg, store, meta, {d: ckpts[d] for d in CHAIN_DEPS.get(name, [])}, out / "model.ckpt",
              out / "training_metrics.csv", root / "work" / name, root / "logs" / f"{name}.log")
        ckpts[name] = out / "model.ckpt"
    return {"root": root, "store": store, "meta": meta, "cfg": cfg, "ckpts": ckpts}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the whole chain once (module scope); tests inspect the outputs."""
    return train_chain(tmp_path_factory.mktemp("train"), ["interpolation", "unet", "gan", "autoencoder", "ldm", "pde_ldm"])


@pytest.mark.parametrize("name", ["interpolation", "unet", "gan", "autoencoder", "ldm", "pde_ldm"])
def test_train_writes_loadable_checkpoint_and_metrics(trained: dict, name: str) -> None:
    ckpt = trained["ckpts"][name]
    model = load_model(ckpt)
    assert model.name == name
    rows = read_rows(ckpt.parent / "training_metrics.csv")
    with open(ckpt.parent / "training_metrics.csv") as fh:
        assert fh.readline().strip() == "epoch,train_loss,val_loss,lr,seconds,samples_per_s"
    if name == "interpolation":
        assert rows == []
        return
    assert [int(r["epoch"]) for r in rows] == [0]
    assert np.isfinite(float(rows[0]["train_loss"])) and np.isfinite(float(rows[0]["val_loss"]))
    assert float(rows[0]["samples_per_s"]) > 0
    log = (trained["root"] / "logs" / f"{name}.log").read_text()
    assert "epoch 0/1 train_loss=" in log and "parameters total:" in log
    assert (trained["root"] / "work" / name / "last.ckpt").exists()


def test_ldm_checkpoint_carries_latent_scale_and_ema_weights(trained: dict) -> None:
    ckpt = read_checkpoint(trained["ckpts"]["ldm"])
    assert float(ckpt["state_dict"]["latent_scale"]) > 0
    live = {k[len("denoiser."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("denoiser.")}
    ema = {k[len("denoiser_ema.shadow."):]: v for k, v in ckpt["state_dict"].items()
           if k.startswith("denoiser_ema.shadow.")}
    assert live.keys() == ema.keys() and all(torch.equal(live[k], ema[k]) for k in live)
    pde = read_checkpoint(trained["ckpts"]["pde_ldm"])
    assert float(pde["state_dict"]["latent_scale"]) == float(ckpt["state_dict"]["latent_scale"])
    assert "latent scale factor" in (trained["root"] / "logs" / "ldm.log").read_text()
    assert "latent scale factor" not in (trained["root"] / "logs" / "pde_ldm.log").read_text()  # inherited
    # Frozen during fine-tuning: the UNet and the encoder are exactly the LDM's.
    for key in [k for k in ckpt["state_dict"] if k.startswith(("unet.", "autoencoder.encoder."))]:
        assert torch.equal(ckpt["state_dict"][key], pde["state_dict"][key])


def test_resume_continues_epoch_count(tmp_path: Path) -> None:
    store, meta = make_store(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    train("unet", tiny_cfg(max_epochs=1), store, meta, {}, out / "model.ckpt", out / "m.csv", work, None)
    first = (work / "last.ckpt").stat().st_mtime_ns
    # "Killed" job reruns with the same workdir: it resumes after epoch 0 instead of restarting.
    (out / "model.ckpt").unlink()
    train("unet", tiny_cfg(max_epochs=3), store, meta, {}, out / "model.ckpt", out / "m.csv", work,
          tmp_path / "resume.log")
    rows = read_rows(out / "m.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert (work / "last.ckpt").stat().st_mtime_ns != first
    last = torch.load(work / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 2
    assert "resumed at epoch 1" in (tmp_path / "resume.log").read_text()
    assert load_model(out / "model.ckpt").name == "unet"


def test_interrupted_mid_epoch_resumes_from_step_checkpoint(tmp_path: Path) -> None:
    store, meta = make_store(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    # max_steps stops inside epoch 0: only the step checkpoint exists (no epoch finished).
    train("unet", tiny_cfg(max_epochs=2, max_steps=1, checkpoint_every_n_steps=1), store, meta, {},
          out / "model.ckpt", out / "m.csv", work, None)
    assert torch.load(work / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 1
    train("unet", tiny_cfg(max_epochs=2, checkpoint_every_n_steps=1), store, meta, {}, out / "model.ckpt",
          out / "m.csv", work, None)
    last = torch.load(work / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4  # 1 step before the interruption + 3 after, not 4 more
    assert [int(r["epoch"]) for r in read_rows(out / "m.csv")] == [0, 1]


def test_changed_architecture_starts_afresh(tmp_path: Path) -> None:
    store, meta = make_store(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    train("unet", tiny_cfg(max_epochs=1), store, meta, {}, out / "model.ckpt", out / "m.csv", work, None)
    cfg = tiny_cfg(max_epochs=2)
    cfg["models"]["unet"]["base_channels"] = 4  # a different network: last.ckpt cannot be resumed
    train("unet", cfg, store, meta, {}, out / "model.ckpt", out / "m.csv", work, tmp_path / "fresh.log")
    assert [int(r["epoch"]) for r in read_rows(out / "m.csv")] == [0, 1]
    text = (tmp_path / "fresh.log").read_text()
    assert "starting afresh" in text and "resumed" not in text
    assert load_model(out / "model.ckpt").unet.net.base_channels == 4


def test_enabling_robust_input_starts_afresh(tmp_path: Path) -> None:
    """Robust training changes the training data: a working checkpoint of a plain run is not resumed."""
    store, meta = make_store(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    train("unet", tiny_cfg(max_epochs=1), store, meta, {}, out / "model.ckpt", out / "m.csv", work, None)
    robust = {"enabled": True, "keep_probability": 0.25, "smoothing_cells": [0.0, 1.5], "bias_K": [-1.0, 1.0],
              "elevation_bias_K_per_km": [-0.5, 1.5], "noise_K": [0.0, 0.3]}
    train("unet", tiny_cfg(max_epochs=2, robust_input=robust), store, meta, {}, out / "model.ckpt", out / "m.csv",
          work, tmp_path / "robust.log")
    assert "starting afresh" in (tmp_path / "robust.log").read_text()
    assert [int(r["epoch"]) for r in read_rows(out / "m.csv")] == [0, 1]
