"""Quality against cost of the samplers: CRPS, RMSE and the proper spectral score per denoiser evaluation.

One diffusion checkpoint, ``times`` test times spread evenly over the test period, ``members``
members each. Every configuration (solver, timestep spacing, number of denoiser evaluations) starts
from the *same* noise -- member ``m`` at store time ``i`` from :func:`pdeldm.predict.sample_generator`
``(seed, m, i)``, as the workflow's predictions -- so differences between configurations are the
solvers', not the draw's. Scores per configuration, over all chosen times and members:

* ``crps``: fair CRPS (K) of the ensemble, pooled over points and times;
* ``rmse``: RMSE (K) of single members (the mean over members of their RMSE), ``rmse_ensmean``;
* ``spread_skill``: pooled, with the finite-ensemble factor (:mod:`pdeldm.evaluation.calibration`);
* ``spectral_lsd``, ``spectral_slope_diff``: the proper fine-band spectral scores
  (:func:`pdeldm.evaluation.physics_scores.fine_scale_spectral_scores`) of single members, averaged;
* ``seconds_per_sample``: wall time of the sampler call divided by times x members.

The reference is DDIM with ``reference_evaluations`` steps on the uniform grid (the study's
DDIM-100). For every other configuration list the summary names the fewest evaluations whose CRPS
is within ``crps_tolerance`` (relative) of the reference's, and how many times fewer that is.

Outputs: ``results/sampler_study/sampler_study.csv`` (one row per configuration), ``.md`` and
``summary.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pdeldm.evaluation import physics_scores, probabilistic
from pdeldm.evaluation.calibration import pooled_spread_skill
from pdeldm.io import atomic_output, write_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]

DEFAULT_STUDY: dict[str, Any] = {
    "model": "ldm",
    "times": 4,
    "members": 2,
    "evaluations": [2, 4, 8, 16, 32],
    "solvers": [{"solver": "ddim", "spacing": "uniform"}, {"solver": "dpmpp_2m", "spacing": "logsnr"}],
    "reference_evaluations": 100,
    "crps_tolerance": 0.02,
}


def study_configurations(solvers: Sequence[Mapping[str, str]], budgets: Sequence[int],
                         reference_evaluations: int) -> list[dict[str, Any]]:
    """(solver, spacing, steps, evaluations) for every solver and budget, the DDIM reference included.

    A budget a solver cannot hit exactly (Heun evaluates ``2 steps - 1`` times) gets the most steps
    within it; duplicates are dropped.
    """
    from pdeldm.models.solvers import check_solver, evaluations, steps_for_evaluations

    configs: list[dict[str, Any]] = []
    seen = set()
    entries = [dict(s) for s in solvers]
    if not any(e["solver"] == "ddim" and e.get("spacing", "uniform") == "uniform" for e in entries):
        entries.insert(0, {"solver": "ddim", "spacing": "uniform"})
    for entry in entries:
        solver, spacing = entry["solver"], entry.get("spacing", "uniform")
        check_solver(solver, 0.0, spacing)
        wanted = sorted(set(budgets) | ({reference_evaluations} if solver == "ddim" and spacing == "uniform" else set()))
        for budget in wanted:
            steps = steps_for_evaluations(solver, int(budget))
            key = (solver, spacing, steps)
            if key not in seen:
                seen.add(key)
                configs.append({"solver": solver, "spacing": spacing, "steps": steps,
                                "evaluations": evaluations(solver, steps)})
    return configs


def score_ensemble(ens: np.ndarray, truth: np.ndarray, factor: int) -> dict[str, float]:
    """Scores of ``ens`` ``(members, times, ny, nx)`` against ``truth`` ``(times, ny, nx)`` (K)."""
    members = ens.shape[0]
    mean = ens.mean(axis=0)
    spectral = [physics_scores.fine_scale_spectral_scores(ens[m, t], truth[t], factor)
                for m in range(members) for t in range(truth.shape[0])]
    var = ens.var(axis=0, ddof=1) if members > 1 else np.zeros_like(truth)
    return {
        "crps": float(np.mean(probabilistic.crps_ensemble(truth, ens, axis=0, fair=True))),
        "rmse": float(np.mean([np.sqrt(np.mean((ens[m] - truth) ** 2)) for m in range(members)])),
        "rmse_ensmean": float(np.sqrt(np.mean((mean - truth) ** 2))),
        "spread_skill": float(pooled_spread_skill(var.sum(), ((mean - truth) ** 2).sum(), members)),
        "spectral_lsd": float(np.mean([s["spectral_lsd"] for s in spectral])),
        "spectral_slope_diff": float(np.mean([s["spectral_slope_diff"] for s in spectral])),
    }


def load_study_data(checkpoint: PathLike, store: PathLike, meta: PathLike, n_times: int,
                    device: torch.device | str = "cpu") -> tuple[Any, dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """``(model, inputs, store indices, truth in K)`` for ``n_times`` test times spread over the period."""
    from pdeldm.data.datasets import DownscalingDataset
    from pdeldm.models.registry import load_model

    model = load_model(checkpoint).to(device)
    if not model.stochastic:
        from pdeldm.errors import InputError

        raise InputError(f"{checkpoint}: the sampler study needs a diffusion model, got '{model.name}'")
    dataset = DownscalingDataset(store, meta, "test", crop=None, time_stride=1, n_samples=int(n_times),
                                 time_features=model.spec.time_features)
    items = [dataset[k] for k in range(len(dataset))]
    inputs = {k: torch.stack([it[k] for it in items]).to(device) for k in ("coarse", "static")}
    indices = np.array([int(it["index"]) for it in items])
    truth = model.spec.denormalise(torch.stack([it["target"] for it in items]))[:, 0].double().numpy()
    return model, inputs, indices, truth


def sample_configuration(model: Any, inputs: Mapping[str, torch.Tensor], indices: np.ndarray, members: int,
                         seed: int, config: Mapping[str, Any]) -> tuple[np.ndarray, float]:
    """``(members x times x ny x nx K, wall seconds)`` of one configuration, from the workflow's noise."""
    from pdeldm.predict import sample_generator

    generators = [sample_generator(seed, m, int(i)) for m in range(members) for i in indices]
    start = time.perf_counter()
    with torch.inference_mode():
        fields = model.generate(dict(inputs), members=members, generators=generators, solver=config["solver"],
                                steps=int(config["steps"]), eta=0.0, spacing=config["spacing"])
    seconds = time.perf_counter() - start
    return model.spec.denormalise(fields.float())[:, :, 0].double().cpu().numpy(), seconds


