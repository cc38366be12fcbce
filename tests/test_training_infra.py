"""Training that survives and scales: exact resume after SIGKILL, determinism, DDP (gloo, CPU),
bf16 autocast of the PDE fine-tuning, and the paper-scale architectures.

The chain's dependencies (UNet -> autoencoder -> LDM) are trained once per module on the tiny
synthetic store of test_train.py; the runs under test reuse them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pdeldm.config import load_config
from pdeldm.models.registry import MODEL_CLASSES, build_model, config_hparams, load_model, nominal_meta, read_checkpoint
from pdeldm.train import train
from test_train import CHAIN_DEPS, tiny_cfg, train_chain

ROOT = Path(__file__).resolve().parents[1]
NONDETERMINISTIC_COLUMNS = ("seconds", "samples_per_s")  # wall-clock, not results


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return train_chain(tmp_path_factory.mktemp("infra"), ["unet", "autoencoder", "ldm"])


def _job(chain: dict, name: str, run_dir: Path, **training: object) -> dict:
    """Arguments of one train() call, as JSON for a subprocess."""
    cfg = tiny_cfg(**training)
    return {"model": name, "cfg": cfg, "store": str(chain["store"]), "meta": str(chain["meta"]),
            "deps": {d: str(chain["ckpts"][d]) for d in CHAIN_DEPS.get(name, [])}, "out_ckpt": str(run_dir / "model.ckpt"),
            "out_metrics": str(run_dir / "metrics.csv"), "workdir": str(run_dir / "work"),
            "log": str(run_dir / "train.log")}


RUNNER = textwrap.dedent("""
    import json, os, signal, sys
    from pdeldm.train import train

    if __name__ == "__main__":
        job = json.load(open(sys.argv[1]))
        kill_at = job.get("kill_at_step")
        if kill_at:
            # Test only: SIGKILL this process once step `kill_at` has been trained but before its
            # checkpoint is written, so the work since the last checkpoint (and the batches the
            # loader had prefetched) is lost, as when a cluster kills a job.
            from pdeldm.callbacks import LastCheckpoint

            save = LastCheckpoint._save

            def _save(self, trainer):
                if trainer.global_step >= kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                save(self, trainer)

            LastCheckpoint._save = _save
        train(job["model"], job["cfg"], job["store"], job["meta"], job["deps"], job["out_ckpt"],
              job["out_metrics"], job["workdir"], job["log"])
""")


def _command(job: dict, run_dir: Path) -> list[str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "job.json").write_text(json.dumps(job))
    (run_dir / "runner.py").write_text(RUNNER)
    return [sys.executable, str(run_dir / "runner.py"), str(run_dir / "job.json")]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def _run(job: dict, run_dir: Path, timeout: float = 600) -> None:
    proc = subprocess.run(_command(job, run_dir), env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _ckpt_step(path: Path) -> tuple[int, int, bool]:
    """(global_step, batches done in the current epoch, its last batch done) of a Lightning checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    return int(ckpt["global_step"]), int(progress["current"]["processed"]), bool(progress["is_last_batch"])


