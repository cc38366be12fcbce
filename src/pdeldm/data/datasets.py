"""PyTorch views of the training store (docs/interfaces.md §4).

Items are dicts of float32 tensors normalised with ``meta["norm"]`` (train-period statistics):
``coarse [Cc, hc, wc]``, ``static [Cs, H, W]``, ``target [1, H, W]``, ``wind [2, H, W]`` (m/s, not
normalised), ``index`` (int64 store time index) and ``origin`` (int64 ``[y0, x0]`` of the crop on
the fine grid; ``[0, 0]`` without cropping).

With ``time_features`` the coarse predictors gain four constant channels after the store's:
``sin``/``cos`` of the UTC hour of day and of the day of year (:func:`time_feature_channels`), so that
every model knows the phase of the diurnal and seasonal cycles.

With ``physics_fields`` (for the equation-residual PDE losses) items also carry
``target_prev``/``target_next`` ``[1, H, W]`` (the target an hour before and after, normalised like
the target; the split's first and last hour repeat their own value), ``phases [2]`` (fraction of
the day and of the year, :func:`pdeldm.physics.identified_pde.time_phases`) and ``surface [3, H, W]``
(HSURF in m, FR_LAND, longitude in degrees: the raw fields of the equation's sources).

Reproducibility: a random crop is drawn from a ``torch.Generator`` seeded from
``(seed, epoch, index)`` alone, so it does not depend on worker count, worker assignment or the
order in which items are fetched. The epoch reaches the workers through the sampler
(:class:`EpochSampler` yields ``(index, epoch)`` pairs; Lightning calls its ``set_epoch`` at the start
of every training epoch), which also works with persistent workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset, Sampler

from pdeldm.data.input_error import RandomisedInputError
from pdeldm.errors import InputError
from pdeldm.io import read_json

#: Times loaded per read when filling memory (bounds the transient copy before striding).
_LOAD_BLOCK = 24 * 8
#: Extra seed part of the robust-input draws (independent of the crop draws).
_INPUT_ERROR_STREAM = 0xE440


def _seed(*parts: int) -> int:
    # SeedSequence mixes the parts well, so (seed, epoch, index) triples never collide in practice.
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


#: Channels :func:`time_feature_channels` appends to the coarse predictors.
TIME_FEATURES: tuple[str, ...] = ("sin_hour", "cos_hour", "sin_day_of_year", "cos_day_of_year")


def time_feature_channels(times: Any) -> np.ndarray:
    """``(n, 4)`` float32: sin/cos of the UTC hour of day and of the day of year of ``times``."""
    from pdeldm.physics.identified_pde import time_phases

    day, year = time_phases(times)
    angles = 2 * np.pi * np.stack([day, year], axis=-1)
    return np.stack([np.sin(angles[:, 0]), np.cos(angles[:, 0]), np.sin(angles[:, 1]), np.cos(angles[:, 1])],
                    axis=-1).astype(np.float32)


def evenly_spaced(indices: np.ndarray, n: int | None) -> np.ndarray:
    """At most ``n`` of ``indices``, spread evenly from the first to the last (all if ``n`` is None)."""
    if n is None or n >= indices.size:
        return indices
    if n < 1:
        raise InputError(f"a subset needs at least one sample, got {n}")
    return indices[np.unique(np.linspace(0, indices.size - 1, n).round().astype(int))]


def denormalise_target(x: torch.Tensor | np.ndarray, meta: dict[str, Any]) -> torch.Tensor | np.ndarray:
    """Normalised target -> K (inverse of the dataset's target normalisation)."""
    norm = meta["norm"]["target"]
    return x * norm["std"] + norm["mean"]


def normalise_target(x: torch.Tensor | np.ndarray, meta: dict[str, Any]) -> torch.Tensor | np.ndarray:
    """K -> normalised target (as in dataset items)."""
    norm = meta["norm"]["target"]
    return (x - norm["mean"]) / norm["std"]


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)``; shuffled with a generator seeded by ``(seed, epoch)``.

    Distributed training: each of ``num_replicas`` processes takes every ``num_replicas``-th item
    of the same epoch order (padded by wrapping around, so all ranks see the same number of
    batches), so Lightning's own distributed sampler is not needed (``use_distributed_sampler=False``)
    and the per-epoch order still comes from ``set_epoch``.

    Exact resume: :meth:`skip_next` drops the first items of the next iteration only, the ones a
    run interrupted mid-epoch had already trained on.
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.n = int(n)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of each epoch."""
        self.epoch = int(epoch)

    def skip_next(self, n_items: int) -> None:
        """Leave out the first ``n_items`` items of the next iteration (then iterate in full again)."""
        self._skip = max(int(n_items), 0)

    def __len__(self) -> int:
        return -(-self.n // self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(_seed(self.seed, self.epoch, 0x5EED))
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        if self.num_replicas > 1 and order:
            total = len(self) * self.num_replicas
            order = (order * (-(-total // len(order))))[:total][self.rank::self.num_replicas]
        skip, self._skip = self._skip, 0
        for k in order[skip:]:
            yield (k, self.epoch)


def _store_times(store_path: Path) -> np.ndarray:
    """The store's decoded time coordinate (datetime64[ns])."""
    import xarray as xr

    with xr.open_zarr(store_path) as ds:
        return ds["time"].values.astype("datetime64[ns]")


