"""Training entry point: one model, resumable, writing the best (EMA) weights and epoch metrics.

``train(model, cfg, store, meta, deps, out_ckpt, out_metrics, workdir, log)`` (interfaces §5):

* options: ``cfg["training"]`` overlaid with ``cfg["models"][model]["training"]`` (per-model
  epochs, batch limits, ...); a key neither sets takes the schema's default
  (:func:`pdeldm.config.schema_defaults`);
* the Lightning working checkpoints live in ``workdir`` (``last.ckpt`` + the best one); if
  ``last.ckpt`` exists the run resumes from it (epoch count, optimiser, EMA, LR schedule,
  early-stopping state, the metric rows, the RNG states and the position in the epoch's batch
  order all come back: :class:`pdeldm.callbacks.ExactResume`), so a killed run that is rerun
  ends with the weights of an uninterrupted one;
* distributed runs (``strategy: ddp``, ``devices: N``) shard the epoch order in the data module
  (:class:`pdeldm.data.datasets.EpochSampler`), so crops and order stay seeded per epoch;
* at the end the best checkpoint by ``val_loss`` (EMA weights for the diffusion models) is
  exported as ``out_ckpt`` (:func:`pdeldm.models.registry.save_model`) and the per-epoch rows as
  ``out_metrics`` — both atomically, only after training finished.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from pdeldm.io import read_json, write_json
from pdeldm.logs import stage_logger

def training_options(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """Schema defaults <- ``cfg["training"]`` <- ``cfg["models"][model]["training"]``.

    Raises:
        ConfigError: if ``cfg`` has no ``training`` section, or a layer names an unknown option.
    """
    from pdeldm.config import require_section, schema_defaults
    from pdeldm.errors import ConfigError

    defaults = schema_defaults("training")
    opts = copy.deepcopy(defaults)
    shared = require_section(cfg, "training", f"training options of '{model}'") or {}
    for layer in (shared, ((cfg.get("models") or {}).get(model) or {}).get("training") or {}):
        for key, value in layer.items():
            # nested options (robust_input) are merged key by key, like the config overlays
            both_dicts = isinstance(value, dict) and isinstance(opts.get(key), dict)
            opts[key] = {**opts[key], **value} if both_dicts else value
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown} for model '{model}' "
                          f"(known: {', '.join(defaults)})")
    return opts


def resolve_precision(opts: dict[str, Any]) -> str:
    """``auto`` -> bf16-mixed on CUDA (when the accelerator may use it), else 32-true."""
    precision = str(opts["precision"])
    if precision != "auto":
        return precision
    gpu_ok = opts["accelerator"] in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu_ok and torch.cuda.is_bf16_supported() else "32-true"


def _deterministic(opts: dict[str, Any]) -> bool | str:
    # Some CUDA kernels (e.g. interpolation backward) have no deterministic version: warn there
    # instead of failing; on CPU everything is deterministic.
    value = opts["deterministic"]
    if value is True and torch.cuda.is_available() and opts["accelerator"] != "cpu":
        return "warn"
    return value


def _datamodule(store: Path, meta: Path, opts: dict[str, Any], seed: int, module: Any) -> Any:
    from pdeldm.data.datasets import DownscalingDataModule

    return DownscalingDataModule(store, meta, batch_size=int(opts["batch_size"]),
                                 num_workers=int(opts["num_workers"]), crop=opts["crop"], seed=seed,
                                 in_memory=bool(opts["in_memory"]), time_stride=int(opts["time_stride"]),
                                 val_time_stride=opts["val_time_stride"], val_crop=bool(opts["val_crop"]),
                                 val_samples=opts["val_samples"], time_features=module.spec.time_features,
                                 physics_fields=bool(getattr(module, "needs_physics_fields", False)),
                                 robust_input=opts["robust_input"],
                                 persistent_workers=int(opts["num_workers"]) > 0,
                                 pin_memory=torch.cuda.is_available() and opts["accelerator"] != "cpu")


def _latent_scale_batches(store: Path, meta: Path, opts: dict[str, Any], time_features: bool) -> Any:
    """Deterministic batches (evenly spaced training times, full domain) for the latent scale.

    Independent of the shuffled training loader, so every process (and every rerun) gets the
    same estimate.
    """
    from torch.utils.data import DataLoader, Subset

    from pdeldm.data.datasets import DownscalingDataset

    ds = DownscalingDataset(store, meta, "train", crop=None, in_memory=False, time_features=time_features)
    n = min(len(ds), int(opts["latent_scale_batches"]) * int(opts["batch_size"]))
    idx = torch.linspace(0, len(ds) - 1, max(n, 1)).round().long().unique().tolist()
    return DataLoader(Subset(ds, idx), batch_size=int(opts["batch_size"]), shuffle=False, num_workers=0)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(hp: dict[str, Any], deps: dict[str, str | os.PathLike[str]], seed: int,
                 robust_input: dict[str, Any] | None = None) -> str:
    """What a working checkpoint is only valid for: the model's hyper-parameters (with its data
    spec and its dependencies' settings), the dependencies' weights, the seed and the robust-input
    option (it changes the training data)."""
    payload = {"hp": hp, "seed": seed, "deps": {k: _file_digest(Path(v)) for k, v in sorted(deps.items())}}
    if robust_input and robust_input.get("enabled"):
        payload["robust_input"] = robust_input
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _discard_stale_workdir(workdir: Path, fingerprint: str, logger: Any) -> None:
    """Resume only a run of the *same* model: on a changed architecture, data normalisation or
    retrained dependency, the old working checkpoints are removed and training starts afresh.
    Training options (epochs, batches, ...) are not part of it: raising max_epochs resumes."""
    stamp = workdir / "fingerprint.json"
    previous = read_json(stamp).get("fingerprint") if stamp.exists() else None
    if previous != fingerprint and any(workdir.glob("*.ckpt")):
        logger.warning("working checkpoints in %s belong to a different configuration or dependency: "
                       "starting afresh", workdir)
        for old in workdir.glob("*.ckpt"):
            old.unlink()
        (workdir / "metrics.csv").unlink(missing_ok=True)
    write_json(stamp, {"fingerprint": fingerprint})


def finetune_config(cfg: dict[str, Any], overrides: dict[str, Any], seed: int,
                    coefficients: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The config of a fine-tuning run (``pdeldm.experiments.Run.overrides``) with training seed ``seed``.

    ``overrides`` (form, lambda, data term) go over ``models.pde_ldm.pde``; the identified
    equation's coefficients (``results/physics/pde_coefficients.json``) go into
    ``models.pde_ldm.pde.coefficients`` so that the checkpoint carries them.
    """
    import copy

    out = copy.deepcopy(cfg)
    # the run's own training seed; its samples keep the workflow's seed (paired comparisons)
    out["sampling_seed"] = int(cfg["seed"])
    out["seed"] = int(seed)
    pde = out["models"]["pde_ldm"].setdefault("pde", {})
    pde.update(overrides)
    if coefficients is not None:
        pde["coefficients"] = read_json(coefficients)["coefficients"]
    return out


