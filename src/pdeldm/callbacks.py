"""Lightning callbacks: per-epoch log lines + metrics CSV, EMA weight updates, exact resume.

The metric rows are part of the callback's state, hence of every Lightning checkpoint: after a
resume from ``last.ckpt`` the CSV holds exactly the epochs that checkpoint had seen (rows of an
epoch whose checkpoint was never written are dropped rather than duplicated).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.utilities import rank_zero_warn

from pdeldm.io import atomic_output

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s"]


def _scalar(metrics: dict[str, Any], *keys: str) -> float:
    for key in keys:
        if key in metrics:
            value = metrics[key]
            return float(value.item() if isinstance(value, torch.Tensor) else value)
    return math.nan


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write the per-epoch rows (columns :data:`METRIC_COLUMNS`), atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


class EpochMetricsLogger(Callback):
    """One readable log line and one CSV row per training epoch.

    Must run before ModelCheckpoint's epoch-end save (Lightning orders checkpoint callbacks last),
    so the row of epoch N is inside the checkpoint of epoch N.
    """

    def __init__(self, csv_path: str | Path | None, logger: logging.Logger) -> None:
        self.csv_path = Path(csv_path) if csv_path else None
        self.logger = logger
        self.rows: list[dict[str, Any]] = []
        self._t0 = 0.0
        self._samples = 0
        self._loss_sum, self._loss_n = 0.0, 0  # train_loss x batch size, batch sizes: this epoch

    def state_dict(self) -> dict[str, Any]:
        # The running sums go into step checkpoints too: a run resumed mid-epoch reports the
        # mean over the whole epoch, as the uninterrupted run does.
        return {"rows": self.rows, "loss_sum": self._loss_sum, "loss_n": self._loss_n}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
        self._loss_sum = float(state_dict.get("loss_sum", 0.0))
        self._loss_n = int(state_dict.get("loss_n", 0))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The loop state is restored by now: on resume keep only the epochs already completed.
        # (A run resumed mid-epoch gets no on_train_epoch_start for that epoch, so this is here.)
        self.rows = [r for r in self.rows if int(r["epoch"]) < trainer.current_epoch]
        if trainer.current_epoch or trainer.global_step:
            self.logger.info("resumed at epoch %d (global step %d)", trainer.current_epoch, trainer.global_step)
        self._t0 = time.perf_counter()
        self._samples = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._samples = 0
        self._loss_sum, self._loss_n = 0.0, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if isinstance(batch, dict) and "target" in batch:
            self._samples += int(batch["target"].shape[0])
        record = getattr(pl_module, "last_train_loss", None)
        if record is not None:
            loss, n = record
            self._loss_sum += loss * n
            self._loss_n += n
            pl_module.last_train_loss = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._t0
        metrics = trainer.callback_metrics
        lr = math.nan
        if trainer.optimizers:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": (self._loss_sum / self._loss_n if self._loss_n
                           else _scalar(metrics, "train_loss", "train_loss_epoch")),
            "val_loss": _scalar(metrics, "val_loss"),
            "lr": lr,
            "seconds": round(seconds, 3),
            # samples seen on this process times the number of processes
            "samples_per_s": round(self._samples * trainer.world_size / max(seconds, 1e-9), 3),
        }
        self.rows = [r for r in self.rows if int(r["epoch"]) != row["epoch"]] + [row]
        if trainer.is_global_zero:
            extra = " ".join(f"{k}={_scalar(metrics, k):.5g}" for k in sorted(metrics)
                             if k not in ("train_loss", "val_loss") and k.startswith(("train_", "val_")))
            self.logger.info(
                "epoch %d/%d train_loss=%.5g val_loss=%.5g lr=%.3g time=%.1fs samples/s=%.1f%s",
                row["epoch"], trainer.max_epochs if trainer.max_epochs is not None else -1,
                row["train_loss"], row["val_loss"], row["lr"], seconds, row["samples_per_s"],
                f" ({extra})" if extra else "")
            if self.csv_path is not None:
                write_metrics_csv(self.csv_path, self.rows)


class EMACallback(Callback):
    """Update the EMA shadows of a module (``pl_module.ema_pairs()``) after every training batch."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        for live, ema in getattr(pl_module, "ema_pairs", lambda: [])():
            ema.update(live)