class DownscalingDataset(Dataset[dict[str, torch.Tensor]]):
    """One split of the store as normalised tensors.

    Args:
        store_path, meta_path: the store and its metadata JSON (interfaces §3).
        split: ``train``, ``val`` or ``test`` (any key of ``meta["splits"]``).
        crop: fine-grid crop size (a multiple of ``factor``, at most the grid size); ``None`` = whole
            domain. Crop origins lie on the coarse grid, so the coarse crop is exactly aligned.
        in_memory: load the split once into RAM (normalised); otherwise read each item from zarr.
        time_stride: use every ``time_stride``-th time of the split.
        seed: base seed of the crop generator.
        fixed_crops: draw crops from ``(seed, index)`` only, identical every epoch (validation).
        n_samples: keep at most this many of the (strided) times, evenly spread over the split
            (a fixed validation subset that covers the whole validation period).
        time_features: append the :data:`TIME_FEATURES` channels to ``coarse``.
        physics_fields: add the fields of the equation-residual losses (module docstring).
        input_error: randomise each item's coarse t2m (robust training, :mod:`pdeldm.data.input_error`),
            drawn from ``(seed, epoch, index)`` like the crops.
        norm: normalisation statistics to use instead of the store's own (``meta["norm"]``): a trained
            model applied to another region's store is fed data normalised like its training data.
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        meta_path: str | os.PathLike[str],
        split: str,
        crop: int | None = None,
        in_memory: bool = True,
        time_stride: int = 1,
        seed: int = 0,
        fixed_crops: bool = False,
        n_samples: int | None = None,
        time_features: bool = False,
        physics_fields: bool = False,
        input_error: RandomisedInputError | None = None,
        norm: Mapping[str, Any] | None = None,
    ) -> None:
        self.store_path = Path(store_path)
        self.input_error = input_error
        self.meta = read_json(meta_path)
        if split not in self.meta["splits"]:
            raise InputError(f"{meta_path}: no split '{split}' (have {sorted(self.meta['splits'])})")
        if int(time_stride) < 1:
            raise InputError(f"time_stride must be >= 1, got {time_stride}")
        self.split = split
        self.factor = int(self.meta["factor"])
        self.shape = tuple(int(n) for n in self.meta["shape"])
        i0, i1 = (int(i) for i in self.meta["splits"][split])
        self.split_range = (i0, i1)
        self.indices = evenly_spaced(np.arange(i0, i1, int(time_stride), dtype=np.int64), n_samples)
        if self.indices.size == 0:
            raise InputError(f"{meta_path}: split '{split}' is empty")
        self.crop = None if crop is None else int(crop)
        if self.crop is not None:
            if self.crop <= 0 or self.crop % self.factor or self.crop > min(self.shape):
                raise InputError(
                    f"crop {crop} must be a positive multiple of factor {self.factor} and at most the grid size {self.shape}"
                )
        self.seed = int(seed)
        self.fixed_crops = fixed_crops
        self.epoch = 0
        self.in_memory = in_memory
        self.with_time_features = bool(time_features)
        self.physics_fields = bool(physics_fields)
        self._group: zarr.Group | None = None
        if self.with_time_features or self.physics_fields:
            times = _store_times(self.store_path)[self.indices]
            self._features = torch.from_numpy(time_feature_channels(times))
            from pdeldm.physics.identified_pde import time_phases

            self._phases = torch.from_numpy(np.stack(time_phases(times), axis=-1).astype(np.float32))

        norm = self.meta["norm"] if norm is None else norm
        self._t_mean, self._t_std = float(norm["target"]["mean"]), float(norm["target"]["std"])
        self._c_mean = np.array([norm["coarse"][v]["mean"] for v in self.meta["predictors"]], np.float32)[:, None, None]
        self._c_std = np.array([norm["coarse"][v]["std"] for v in self.meta["predictors"]], np.float32)[:, None, None]
        s_mean = np.array([norm["static"][v]["mean"] for v in self.meta["static_vars"]], np.float32)[:, None, None]
        s_std = np.array([norm["static"][v]["std"] for v in self.meta["static_vars"]], np.float32)[:, None, None]
        static = np.asarray(self._arrays()["static"][:], dtype=np.float32)
        self.static = torch.from_numpy((static - s_mean) / s_std)
        if self.physics_fields:
            names = list(self.meta["static_vars"])
            missing = [v for v in ("HSURF", "FR_LAND") if v not in names]
            if missing:
                raise InputError(f"{meta_path}: static fields {missing} missing; the PDE loss's sources need them "
                                 "(add them to data.static_vars)")
            lon = np.asarray(self._arrays()["lon"][:], dtype=np.float32)
            self.surface = torch.from_numpy(np.stack([static[names.index("HSURF")], static[names.index("FR_LAND")],
                                                      lon]))

        self._mem: dict[str, torch.Tensor] = {}
        if in_memory:
            self._load_split()
            self._group = None  # nothing more to read; keeps the object cheap to pickle to workers

    # -- storage ------------------------------------------------------------------------------
    def _arrays(self) -> zarr.Group:
        if self._group is None:
            if not self.store_path.is_dir():
                raise InputError(f"{self.store_path}: store does not exist")
            self._group = zarr.open_group(str(self.store_path), mode="r")
        return self._group

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_group"] = None  # each worker opens its own handle
        return state

    def _read(self, name: str, indices: np.ndarray) -> np.ndarray:
        """``name`` at the sorted store ``indices``, read block by block (bounded transient memory)."""
        array = self._arrays()[name]
        parts = []
        for start in range(0, indices.size, _LOAD_BLOCK):
            chunk = indices[start:start + _LOAD_BLOCK]
            lo, hi = int(chunk[0]), int(chunk[-1]) + 1
            parts.append(np.asarray(array[lo:hi], np.float32)[chunk - lo])
        return np.concatenate(parts)

    def _neighbour_indices(self) -> tuple[np.ndarray, np.ndarray]:
        i0, i1 = self.split_range
        return np.clip(self.indices - 1, i0, i1 - 1), np.clip(self.indices + 1, i0, i1 - 1)

    def _load_split(self) -> None:
        target = self._read("target", self.indices)
        coarse = self._read("coarse", self.indices)
        self._mem = {
            "target": torch.from_numpy((target - self._t_mean) / self._t_std).unsqueeze(1),
            "coarse": torch.from_numpy((coarse - self._c_mean[None]) / self._c_std[None]),
            "wind": torch.from_numpy(self._read("wind", self.indices)),
        }
        if self.physics_fields:
            for key, where in zip(("target_prev", "target_next"), self._neighbour_indices()):
                values = self._read("target", where)
                self._mem[key] = torch.from_numpy((values - self._t_mean) / self._t_std).unsqueeze(1)

    # -- items --------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Epoch used for crops when items are requested by plain index."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.indices.size)

    def crop_origin(self, k: int, epoch: int | None = None) -> tuple[int, int]:
        """Fine-grid ``(y0, x0)`` of item ``k``'s crop in ``epoch`` (multiples of ``factor``)."""
        if self.crop is None:
            return (0, 0)
        ep = 0 if self.fixed_crops else (self.epoch if epoch is None else int(epoch))
        gen = torch.Generator().manual_seed(_seed(self.seed, ep, int(self.indices[k])))
        ncy = (self.shape[0] - self.crop) // self.factor + 1
        ncx = (self.shape[1] - self.crop) // self.factor + 1
        cy = int(torch.randint(ncy, (1,), generator=gen))
        cx = int(torch.randint(ncx, (1,), generator=gen))
        return cy * self.factor, cx * self.factor

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        k, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), None)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"index {k} out of range for split '{self.split}' of length {len(self)}")
        y0, x0 = self.crop_origin(k, epoch)
        h, w = (self.crop, self.crop) if self.crop is not None else self.shape
        f = self.factor
        ys, xs = slice(y0, y0 + h), slice(x0, x0 + w)
        yc, xc = slice(y0 // f, (y0 + h) // f), slice(x0 // f, (x0 + w) // f)
        t = int(self.indices[k])
        extra: dict[str, torch.Tensor] = {}
        if self.in_memory:
            target = self._mem["target"][k, :, ys, xs]
            coarse = self._mem["coarse"][k, :, yc, xc]
            wind = self._mem["wind"][k, :, ys, xs]
            if self.physics_fields:
                extra = {key: self._mem[key][k, :, ys, xs] for key in ("target_prev", "target_next")}
        else:
            g = self._arrays()

            def fine_target(index: int) -> torch.Tensor:
                values = np.asarray(g["target"][index, ys, xs], np.float32)[None]
                return torch.from_numpy((values - self._t_mean) / self._t_std)

            target = fine_target(t)
            coarse = torch.from_numpy((np.asarray(g["coarse"][t, :, yc, xc], np.float32) - self._c_mean) / self._c_std)
            wind = torch.from_numpy(np.asarray(g["wind"][t, :, ys, xs], np.float32))
            if self.physics_fields:
                prev, nxt = (int(a[k]) for a in self._neighbour_indices())
                extra = {"target_prev": fine_target(prev), "target_next": fine_target(nxt)}
        if self.input_error is not None:
            ep = 0 if self.fixed_crops else (self.epoch if epoch is None else int(epoch))
            gen = torch.Generator().manual_seed(_seed(self.seed, ep, t, _INPUT_ERROR_STREAM))
            coarse = self.input_error.apply(coarse, target, self.static[:, ys, xs], gen)
        if self.with_time_features:
            features = self._features[k].view(-1, 1, 1).expand(-1, *coarse.shape[-2:])
            coarse = torch.cat([coarse, features], dim=0)
        if self.physics_fields:
            extra["phases"] = self._phases[k]
            extra["surface"] = self.surface[:, ys, xs]
        return {
            "coarse": coarse.contiguous().float(),
            "static": self.static[:, ys, xs].contiguous(),
            "target": target.contiguous().float(),
            "wind": wind.contiguous().float(),
            "index": torch.tensor(t, dtype=torch.int64),
            "origin": torch.tensor([y0, x0], dtype=torch.int64),
            **{key: value.contiguous().float() for key, value in extra.items()},
        }


class DownscalingDataModule(L.LightningDataModule):
    """Train/val/test loaders over the store.

    Train: random crops (new per epoch, reproducible from ``seed``), shuffled. Val: the same crop
    size with fixed crops (comparable across epochs), ``val_samples`` times spread evenly over the
    whole validation period. Test/predict: the whole domain, in order.
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        meta_path: str | os.PathLike[str],
        batch_size: int,
        num_workers: int,
        crop: int | None,
        seed: int,
        in_memory: bool = True,
        time_stride: int = 1,
        val_time_stride: int | None = None,
        test_time_stride: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        val_crop: bool = True,
        val_samples: int | None = None,
        time_features: bool = False,
        physics_fields: bool = False,
        robust_input: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.store_path, self.meta_path = Path(store_path), Path(meta_path)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.crop, self.seed = crop, int(seed)
        self.in_memory = in_memory
        self.time_stride = int(time_stride)
        self.val_time_stride = int(val_time_stride or time_stride)
        self.test_time_stride = int(test_time_stride or 1)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.val_crop = val_crop
        self.val_samples = val_samples
        self.time_features = time_features
        self.physics_fields = physics_fields
        self.meta: dict[str, Any] = read_json(self.meta_path)
        # robust training: the training items' coarse t2m randomised (validation keeps the store's)
        enabled = bool(robust_input and robust_input.get("enabled"))
        self.input_error = RandomisedInputError.from_config(robust_input, self.meta) if enabled else None
        self.train_set: DownscalingDataset | None = None
        self.val_set: DownscalingDataset | None = None
        self.test_set: DownscalingDataset | None = None

    @property
    def factor(self) -> int:
        return int(self.meta["factor"])

    @property
    def n_coarse(self) -> int:
        return len(self.meta["predictors"]) + (len(TIME_FEATURES) if self.time_features else 0)

    @property
    def n_static(self) -> int:
        return len(self.meta["static_vars"])

    def _dataset(self, split: str, crop: int | None, stride: int, fixed: bool,
                 n_samples: int | None = None, input_error: RandomisedInputError | None = None
                 ) -> DownscalingDataset:
        return DownscalingDataset(self.store_path, self.meta_path, split, crop=crop, in_memory=self.in_memory,
                                  time_stride=stride, seed=self.seed, fixed_crops=fixed, n_samples=n_samples,
                                  time_features=self.time_features, physics_fields=self.physics_fields,
                                  input_error=input_error)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset("train", self.crop, self.time_stride, fixed=False,
                                           input_error=self.input_error)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._dataset("val", self.crop if self.val_crop else None, self.val_time_stride, fixed=True,
                                         n_samples=self.val_samples)
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._dataset("test", None, self.test_time_stride, fixed=True)

    def _replicas(self) -> tuple[int, int]:
        """``(world_size, global_rank)`` of the attached trainer (1, 0 without one)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, dataset: DownscalingDataset | None, shuffle: bool, shard: bool = True) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() first")
        replicas, rank = self._replicas() if shard else (1, 0)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(dataset), shuffle=shuffle, seed=self.seed, num_replicas=replicas, rank=rank),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            # Its own generator: creating an iterator then draws worker seeds from it, not from the
            # global RNG, so an epoch (or a resumed run) starting does not shift the training noise.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, shard=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, shard=False)
