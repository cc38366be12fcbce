"""Lightning callbacks: per-epoch log lines + metrics CSV, and EMA weight updates.

The metric rows are part of the callback's state, hence of every Lightning checkpoint: after a
resume from ``last.ckpt`` the CSV holds exactly the epochs that checkpoint had seen (rows of an
epoch whose checkpoint was never written are dropped rather than duplicated).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint

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

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(self, "_first_epoch", False):
            # The loop state is restored by now: on resume keep only the epochs already completed.
            self._first_epoch = False
            self.rows = [r for r in self.rows if int(r["epoch"]) < trainer.current_epoch]
            if trainer.current_epoch or trainer.global_step:
                self.logger.info("resumed at epoch %d (global step %d)", trainer.current_epoch, trainer.global_step)
        self._t0 = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if isinstance(batch, dict) and "target" in batch:
            self._samples += int(batch["target"].shape[0])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._t0
        metrics = trainer.callback_metrics
        lr = math.nan
        if trainer.optimizers:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": _scalar(metrics, "train_loss", "train_loss_epoch"),
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
