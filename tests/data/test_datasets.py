"""Torch dataset and Lightning data module over the store (interfaces §4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pdeldm.data.datasets import DownscalingDataModule, DownscalingDataset, EpochSampler, denormalise_target
from pdeldm.data.store import open_store
from pdeldm.errors import InputError


@pytest.fixture(scope="module")
def meta(built_store):
    return json.loads(built_store.meta.read_text())


def test_item_shapes_and_normalisation(built_store, meta):
    ds = DownscalingDataset(built_store.store, built_store.meta, "val")
    i0, i1 = meta["splits"]["val"]
    assert len(ds) == i1 - i0
    item = ds[5]
    ny, nx = meta["shape"]
    assert item["coarse"].shape == (3, ny // 8, nx // 8)
    assert item["static"].shape == (3, ny, nx)
    assert item["target"].shape == (1, ny, nx)
    assert item["wind"].shape == (2, ny, nx)
    assert all(item[k].dtype == torch.float32 for k in ("coarse", "static", "target", "wind"))
    assert item["index"].dtype == torch.int64 and int(item["index"]) == i0 + 5

    store = open_store(built_store.store)
    kelvin = store["target"].values[i0 + 5]
    np.testing.assert_allclose(denormalise_target(item["target"][0], meta).numpy(), kelvin, atol=1e-3)
    np.testing.assert_allclose(item["wind"].numpy(), store["wind"].values[i0 + 5])  # m/s, not normalised
    c = meta["norm"]["coarse"]["u10"]
    np.testing.assert_allclose(item["coarse"][1].numpy(), (store["coarse"].values[i0 + 5, 1] - c["mean"]) / c["std"], atol=1e-5)
    # train-period normalisation: the train split is ~zero-mean, unit-std
    train = DownscalingDataset(built_store.store, built_store.meta, "train", time_stride=7)
    t = torch.stack([train[k]["target"] for k in range(len(train))])
    assert abs(float(t.mean())) < 0.05 and abs(float(t.std()) - 1) < 0.05


def test_lazy_matches_in_memory(built_store, meta):
    mem = DownscalingDataset(built_store.store, built_store.meta, "test", crop=16, time_stride=5, seed=3)
    lazy = DownscalingDataset(built_store.store, built_store.meta, "test", crop=16, time_stride=5, seed=3, in_memory=False)
    assert len(mem) == len(lazy) == len(range(*meta["splits"]["test"], 5))
    for k in (0, 7, len(mem) - 1):
        a, b = mem[k], lazy[k]
        for key in a:
            torch.testing.assert_close(a[key], b[key])


def test_crops_aligned_and_deterministic(built_store, meta):
    ds = DownscalingDataset(built_store.store, built_store.meta, "train", crop=16, seed=11)
    full = DownscalingDataset(built_store.store, built_store.meta, "train")
    origins = set()
    for k in range(0, len(ds), 37):
        item = ds[(k, 0)]
        y0, x0 = (int(v) for v in item["origin"])
        origins.add((y0, x0))
        assert y0 % 8 == 0 and x0 % 8 == 0
        assert item["target"].shape == (1, 16, 16) and item["coarse"].shape == (3, 2, 2)
        ref = full[k]
        torch.testing.assert_close(item["target"], ref["target"][:, y0:y0 + 16, x0:x0 + 16])
        torch.testing.assert_close(item["static"], ref["static"][:, y0:y0 + 16, x0:x0 + 16])
        torch.testing.assert_close(item["coarse"], ref["coarse"][:, y0 // 8:y0 // 8 + 2, x0 // 8:x0 // 8 + 2])
    assert len(origins) > 1  # crops do move

    # same (seed, epoch, index) -> same crop, whatever the access order or a fresh object
    again = DownscalingDataset(built_store.store, built_store.meta, "train", crop=16, seed=11)
    assert [tuple(again[(k, 2)]["origin"].tolist()) for k in (40, 3)] == [tuple(ds[(k, 2)]["origin"].tolist()) for k in (40, 3)]
    epochs = {tuple(ds[(3, e)]["origin"].tolist()) for e in range(12)}
    assert len(epochs) > 1  # new crops each epoch
    other_seed = DownscalingDataset(built_store.store, built_store.meta, "train", crop=16, seed=12)
    assert [other_seed.crop_origin(k, 0) for k in range(20)] != [ds.crop_origin(k, 0) for k in range(20)]
    fixed = DownscalingDataset(built_store.store, built_store.meta, "val", crop=16, seed=11, fixed_crops=True)
    assert fixed.crop_origin(4, 0) == fixed.crop_origin(4, 9)

    for bad in (12, 0, 40):
        with pytest.raises(InputError, match="crop"):
            DownscalingDataset(built_store.store, built_store.meta, "train", crop=bad)
    with pytest.raises(InputError, match="no split 'holdout'"):
        DownscalingDataset(built_store.store, built_store.meta, "holdout")


def test_epoch_sampler_reproducible():
    s = EpochSampler(10, shuffle=True, seed=5)
    first = list(s)
    assert sorted(k for k, _ in first) == list(range(10)) and all(e == 0 for _, e in first)
    assert list(EpochSampler(10, shuffle=True, seed=5)) == first
    s.set_epoch(1)
    second = list(s)
    assert [k for k, _ in second] != [k for k, _ in first] and all(e == 1 for _, e in second)
    assert [k for k, _ in EpochSampler(4, shuffle=False)] == [0, 1, 2, 3]


def _batches(dm: DownscalingDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_datamodule_batches_and_determinism(built_store, meta):
    dm = DownscalingDataModule(built_store.store, built_store.meta, batch_size=8, num_workers=0, crop=16, seed=7,
                               time_stride=24)
    dm.setup("fit")
    assert dm.n_coarse == 3 and dm.n_static == 3 and dm.factor == 8
    batch = next(iter(dm.train_dataloader()))
    assert batch["coarse"].shape == (8, 3, 2, 2) and batch["target"].shape == (8, 1, 16, 16)
    assert batch["wind"].shape == (8, 2, 16, 16) and batch["index"].shape == (8,)
    val = next(iter(dm.val_dataloader()))
    assert val["target"].shape[-2:] == (16, 16)

    e0 = _batches(dm, 0)
    dm2 = DownscalingDataModule(built_store.store, built_store.meta, batch_size=8, num_workers=2, crop=16, seed=7,
                                time_stride=24)
    dm2.setup("fit")
    e0_workers = _batches(dm2, 0)  # worker processes: same crops and order
    for a, b in zip(e0, e0_workers, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    e1 = _batches(dm, 1)
    assert not torch.equal(torch.cat([b["index"] for b in e0]), torch.cat([b["index"] for b in e1]))

    dm.setup("test")
    test_batch = next(iter(dm.test_dataloader()))
    assert test_batch["target"].shape[-2:] == tuple(meta["shape"])  # whole domain
    assert test_batch["index"].tolist() == list(range(meta["splits"]["test"][0], meta["splits"]["test"][0] + 8))


def test_sampler_shards_for_distributed_training():
    """Each rank takes every world_size-th item of the same epoch order; together they cover it."""
    full = [k for k, _ in EpochSampler(10, seed=3)]
    shards = []
    for rank in range(3):
        s = EpochSampler(10, seed=3, num_replicas=3, rank=rank)
        s.set_epoch(0)
        shards.append([k for k, _ in s])
        assert len(shards[-1]) == len(s) == 4  # ceil(10 / 3): padded by wrapping around
    assert sorted(set(sum(shards, []))) == list(range(10))
    assert [shards[r][i] for i in range(3) for r in range(3)] == full[:9]
    with pytest.raises(ValueError, match="rank 3 outside"):
        EpochSampler(10, num_replicas=3, rank=3)


def test_sampler_skip_applies_to_the_next_iteration_only():
    s = EpochSampler(10, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.skip_next(4)
    assert list(s) == full[4:]
    assert list(s) == full
