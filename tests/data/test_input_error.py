"""The perfect and the randomised coarse input (robust training) on the store's coarse grid."""

from __future__ import annotations

import json

import pytest
import torch

from pdeldm.data.datasets import DownscalingDataModule, DownscalingDataset, denormalise_target
from pdeldm.data.input_error import CoarseInput, RandomisedInputError, block_mean, gaussian_smooth
from pdeldm.errors import ConfigError

ZERO = {"keep_probability": 0.0, "smoothing_cells": [0.0, 0.0], "bias_K": [0.0, 0.0],
        "elevation_bias_K_per_km": [0.0, 0.0], "noise_K": [0.0, 0.0]}


@pytest.fixture(scope="module")
def meta(built_store):
    return json.loads(built_store.meta.read_text())


def _t2m_kelvin(coarse: torch.Tensor, meta: dict) -> torch.Tensor:
    norm = meta["norm"]["coarse"]["t2m"]
    return coarse[meta["predictors"].index("t2m")] * norm["std"] + norm["mean"]


def test_perfect_input_is_the_block_mean_of_the_truth(built_store, meta):
    item = DownscalingDataset(built_store.store, built_store.meta, "test")[3]
    perfect = CoarseInput.from_meta(meta).perfect(item["coarse"], item["target"])
    expected = block_mean(torch.as_tensor(denormalise_target(item["target"][0].double(), meta)), meta["factor"])
    torch.testing.assert_close(_t2m_kelvin(perfect, meta).double(), expected, atol=2e-3, rtol=0)
    # the other predictors (wind) are untouched; batched input gives the same
    others = [k for k, name in enumerate(meta["predictors"]) if name != "t2m"]
    torch.testing.assert_close(perfect[others], item["coarse"][others])
    batched = CoarseInput.from_meta(meta).perfect(item["coarse"][None], item["target"][None])[0]
    torch.testing.assert_close(batched, perfect)


def test_randomised_error_components(built_store, meta):
    item = DownscalingDataset(built_store.store, built_store.meta, "train")[0]
    perfect = _t2m_kelvin(CoarseInput.from_meta(meta).perfect(item["coarse"], item["target"]), meta)
    gen = torch.Generator().manual_seed(0)
    zero = RandomisedInputError.from_config(ZERO, meta)
    torch.testing.assert_close(_t2m_kelvin(zero.apply(item["coarse"], item["target"], item["static"], gen), meta),
                               perfect, atol=2e-3, rtol=0)
    biased = RandomisedInputError.from_config({**ZERO, "bias_K": [1.5, 1.5]}, meta)
    out = _t2m_kelvin(biased.apply(item["coarse"], item["target"], item["static"], gen), meta)
    torch.testing.assert_close(out, perfect + 1.5, atol=2e-3, rtol=0)
    # elevation bias on the block-mean surface height
    elevation = RandomisedInputError.from_config({**ZERO, "elevation_bias_K_per_km": [2.0, 2.0]}, meta)
    out = _t2m_kelvin(elevation.apply(item["coarse"], item["target"], item["static"], gen), meta)
    hs = meta["norm"]["static"]["HSURF"]
    hsurf = block_mean(item["static"][meta["static_vars"].index("HSURF")].double() * hs["std"] + hs["mean"], 8)
    torch.testing.assert_close(out.double(), perfect.double() + 2.0 * hsurf / 1000.0, atol=3e-3, rtol=0)
    keep = RandomisedInputError.from_config({**ZERO, "keep_probability": 1.0, "bias_K": [5.0, 5.0]}, meta)
    torch.testing.assert_close(keep.apply(item["coarse"], item["target"], item["static"], gen), item["coarse"])


def test_gaussian_smoothing_keeps_the_mean_of_a_constant_and_smooths_a_spike():
    field = torch.full((8, 8), 3.0, dtype=torch.float64)
    torch.testing.assert_close(gaussian_smooth(field, 1.2), field)
    spike = torch.zeros((9, 9), dtype=torch.float64)
    spike[4, 4] = 1.0
    smooth = gaussian_smooth(spike, 1.0)
    assert float(smooth[4, 4]) < 0.2 and float(smooth.sum()) == pytest.approx(1.0, abs=1e-6)


def test_robust_training_items_are_randomised_and_reproducible(built_store, meta):
    cfg = {"enabled": True, "keep_probability": 0.25, "smoothing_cells": [0.0, 1.5], "bias_K": [-1.0, 1.0],
           "elevation_bias_K_per_km": [-0.5, 1.5], "noise_K": [0.0, 0.3]}
    dm = DownscalingDataModule(built_store.store, built_store.meta, batch_size=4, num_workers=0, crop=16, seed=5,
                               robust_input=cfg)
    dm.setup("fit")
    plain = DownscalingDataset(built_store.store, built_store.meta, "train", crop=16, seed=5)
    changed = sum(not torch.equal(dm.train_set[(k, 0)]["coarse"], plain[(k, 0)]["coarse"]) for k in range(40))
    assert 20 <= changed < 40  # about 3/4 randomised, the rest kept
    torch.testing.assert_close(dm.train_set[(7, 2)]["coarse"], dm.train_set[(7, 2)]["coarse"])  # reproducible
    assert not torch.equal(dm.train_set[(7, 1)]["coarse"], dm.train_set[(7, 2)]["coarse"])  # new draw per epoch
    for k in range(0, len(dm.val_set), 5):  # validation keeps the store's input
        torch.testing.assert_close(dm.val_set[k]["coarse"], DownscalingDataset(
            built_store.store, built_store.meta, "val", crop=16, seed=5, fixed_crops=True)[k]["coarse"])
    off = DownscalingDataModule(built_store.store, built_store.meta, batch_size=4, num_workers=0, crop=16, seed=5,
                                robust_input={**cfg, "enabled": False})
    assert off.input_error is None


def test_robust_input_overlay_reaches_the_training_options():
    """`{enabled: true}` in an overlay or a model's training block keeps the other keys' defaults."""
    from pathlib import Path

    from pdeldm.config import load_config
    from pdeldm.train import training_options

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "config" / "config.yaml")
    assert training_options(config, "unet")["robust_input"]["enabled"] is False
    config["models"]["unet"]["training"] = {"robust_input": {"enabled": True}}
    options = training_options(config, "unet")["robust_input"]
    assert options["enabled"] is True and options["smoothing_cells"] == [0.0, 1.5]


def test_bad_ranges_are_config_errors(meta):
    with pytest.raises(ConfigError, match=r"training\.robust_input\.noise_K must be \[low, high\] with low <= high"):
        RandomisedInputError.from_config({**ZERO, "noise_K": [0.3, 0.1]}, meta)
    with pytest.raises(ConfigError, match=r"keep_probability must lie in \[0, 1\]"):
        RandomisedInputError.from_config({**ZERO, "keep_probability": 1.5}, meta)
    with pytest.raises(ConfigError, match="needs the predictor 't2m'"):
        CoarseInput.from_meta({**meta, "predictors": ["u10", "v10"]})