def fastest_within_tolerance(table: pd.DataFrame, reference_crps: float, tolerance: float) -> list[dict[str, Any]]:
    """Per (solver, spacing): the fewest evaluations with ``crps <= (1 + tolerance) * reference``."""
    found = []
    for (solver, spacing), part in table.groupby(["solver", "spacing"], sort=False):
        ok = part[part["crps"] <= (1 + tolerance) * reference_crps].sort_values("evaluations")
        if ok.empty:
            found.append({"solver": solver, "spacing": spacing, "evaluations": None})
            continue
        best = ok.iloc[0]
        found.append({"solver": solver, "spacing": spacing, "steps": int(best["steps"]),
                      "evaluations": int(best["evaluations"]), "crps": float(best["crps"]),
                      "crps_relative": float(best["crps"] / reference_crps)})
    return found


def to_markdown(table: pd.DataFrame, summary: Mapping[str, Any]) -> str:
    lines = ["| Solver | Grid | Steps | Denoiser evaluations | CRPS [K] | CRPS / reference | RMSE [K] | "
             "Spread/skill | Fine-band LSD [dB] | Fine-band slope diff. | Seconds per sample |",
             "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['solver']} | {r['spacing']} | {int(r['steps'])} | {int(r['evaluations'])} | "
                     f"{r['crps']:.4f} | {r['crps_relative']:.3f} | {r['rmse']:.3f} | {r['spread_skill']:.2f} | "
                     f"{r['spectral_lsd']:.2f} | {r['spectral_slope_diff']:.3f} | {r['seconds_per_sample']:.4f} |")
    ref = summary["reference"]
    lines += ["", f"Reference: DDIM with {ref['evaluations']} steps (CRPS {ref['crps']:.4f} K). "
              f"{summary['n_times']} test times x {summary['members']} members of `{summary['model']}`, every "
              "configuration from the same noise."]
    for best in summary["fastest_within_tolerance"]:
        if best["evaluations"] is None:
            lines.append(f"- {best['solver']} ({best['spacing']}): no configuration within "
                         f"{summary['crps_tolerance']:.0%} of the reference CRPS.")
        else:
            lines.append(f"- {best['solver']} ({best['spacing']}): {best['evaluations']} evaluations are within "
                         f"{summary['crps_tolerance']:.0%} of the reference CRPS ({best['crps_relative']:.3f} x), "
                         f"{ref['evaluations'] / best['evaluations']:.1f}x fewer than the reference.")
    return "\n".join(lines) + "\n"