def train(model: str, cfg: dict[str, Any], store: str | os.PathLike[str], meta: str | os.PathLike[str],
          deps: dict[str, str | os.PathLike[str]], out_ckpt: str | os.PathLike[str],
          out_metrics: str | os.PathLike[str], workdir: str | os.PathLike[str],
          log: str | os.PathLike[str] | None = None) -> None:
    """Train ``model`` and write ``out_ckpt`` (final weights) and ``out_metrics`` (epoch CSV).

    ``cfg["seed"]`` seeds the weights, the data order and the training noise.
    """
    import lightning as L

    from pdeldm.callbacks import write_metrics_csv
    from pdeldm.cores import adapt_threads
    from pdeldm.model_card import training_record
    from pdeldm.models.registry import build_model, save_model

    # Frozen dependencies are kept in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    logger = stage_logger(f"train.{model}", log)
    store, meta, workdir = Path(store), Path(meta), Path(workdir)
    out_ckpt, out_metrics = Path(out_ckpt), Path(out_metrics)
    opts = training_options(cfg, model)
    seed = int(cfg["seed"])  # the config's `training` section is there (training_options checked), so is `seed`
    meta_dict = read_json(meta)

    if model == "interpolation":  # nothing to learn: a config-only checkpoint keeps the DAG uniform
        module = build_model(model, cfg, meta_dict, deps)
        save_model(module, out_ckpt, {"trained": False, **training_record(cfg, store, meta_dict, [])})
        write_metrics_csv(out_metrics, [])
        logger.info("interpolation: wrote config-only checkpoint %s", out_ckpt)
        return

    if opts["num_threads"]:
        torch.set_num_threads(int(opts["num_threads"]))
    else:  # the cores of the local run that no other job holds (pdeldm.cores), again before every batch
        adapt_threads()
    L.seed_everything(seed, workers=True)
    t_start = time.perf_counter()
    module = build_model(model, cfg, meta_dict, deps)
    logger.info("model %s, dependencies %s", model, {k: str(v) for k, v in deps.items()} or "none")
    for line in module.parameter_report():
        logger.info("parameters %s", line)

    workdir.mkdir(parents=True, exist_ok=True)
    last = workdir / "last.ckpt"
    _discard_stale_workdir(workdir, _fingerprint(module.hp, deps, seed, opts["robust_input"]), logger)
    resume = last if last.exists() else None
    precision = resolve_precision(opts)

    # Only a fresh LDM estimates its latent scale; resumed runs and the PDE fine-tuning keep theirs.
    if resume is None and hasattr(module, "estimate_latent_scale") and float(module.latent_scale) <= 0:
        scale = module.estimate_latent_scale(_latent_scale_batches(store, meta, opts, module.spec.time_features),
                                             int(opts["latent_scale_batches"]))
        logger.info("latent scale factor (1/std of training latents): %.6g", scale)

    best_cb, metrics_cb, callbacks = _callbacks(opts, workdir, last, logger)
    manual = not module.automatic_optimization
    trainer = _trainer(opts, precision, manual, callbacks, workdir)
    if _deterministic(opts):
        # Deterministic mode also fills every new tensor with NaN (to expose reads of uninitialised
        # memory): over 1000 extra fills per step. Results do not depend on it, so switch it off.
        torch.utils.deterministic.fill_uninitialized_memory = False
    if manual and opts["gradient_clip_val"]:
        module.cfg.setdefault("gradient_clip_val", opts["gradient_clip_val"])
    logger.info("trainer: accelerator=%s devices=%s strategy=%s precision=%s max_epochs=%s "
                "limit_train_batches=%s batch_size=%s crop=%s%s", opts["accelerator"], opts["devices"],
                opts["strategy"], precision, opts["max_epochs"], opts["limit_train_batches"],
                opts["batch_size"], opts["crop"], f", resuming from {resume}" if resume else "")
    trainer.fit(module, datamodule=_datamodule(store, meta, opts, seed, module),
                ckpt_path=str(resume) if resume else None)

    if not trainer.is_global_zero:
        return
    best_epoch = _load_best(module, best_cb.best_model_path or (str(last) if last.exists() else ""))
    best_score = best_cb.best_model_score
    info = {"best_epoch": best_epoch, "best_val_loss": float(best_score) if best_score is not None else None,
            "epochs": trainer.current_epoch, "global_step": trainer.global_step,
            "seconds": round(time.perf_counter() - t_start, 1), "precision": precision}
    module.cpu()
    # the data spec, grid, config and metrics travel with the weights (pdeldm downscale / info)
    save_model(module, out_ckpt, {**info, **training_record(cfg, store, meta_dict, metrics_cb.rows)})
    write_metrics_csv(out_metrics, metrics_cb.rows)
    write_json(workdir / "final.json", info)
    logger.info("wrote %s (best epoch %s, val_loss %s) and %s in %.1f s", out_ckpt, best_epoch,
                info["best_val_loss"], out_metrics, info["seconds"])