def _state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return [{k: v for k, v in row.items() if k not in NONDETERMINISTIC_COLUMNS} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("name", ["ldm", "pde_ldm", "gan"])
def test_sigkill_mid_epoch_then_rerun_equals_uninterrupted(chain: dict, tmp_path: Path, name: str) -> None:
    opts = {"max_epochs": 2, "limit_train_batches": 5, "batch_size": 4, "time_stride": 1, "checkpoint_every_n_steps": 1}
    reference = tmp_path / "reference"
    _run(_job(chain, name, reference, **opts), reference)

    killed = tmp_path / "killed"
    job = _job(chain, name, killed, **opts)
    # Killed after training step 8 (epoch 1, batch 3 of 5) and before its checkpoint: the rerun
    # must bring back the rest of epoch 1's batch order, the optimiser and EMA state, the LR
    # schedule and the noise stream from the step-7 checkpoint.
    # The GAN makes two optimiser steps (critic, generator) per batch: Lightning counts both.
    per_batch = 2 if name == "gan" else 1
    proc = subprocess.run(_command({**job, "kill_at_step": 8 * per_batch}, killed), env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    assert not (killed / "model.ckpt").exists()
    step, done, finished = _ckpt_step(killed / "work" / "last.ckpt")
    assert (step, done, finished) == (7 * per_batch, 2, False)

    _run(job, killed)  # the same command again, as Snakemake would rerun the job
    assert f"resumed at epoch 1 (global step {step})" in (killed / "train.log").read_text()
    a, b = _state(reference / "model.ckpt"), _state(killed / "model.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-6, atol=1e-7, msg=lambda m, k=key: f"{k}: {m}")
    assert _rows(killed / "metrics.csv") == _rows(reference / "metrics.csv")


def test_same_seed_same_results_different_seed_different(chain: dict, tmp_path: Path) -> None:
    runs = {}
    for label, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / label
        cfg = {**tiny_cfg(max_epochs=2, limit_train_batches=3), "seed": seed}
        train("ldm", cfg, chain["store"], chain["meta"], {d: chain["ckpts"][d] for d in ("unet", "autoencoder")},
              out / "model.ckpt", out / "metrics.csv", out / "work", None)
        runs[label] = (_rows(out / "metrics.csv"), _state(out / "model.ckpt"), (out / "metrics.csv").read_bytes())
    (rows_a, state_a, _), (rows_b, state_b, _), (rows_c, state_c, _) = runs["a"], runs["b"], runs["c"]
    assert len(rows_a) == 2 and rows_a == rows_b
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert rows_c != rows_a
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a if k.startswith("denoiser."))


@pytest.mark.parametrize("name", ["ldm", "pde_ldm"])
def test_ddp_two_cpu_processes_gloo(chain: dict, tmp_path: Path, name: str) -> None:
    job = _job(chain, name, tmp_path, max_epochs=1, limit_train_batches=2, batch_size=4,
               devices=2, strategy="ddp", accelerator="cpu")
    _run(job, tmp_path)
    model = load_model(tmp_path / "model.ckpt")
    assert model.name == name
    log = (tmp_path / "train.log").read_text()
    assert "strategy=ddp" in log and "devices=2" in log
    rows = _rows(tmp_path / "metrics.csv")
    assert len(rows) == 1 and float(rows[0]["train_loss"]) == float(rows[0]["train_loss"])  # not NaN
    # Both processes trained on disjoint halves: the exported weights moved away from the start.
    start = _state(chain["ckpts"]["ldm"]) if name == "pde_ldm" else None
    if start is not None:
        end = _state(tmp_path / "model.ckpt")
        assert any(not torch.equal(start[k], end[k]) for k in end if k.startswith("autoencoder.decoder."))


def _batch(chain: dict, n: int = 4) -> dict[str, torch.Tensor]:
    from torch.utils.data import default_collate

    from pdeldm.data.datasets import DownscalingDataset

    ds = DownscalingDataset(chain["store"], chain["meta"], "train", crop=None, time_features=True, physics_fields=True)
    return default_collate([ds[i] for i in range(n)])


#: Coefficients of an identified equation (the values of the default twin's fit, rounded).
COEFFICIENTS = {"kappa": 2000.0, "tau_s": 10_800.0, "highpass_cells": 2.0, "margin_cells": 3, "residual_std": 1e-4,
                "source": {"HSURF": -6e-7, "FR_LAND_cos_solar": -1e-4}}


@pytest.mark.parametrize("form", ["flux_ratio", "advection_diffusion", "advection_diffusion_matched"])
def test_bf16_autocast_pde_fine_tuning_on_cpu(chain: dict, form: str) -> None:
    cfg = tiny_cfg()
    cfg["models"]["pde_ldm"]["pde"] = {"form": form, "lambda": 1.0, "cell": 16, "t_max": 100,
                                       "coefficients": COEFFICIENTS}
    meta = json.loads(Path(chain["meta"]).read_text())
    model = build_model("pde_ldm", cfg, meta, {"ldm": chain["ckpts"]["ldm"]})
    model.train()
    frozen = {k: p.detach().clone() for k, p in model.named_parameters() if not p.requires_grad}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert frozen and trainable
    assert all(k.startswith(tuple(model.trainable_parts)) for k in trainable)
    batch = _batch(chain)
    torch.manual_seed(0)
    dtypes: list[torch.dtype] = []
    hook = model.denoiser.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, diff, pde, _ = model._losses(batch, model.denoiser)
    hook.remove()
    assert dtypes == [torch.bfloat16]  # the denoiser really ran in bf16
    assert torch.isfinite(loss) and torch.isfinite(pde) and float(pde.detach()) > 0
    assert pde.dtype == torch.float32  # the PDE term is taken in float32 (see PDELDMModel.pde_loss)
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert all(grads[k] is None for k in frozen)
    reached = [k for k in trainable if grads[k] is not None and torch.isfinite(grads[k]).all() and grads[k].abs().sum() > 0]
    assert any(k.startswith("autoencoder.decoder.") for k in reached)  # the PDE term reaches the decoder
    assert any(k.startswith("denoiser.") for k in reached)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    opt.step()
    for k, before in frozen.items():
        assert torch.equal(dict(model.named_parameters())[k], before), k


PAPER_PARAMS = {  # order of magnitude expected of the paper-scale networks (total parameters)
    "unet": (1e7, 1e8),
    "gan": (1e7, 1e8),
    "autoencoder": (1e7, 1e8),  # includes the UNet it is trained on
    "ldm": (1e8, 1e9),  # denoiser base 256, mult [1, 2, 4], 2 res blocks, + UNet + autoencoder
}


def _paper_hparams() -> dict[str, dict]:
    """hparams of each model of the validated paper configuration (672 x 576 cells of 2 km)."""
    cfg = load_config(ROOT / "config" / "paper.yaml")
    assert len(cfg["data"]["predictors"]) == 14 and len(cfg["data"]["static_vars"]) == 19
    meta = nominal_meta(cfg, (672, 576), 2000.0)
    return {name: config_hparams(name, cfg, meta) for name in ("unet", "gan", "autoencoder", "ldm", "pde_ldm")}


def test_paper_scale_models_build_on_the_meta_device() -> None:
    hps = _paper_hparams()
    counts = {}
    with torch.device("meta"):
        for name, hp in hps.items():
            model = MODEL_CLASSES[name](hp)
            counts[name] = sum(p.numel() for p in model.parameters())
            assert all(p.device.type == "meta" for p in model.parameters())
            if name == "pde_ldm":
                trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
                assert 0 < trainable < counts[name]
    for name, (lo, hi) in PAPER_PARAMS.items():
        assert lo <= counts[name] < hi, (name, f"{counts[name]:,}")
    assert counts["pde_ldm"] == counts["ldm"]
    print({k: f"{v:,}" for k, v in counts.items()})
