"""Paper-scale PDE-LDM fine-tuning steps on this machine: float32 vs bf16 autocast, side by side.

Builds the PDE-LDM of ``config/paper.yaml`` (UNet 64->512, VQ autoencoder, latent denoiser base
256, mult [1, 2, 4], 2 res blocks; 14 predictors, 19 static fields) with random weights, and times
``--steps`` optimiser steps of ``L_diff + lambda L_PDE`` on random crops (``--crop`` fine pixels,
the study crops 512) for each PDE form, in float32 and in bf16 autocast. Prints seconds per step,
samples/s, the bf16/float32 time ratio and the process's peak resident memory.

This is what can be measured without a GPU; the study's setting (512 crops on a GPU,
``precision: bf16-mixed``) is for a machine that has one:

    python benchmarks/bench_paper_finetune.py                  # crop 128, batch 2, 3 steps
    python benchmarks/bench_paper_finetune.py --crop 256 --batch 1
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def paper_model(form: str):  # type: ignore[no-untyped-def]
    """The PDE-LDM of the validated paper configuration (random weights, latent scale 1)."""
    from pdeldm.config import load_config
    from pdeldm.models.pde_ldm import PDELDMModel
    from pdeldm.models.registry import config_hparams, nominal_meta

    cfg = load_config(ROOT / "config" / "paper.yaml")
    cfg["models"]["pde_ldm"]["pde"]["form"] = form
    meta = nominal_meta(cfg, (672, 576), 2000.0)
    model = PDELDMModel(config_hparams("pde_ldm", cfg, meta))
    with torch.no_grad():
        model.latent_scale.fill_(1.0)
    return model, len(meta["predictors"]), len(meta["static_vars"])


def batch(n: int, crop: int, n_coarse: int, n_static: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"coarse": torch.randn(n, n_coarse, crop // 8, crop // 8, generator=g),
            "static": torch.randn(n, n_static, crop, crop, generator=g),
            "target": torch.randn(n, 1, crop, crop, generator=g),
            "wind": 5.0 * torch.randn(n, 2, crop, crop, generator=g)}


def run(form: str, bf16: bool, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    model, n_coarse, n_static = paper_model(form)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = model.make_optimizer(params)
    data = batch(args.batch, args.crop, n_coarse, n_static)
    times = []
    for step in range(args.steps + 1):  # the first step warms up and is not timed
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, diff, pde, _ = model._losses(data, model.denoiser)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step:
            times.append(time.perf_counter() - t0)
    total = sum(p.numel() for p in model.parameters())
    seconds = sum(times) / len(times)
    return {"params_total": total, "params_trained": sum(p.numel() for p in params),
            "s_per_step": seconds, "samples_per_s": args.batch / seconds, "loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"paper-scale PDE-LDM fine-tuning, crop {args.crop}, batch {args.batch}, {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads, device cpu")
    for form in ("flux_ratio", "advection_diffusion"):
        fp32 = run(form, False, args)
        bf16 = run(form, True, args)
        print(f"{form:20s} params {fp32['params_total']:,} ({fp32['params_trained']:,} trained)")
        for label, r in (("float32", fp32), ("bf16 autocast", bf16)):
            print(f"  {label:14s} {r['s_per_step']:7.2f} s/step  {r['samples_per_s']:6.3f} samples/s  loss {r['loss']:.4g}")
        print(f"  bf16/float32 time ratio {bf16['s_per_step'] / fp32['s_per_step']:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