def run_sampler_study(checkpoint: PathLike, store: PathLike, meta: PathLike, study: Mapping[str, Any], seed: int,
                      out_csv: PathLike, out_md: PathLike, out_json: PathLike, model_name: str | None = None,
                      log: PathLike | None = None) -> dict[str, Any]:
    """Run every configuration of ``study`` (keys of :data:`DEFAULT_STUDY`) and write the outputs."""
    logger = stage_logger("sampler_study", log)
    cfg = {**DEFAULT_STUDY, **dict(study)}
    model, inputs, indices, truth = load_study_data(checkpoint, store, meta, int(cfg["times"]))
    members = int(cfg["members"])
    configs = study_configurations(cfg["solvers"], cfg["evaluations"], int(cfg["reference_evaluations"]))
    logger.info("sampler study of %s: %d times x %d members, %d configurations", checkpoint, len(indices), members,
                len(configs))
    rows = []
    for config in configs:
        fields, seconds = sample_configuration(model, inputs, indices, members, seed, config)
        row = {**config, **score_ensemble(fields, truth, model.spec.factor),
               "seconds_per_sample": seconds / (members * len(indices))}
        rows.append(row)
        logger.info("%s %s %d steps (%d evaluations): CRPS %.4f K, RMSE %.3f K, spread/skill %.2f, LSD %.2f dB, "
                    "%.4f s/sample", config["solver"], config["spacing"], config["steps"], config["evaluations"],
                    row["crps"], row["rmse"], row["spread_skill"], row["spectral_lsd"], row["seconds_per_sample"])
    table = pd.DataFrame(rows)
    reference = table[(table["solver"] == "ddim") & (table["spacing"] == "uniform")
                      & (table["evaluations"] == int(cfg["reference_evaluations"]))].iloc[0]
    table["crps_relative"] = table["crps"] / reference["crps"]
    summary = {
        "model": model_name or str(model.name), "checkpoint": str(checkpoint), "n_times": int(len(indices)),
        "members": members, "crps_tolerance": float(cfg["crps_tolerance"]),
        "reference": {"solver": "ddim", "spacing": "uniform", "evaluations": int(reference["evaluations"]),
                      "crps": float(reference["crps"]), "seconds_per_sample": float(reference["seconds_per_sample"])},
        "fastest_within_tolerance": fastest_within_tolerance(
            table[table.index != reference.name], float(reference["crps"]), float(cfg["crps_tolerance"])),
    }
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, summary))
    write_json(out_json, summary)
    for best in summary["fastest_within_tolerance"]:
        logger.info("fewest evaluations within %.0f%% of DDIM-%d's CRPS: %s", 100 * summary["crps_tolerance"],
                    summary["reference"]["evaluations"], best)
    return summary