def _callbacks(opts: dict[str, Any], workdir: Path, last: Path, logger: Any) -> tuple[Any, Any, list[Any]]:
    """The best-checkpoint and epoch-metrics callbacks, and the whole callback list of a training."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from pdeldm.callbacks import EMACallback, EpochMetricsLogger, ExactResume, LastCheckpoint, ShareCores

    best_cb = ModelCheckpoint(dirpath=workdir, filename="best-{epoch:04d}", monitor="val_loss", mode="min",
                              save_top_k=1, save_last=False, save_on_train_epoch_end=False,
                              enable_version_counter=False)
    metrics_cb = EpochMetricsLogger(workdir / "metrics.csv", logger)
    callbacks: list[Any] = [metrics_cb, EMACallback(), ExactResume(), best_cb,
                            LastCheckpoint(last, int(opts["checkpoint_every_n_steps"]))]
    if not opts["num_threads"]:
        callbacks.append(ShareCores())
    if opts["early_stopping_patience"] is not None and int(opts["early_stopping_patience"]) > 0:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=int(opts["early_stopping_patience"]),
                                       check_on_train_epoch_end=False))
    return best_cb, metrics_cb, callbacks


def _trainer(opts: dict[str, Any], precision: str, manual: bool, callbacks: list[Any], workdir: Path) -> Any:
    """The Lightning trainer of the `training` options (manual optimisation clips and accumulates itself)."""
    import lightning as L

    return L.Trainer(
        accelerator=opts["accelerator"], devices=opts["devices"], strategy=opts["strategy"],
        precision=precision, max_epochs=int(opts["max_epochs"]), max_steps=int(opts["max_steps"]),
        max_time=opts["max_time"],
        limit_train_batches=opts["limit_train_batches"], limit_val_batches=opts["limit_val_batches"],
        gradient_clip_val=None if manual else opts["gradient_clip_val"],
        accumulate_grad_batches=1 if manual else int(opts["accumulate_grad_batches"]),
        callbacks=callbacks, logger=False, default_root_dir=workdir,
        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False,
        num_sanity_val_steps=0, deterministic=_deterministic(opts), benchmark=False,
        use_distributed_sampler=False,  # the data module shards its own epoch-seeded sampler
        log_every_n_steps=1,
    )


def _load_best(module: Any, best_path: str) -> int:
    """Load the best checkpoint's weights into ``module``; its epoch, or -1 where no epoch finished
    (e.g. max_steps inside the first epoch: the current weights are exported)."""
    if not (best_path and Path(best_path).exists()):
        return -1
    state = torch.load(best_path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return int(state.get("epoch", -1))