class LastCheckpoint(Checkpoint):
    """Write ``path`` (``last.ckpt``) atomically after every epoch and every ``every_n_train_steps``.

    Lightning's ModelCheckpoint only refreshes ``last.ckpt`` when it also saved a top-k checkpoint;
    a resumable job needs it after every epoch whether the validation loss improved or not. Being a
    :class:`Checkpoint`, Lightning runs it after the other callbacks, so their epoch-end state (the
    best-model tracker, early stopping, the metric rows) is inside the file. Written to a temporary
    sibling and renamed: a job killed while saving keeps the previous ``last.ckpt``.
    """

    def __init__(self, path: str | Path, every_n_train_steps: int = 0) -> None:
        self.path = Path(path)
        self.every_n_train_steps = int(every_n_train_steps)
        self._last_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step == self._last_step or trainer.sanity_checking:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last_checkpoint")
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        n = self.every_n_train_steps
        if n > 0 and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class ExactResume(Callback):
    """What Lightning's checkpoints lack for a bit-exact resume: RNG states and the data position.

    Lightning restores weights, optimisers, LR schedulers, loop counters and callback states, but
    not the random number generators (diffusion noise and timesteps, dropout) and, for a plain
    DataLoader, not where in the epoch's batch order a run stopped. This callback

    * stores the CPU (and CUDA) torch RNG state of every process, and numpy's and Python's of
      rank 0, in each checkpoint (``checkpoint["pdeldm_rng"]``);
    * on resume restores them at ``on_train_start`` (nothing draws random numbers between there
      and the first step: the loaders have their own generators), and tells the training sampler
      (:meth:`pdeldm.data.datasets.EpochSampler.skip_next`) to leave out the batches of the
      interrupted epoch that were already trained on.

    With the same number of processes, a run killed at step k and resumed from its ``last.ckpt``
    then continues exactly as the uninterrupted run would have (see tests/test_training_infra.py).
    """

    KEY = "pdeldm_rng"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @staticmethod
    def _gather(trainer: L.Trainer, pl_module: L.LightningModule, state: torch.Tensor) -> list[torch.Tensor]:
        if trainer.world_size <= 1:
            return [state]
        gathered = trainer.strategy.all_gather(state.to(pl_module.device))
        return [g.cpu() for g in gathered]

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Runs on every process (the file is written by rank 0 only), so the states can be gathered.
        state: dict[str, Any] = {"world_size": trainer.world_size,
                                 "torch": self._gather(trainer, pl_module, torch.get_rng_state()),
                                 "numpy": _numpy_state(), "python": random.getstate()}
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            state["cuda"] = self._gather(trainer, pl_module, torch.cuda.get_rng_state(pl_module.device))
        checkpoint[self.KEY] = state

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        current = progress.get("current", {})
        consumed = 0 if progress.get("is_last_batch", True) else int(current.get("processed", 0))
        self._pending = {"rng": checkpoint.get(self.KEY), "batches": consumed}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if pending["batches"] and hasattr(sampler, "skip_next"):  # an EpochSampler
            sampler.skip_next(pending["batches"] * int(loader.batch_size or 1))
        rng = pending["rng"]
        if rng is None:
            return
        if int(rng.get("world_size", 1)) != trainer.world_size:
            rank_zero_warn(f"checkpoint written by {rng.get('world_size')} processes, resuming with "
                           f"{trainer.world_size}: random streams are re-seeded, not restored")
            return
        rank = trainer.global_rank
        torch.set_rng_state(rng["torch"][rank])
        if "cuda" in rng and pl_module.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][rank], pl_module.device)
        if rank == 0:
            _set_numpy_state(rng["numpy"])
            random.setstate(rng["python"])



def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as tensors and numbers (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict[str, Any]) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))


class ShareCores(Callback):
    """Before every batch, use the cores of the local run that no other job holds (:mod:`pdeldm.cores`).

    Does nothing in a process without a lease (tests, notebooks, cluster jobs).
    """

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        from pdeldm.cores import adapt_threads

        adapt_threads()

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        from pdeldm.cores import adapt_threads

        adapt_threads()
