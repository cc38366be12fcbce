"""Where a diffusion ensemble loses its spread: the residual split, the latent space, the sampler, training.

A sample is ``UNet mean + D(z / latent_scale)`` with ``z`` drawn by the sampler from the denoiser.
The spread can be lost at each stage, and each has a measurement on the same test times and noise
(:func:`pdeldm.evaluation.sampler_study.load_study_data`):

* **Residual split**: the truth's residual ``r = y - UNet mean`` is what the ensemble has to
  spread over. ``ae_reconstruction_rmse_K`` = RMSE of ``UNet mean + D(E(r))`` against the truth: the
  error left when the latent is *right*, which no spread in latent space can cover;
  ``ae_variance_ratio`` = var(D(E(r))) / var(r).
* **Latent scale**: the std of the true latents ``latent_scale * E(r)`` on the test times (1 on the
  training times by construction) and of the sampled ones.
* **Latent-space calibration**: pooled spread-skill of the sampled latents against the true latent
  (``latent_spread_skill``): below 1 there, the denoiser or the sampler is too narrow, whatever the
  decoder does.
* **Sampler**: the same in kelvin for every sampler configuration (solver, steps, eta, grid): if
  the spread grows with the steps or with a higher-order solver, the sampler's truncation error
  shrinks it (first-order DDIM steps over the bend of the flow pull samples to the mean).
* **Training length and EMA**: the validation-loss trajectory of the checkpoint's training
  (``training_metrics.csv`` next to it) and the EMA's effective averaging window at the end.
* **Noise schedule**: ``alpha`` of the last timestep (how much of the data is left in the start
  noise) and the noise level of the last step before the clean latent on each grid.

Output: ``results/ensembles/dispersion.json`` and a Markdown table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pdeldm.evaluation import probabilistic
from pdeldm.evaluation.calibration import pooled_spread_skill
from pdeldm.io import atomic_output, write_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]

DEFAULT_CONFIGS: tuple[dict[str, Any], ...] = (
    {"solver": "ddim", "steps": 20, "eta": 0.0, "spacing": "uniform"},
    {"solver": "ddim", "steps": 20, "eta": 1.0, "spacing": "uniform"},
    {"solver": "dpmpp_2m", "steps": 10, "eta": 0.0, "spacing": "logsnr"},
)


def spread_scores(ens: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pooled spread (corrected), ensemble-mean RMSE, spread-skill and fair CRPS of ``ens`` ``(m, ...)``."""
    m = ens.shape[0]
    mean = ens.mean(axis=0)
    var = ens.var(axis=0, ddof=1)
    sq = (mean - truth) ** 2
    return {"spread": float(np.sqrt((m + 1) / m * var.mean())), "rmse_ensmean": float(np.sqrt(sq.mean())),
            "spread_skill": float(pooled_spread_skill(var.sum(), sq.sum(), m)),
            "crps": float(np.mean(probabilistic.crps_ensemble(truth, ens, axis=0, fair=True)))}


