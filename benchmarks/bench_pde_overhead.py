"""What the physics term adds to a training step: one PDE-LDM fine-tuning step per PDE form vs one LDM step.

A PDE-LDM step is the LDM's diffusion loss plus the decode of the predicted clean latent
``x0_hat`` through the autoencoder's decoder (for the samples with ``t < t_max``) and the PDE
loss on the decoded field, all backpropagated. Compared side by side in one process, interleaved
step by step with the same batches and noise draws:

* ``ldm``: one step of the LDM's own training (the whole denoiser trains);
* ``control``: the fine-tuning step without a physics term (lambda 0, ``trainable_parts`` only);
* ``flux_ratio``, ``advection_diffusion``, ``advection_diffusion_matched``: the fine-tuning step
  with each form of the PDE term.

Times are CPU seconds of the process (median over the steps; wall seconds in the CSV too): robust
on a machine shared with other work; with one torch thread they equal the wall time on an idle
machine. At the default size (``config/config.yaml``: its crop and batch) and at the paper size
(``config/paper.yaml``: the study's networks; crop 128, batch 2 on the CI scale, crop 256, batch 4 on
the full scale; the study trains on 512 crops on a GPU). Goal: a PDE-LDM step at most 1.15 LDM steps.

    python benchmarks/bench_pde_overhead.py [--scale ci|full] [--out results/benchmarks]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (build, example_coefficients, interleaved_times, load_cfg, median,  # noqa: E402
                    print_run, random_batch, scale_parser, write_csv)

GOAL = 1.15
FORMS = ("flux_ratio", "advection_diffusion", "advection_diffusion_matched")
#: (config, crop, batch, timed steps) per scale
SIZES = {
    "ci": [("default", None, None, 10), ("paper", 128, 2, 3)],
    "full": [("default", None, None, 10), ("paper", 256, 4, 4)],
    "tiny": [("default", 32, 2, 1)],  # the test suite's smoke run
}


def _variants(model: Any, cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """How to set the one model up for each compared step (attributes of PDELDMModel)."""
    from pdeldm.physics.identified_pde import PDECoefficients

    model.coefficients = PDECoefficients.from_dict(example_coefficients())
    cell_scale = model.cell * model.spec.dx_m
    lam = float(cfg["models"]["pde_ldm"]["pde"]["lambda"]) or 0.01
    out = {"ldm": {"lambda_pde": 0.0, "pde_form": "flux_ratio", "pde_scale": cell_scale, "parts": ["denoiser"]},
           "control": {"lambda_pde": 0.0, "pde_form": "flux_ratio", "pde_scale": cell_scale, "parts": None}}
    for form in FORMS:
        out[form] = {"lambda_pde": lam, "pde_form": form, "parts": None,
                     "pde_scale": cell_scale if form == "flux_ratio" else model.coefficients.residual_std}
    return out


def compare(config: str, crop: int | None, batch: int | None, repeats: int) -> list[dict[str, Any]]:
    """Median seconds per step of every variant at one size, measured interleaved."""
    import torch

    cfg = load_cfg(config)
    crop = int(crop or cfg["training"]["crop"])
    batch = int(batch or cfg["training"]["batch_size"])
    torch.manual_seed(0)
    model = build("pde_ldm", cfg)
    model.train()
    fine_tune_parts = list(model.trainable_parts)
    data = random_batch(model, batch, crop)
    variants = _variants(model, cfg)
    optimizers: dict[str, Any] = {}

    def make_step(name: str):  # type: ignore[no-untyped-def]
        setting = variants[name]
        parts = setting["parts"] or fine_tune_parts

        def step(repeat: int) -> None:
            model.lambda_pde, model.pde_form, model.pde_scale = (setting["lambda_pde"], setting["pde_form"],
                                                                 setting["pde_scale"])
            model.set_trainable(parts)
            key = "all" if setting["parts"] else "fine"
            if key not in optimizers:
                optimizers[key] = model.make_optimizer([p for p in model.parameters() if p.requires_grad])
            torch.manual_seed(1000 + repeat)  # the same t and noise for every variant at this repeat
            loss, _, _, _ = model._losses(data, model.denoiser)
            optimizers[key].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[key].step()

        return step

    # share of the batch whose x0_hat is decoded (t < t_max), from the same draws as the steps
    shares = []
    for repeat in range(1, repeats + 1):
        torch.manual_seed(1000 + repeat)
        t = torch.randint(0, model.schedule.timesteps, (batch,))
        shares.append(float((t < model.t_max).float().mean()))
    times = interleaved_times({name: make_step(name) for name in variants}, repeats)
    ldm, control = median(times["ldm"]["cpu"]), median(times["control"]["cpu"])
    rows = []
    for name, measured in times.items():
        seconds = median(measured["cpu"])
        rows.append({"config": config, "crop": crop, "batch": batch, "variant": name, "steps": len(measured["cpu"]),
                     "cpu_s_per_step": seconds, "wall_s_per_step": median(measured["wall"]),
                     "ratio_to_ldm": seconds / ldm, "ratio_to_control": seconds / control,
                     "decoded_share": sum(shares) / len(shares) if name in FORMS else 0.0,
                     "threads": torch.get_num_threads()})
    return rows


def run(out_dir: Path, scale: str = "ci") -> list[str]:
    rows = []
    for config, crop, batch, repeats in SIZES[scale]:
        rows += compare(config, crop, batch, repeats)
    write_csv(out_dir / "pde_overhead.csv", rows)
    lines = []
    for config in dict.fromkeys(r["config"] for r in rows):
        part = {r["variant"]: r for r in rows if r["config"] == config}
        ldm = part["ldm"]
        worst = max(part[f]["ratio_to_ldm"] for f in FORMS)
        forms = ", ".join(f"{f} {part[f]['ratio_to_ldm']:.2f}" for f in FORMS)
        verdict = "met" if worst <= GOAL else "NOT met"
        lines.append(f"pde overhead [{config}, crop {ldm['crop']}, batch {ldm['batch']}]: PDE-LDM step / LDM step "
                     f"{forms} (LDM {ldm['cpu_s_per_step']:.3f} CPU s/step; goal <= {GOAL}: {verdict}); "
                     f"vs the fine-tuning step without physics ({part['control']['cpu_s_per_step']:.3f} s): "
                     + ", ".join(f"{part[f]['ratio_to_control']:.2f}" for f in FORMS)
                     + f"; x0 decoded for {100 * part[FORMS[0]]['decoded_share']:.0f}% of the samples")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = scale_parser(__doc__, SIZES).parse_args(argv)
    return print_run(run, args.out, args.scale)


if __name__ == "__main__":
    sys.exit(main())