def training_summary(metrics_csv: PathLike) -> dict[str, Any]:
    """Epochs, best epoch and how much the validation loss still fell over the last third of training."""
    frame = pd.read_csv(metrics_csv)
    val = frame["val_loss"].to_numpy(float)
    third = max(1, len(val) // 3)
    return {"epochs": int(len(val)), "best_epoch": int(np.nanargmin(val)) + 1, "val_loss_first": float(val[0]),
            "val_loss_best": float(np.nanmin(val)),
            "val_loss_drop_last_third": float((val[-third - 1] - val[-1]) / val[-third - 1]) if len(val) > third else math.nan}


def ema_summary(model: Any) -> dict[str, float]:
    """The EMA's updates and its effective averaging window ``1 / (1 - decay)`` (in optimiser steps) at the end."""
    ema = model.denoiser_ema
    decay = float(ema.current_decay())
    return {"updates": int(ema.num_updates), "decay_at_end": decay,
            "window_steps": float(1.0 / (1.0 - decay)) if decay < 1 else math.inf}


def schedule_summary(model: Any, configs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Start-noise leakage and the noise level of the last step before the clean latent per grid."""
    from pdeldm.models.solvers import timestep_grid

    schedule = model.schedule
    last = {}
    for c in configs:
        grid = timestep_grid(schedule, int(c["steps"]), c["spacing"])
        t = grid[-2] if len(grid) > 1 else grid[-1]
        last[f"{c['spacing']}_{c['steps']}"] = {"timestep": int(t), "sigma": float(schedule.sigmas[t])}
    return {"alpha_T": float(schedule.alphas[-1]), "sigma_T": float(schedule.sigmas[-1]),
            "last_step_before_clean": last}


def diagnose_dispersion(checkpoint: PathLike, store: PathLike, meta: PathLike, times: int, members: int, seed: int,
                        configs: Sequence[Mapping[str, Any]] = DEFAULT_CONFIGS,
                        training_metrics: PathLike | None = None, log: PathLike | None = None) -> dict[str, Any]:
    """The measurements of the module docstring for one checkpoint, as plain JSON types."""
    from pdeldm.evaluation.sampler_study import load_study_data
    from pdeldm.models.solvers import evaluations
    from pdeldm.predict import sample_generator

    logger = stage_logger("dispersion", log)
    model, inputs, indices, truth = load_study_data(checkpoint, store, meta, times)
    spec = model.spec
    with torch.inference_mode():
        target = (torch.from_numpy(truth).float()[:, None] - spec.target_mean) / spec.target_std
        mean = model.unet_mean(inputs)
        z_true = model.raw_latent({**inputs, "target": target}, mean) * model.latent_scale
        reconstruction = spec.denormalise(model.decode(z_true, mean))[:, 0].double().numpy()
        unet = spec.denormalise(mean)[:, 0].double().numpy()
    residual = truth - unet
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint), "n_times": int(len(indices)), "members": int(members),
        "residual_split": {
            "truth_residual_std_K": float(residual.std()), "unet_rmse_K": float(np.sqrt(np.mean(residual ** 2))),
            "ae_reconstruction_rmse_K": float(np.sqrt(np.mean((reconstruction - truth) ** 2))),
            "ae_variance_ratio": float((reconstruction - unet).var() / residual.var()),
            "latent_std_true": float(z_true.std()),
        },
        "ema": ema_summary(model), "schedule": schedule_summary(model, configs), "samplers": [],
    }
    if training_metrics and Path(training_metrics).exists():
        result["training"] = training_summary(training_metrics)
    generators = lambda: [sample_generator(seed, m, int(i)) for m in range(members) for i in indices]  # noqa: E731
    z_ref = z_true.double().numpy()
    for config in configs:
        with torch.inference_mode():
            z = model.sample_latents(inputs, members, generators(), steps=int(config["steps"]),
                                     eta=float(config["eta"]), solver=config["solver"], spacing=config["spacing"])
            fields = torch.stack([model.decode(z[m], mean) for m in range(members)])
        kelvin = spec.denormalise(fields)[:, :, 0].double().numpy()
        latents = z.double().numpy()
        row = {**{k: config[k] for k in ("solver", "steps", "eta", "spacing")},
               "evaluations": evaluations(config["solver"], int(config["steps"])),
               "latent_std": float(latents.std()), **{f"latent_{k}": v for k, v in spread_scores(latents, z_ref).items()
                                                       if k in ("spread", "spread_skill")},
               **spread_scores(kelvin, truth)}
        result["samplers"].append(row)
        logger.info("%s %s %d steps eta %.1f: spread %.3f K, ensemble-mean RMSE %.3f K, spread-skill %.3f "
                    "(latent space %.3f), latent std %.3f", config["solver"], config["spacing"], config["steps"],
                    config["eta"], row["spread"], row["rmse_ensmean"], row["spread_skill"], row["latent_spread_skill"],
                    row["latent_std"])
    split = result["residual_split"]
    logger.info("residual split: truth residual std %.3f K, autoencoder reconstruction RMSE %.3f K (variance ratio "
                "%.2f), true latent std %.3f", split["truth_residual_std_K"], split["ae_reconstruction_rmse_K"],
                split["ae_variance_ratio"], split["latent_std_true"])
    return result


def to_markdown(results: Mapping[str, Mapping[str, Any]], perfect_spread: float | None = None) -> str:
    """One table of sampler rows per model, and the residual-split, EMA and training facts."""
    lines = []
    for model, r in results.items():
        split, ema = r["residual_split"], r["ema"]
        lines += [f"**{model}** ({r['n_times']} test times x {r['members']} members)", "",
                  f"- Residual split: truth residual (truth - UNet mean) std {split['truth_residual_std_K']:.3f} K; "
                  f"autoencoder reconstruction of the true residual RMSE {split['ae_reconstruction_rmse_K']:.3f} K "
                  f"(variance ratio {split['ae_variance_ratio']:.2f}); true latent std {split['latent_std_true']:.2f}.",
                  f"- EMA: {ema['updates']} updates, decay {ema['decay_at_end']:.4f} at the end "
                  f"(averaging window ~{ema['window_steps']:.0f} steps)."]
        if "training" in r:
            t = r["training"]
            drop = t["val_loss_drop_last_third"]
            fell = f"; validation loss fell {100 * drop:.1f}% over the last third" if np.isfinite(drop) else ""
            lines.append(f"- Training: {t['epochs']} epochs, best at {t['best_epoch']}{fell}.")
        if perfect_spread is not None:
            lines.append(f"- A perfect model's spread on the twin: at least {perfect_spread:.3f} K.")
        lines += ["", "| Solver | Grid | Steps | eta | Evaluations | Spread [K] | RMSE ens. mean [K] | Spread/skill | "
                  "Latent spread/skill | Latent std | CRPS [K] |", "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in r["samplers"]:
            lines.append(f"| {s['solver']} | {s['spacing']} | {s['steps']} | {s['eta']:.1f} | {s['evaluations']} | "
                         f"{s['spread']:.3f} | {s['rmse_ensmean']:.3f} | {s['spread_skill']:.3f} | "
                         f"{s['latent_spread_skill']:.3f} | {s['latent_std']:.3f} | {s['crps']:.4f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_dispersion(checkpoints: Mapping[str, PathLike], store: PathLike, meta: PathLike, times: int, members: int,
                     seed: int, out_json: PathLike, out_md: PathLike, configs: Sequence[Mapping[str, Any]] = DEFAULT_CONFIGS,
                     diagnostics: PathLike | None = None, log: PathLike | None = None) -> None:
    """Diagnose every checkpoint (name -> path) and write JSON and Markdown."""
    from pdeldm.io import read_json

    results = {name: diagnose_dispersion(path, store, meta, times, members, seed, configs,
                                         Path(path).with_name("training_metrics.csv"), log)
               for name, path in checkpoints.items()}
    perfect = None
    if diagnostics:
        perfect = float(read_json(diagnostics)["predictability"]["rmse_floor_fine_K"])
        for r in results.values():
            r["perfect_model_spread_K"] = perfect
    write_json(out_json, results)
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(results, perfect))
