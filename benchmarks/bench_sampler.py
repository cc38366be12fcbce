"""Cost of DDIM-100 against the fast solver at equal skill, on a trained diffusion checkpoint (not a test).

On ``--times`` test times with ``--members`` members (the workflow's noise), it samples DDIM with
100 steps (the reference), then the fast solver (default DPM-Solver++(2M) on the log-SNR grid) at
each budget of ``--budgets`` denoiser evaluations in increasing order until its fair CRPS is
within ``--tolerance`` (relative) of the reference's. Both are then timed ``--repeats`` times
(median), and it prints the denoiser evaluations and wall time per sample of each and their
ratios (target: at least 10x fewer evaluations).

    python benchmarks/bench_sampler.py --checkpoint results/models/ldm/model.ckpt \
        --store resources/store/italy.zarr --meta resources/store/italy.json --times 8 --members 4

Run after the workflow has trained the model (``snakemake results/models/ldm/model.ckpt``);
``benchmarks/run_all`` runs it on the finished run it is pointed at (``--workdir``) and says so when
there is no trained checkpoint there.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch

from pdeldm.evaluation.sampler_study import load_study_data, sample_configuration, score_ensemble
from pdeldm.models.solvers import evaluations, steps_for_evaluations


#: test times x members per scale of ``benchmarks/run_all``
SCALES = {"tiny": (2, 2), "ci": (4, 4), "full": (8, 4)}


def measure(checkpoint: str, store: str, meta: str, times: int, members: int, seed: int,
            solver: str = "dpmpp_2m", spacing: str = "logsnr", budgets: tuple[int, ...] = (2, 4, 8, 16, 32),
            reference_steps: int = 100, tolerance: float = 0.02, repeats: int = 3) -> tuple[list[str], list[dict]]:
    """The printed lines and CSV rows of one comparison (see the module docstring)."""
    model, inputs, indices, truth = load_study_data(checkpoint, store, meta, times)
    n_samples = members * len(indices)

    def run(config: dict) -> tuple[float, float]:
        fields, seconds = sample_configuration(model, inputs, indices, members, seed, config)
        return score_ensemble(fields, truth, model.spec.factor)["crps"], seconds

    reference = {"solver": "ddim", "spacing": "uniform", "steps": reference_steps}
    reference_crps, _ = run(reference)
    lines = [f"{model.name} from {checkpoint}: {len(indices)} test times x {members} members "
             f"({n_samples} samples per sampler call), torch threads {torch.get_num_threads()}",
             f"reference DDIM-{reference_steps}: CRPS {reference_crps:.4f} K"]
    rows = [{"solver": "ddim", "spacing": "uniform", "steps": reference_steps,
             "evaluations": evaluations("ddim", reference_steps), "crps": reference_crps}]
    chosen = None
    for budget in sorted(budgets):
        steps = steps_for_evaluations(solver, budget)
        config = {"solver": solver, "spacing": spacing, "steps": steps}
        crps, _ = run(config)
        relative = crps / reference_crps
        rows.append({**config, "evaluations": evaluations(solver, steps), "crps": crps})
        lines.append(f"  {solver} ({spacing}) {evaluations(solver, steps):4d} evaluations: CRPS {crps:.4f} K "
                     f"({relative:.3f} x reference)")
        if relative <= 1 + tolerance:
            chosen = config
            break
    if chosen is None:
        lines.append(f"sampler: no budget of {list(budgets)} brings {solver} within {tolerance:.0%} of the "
                     "reference CRPS")
        return lines, rows

    def timed(config: dict) -> float:
        return statistics.median(run(config)[1] for _ in range(repeats)) / n_samples

    t_reference, t_fast = timed(reference), timed(chosen)
    e_reference = evaluations("ddim", reference_steps)
    e_fast = evaluations(chosen["solver"], chosen["steps"])
    rows[0]["s_per_sample"], rows[-1]["s_per_sample"] = t_reference, t_fast
    lines.append(f"sampler: DDIM-{reference_steps} {e_reference} denoiser evaluations, {t_reference * 1000:.1f} ms "
                 f"per sample; {chosen['solver']} ({chosen['spacing']}, {chosen['steps']} steps) {e_fast} evaluations, "
                 f"{t_fast * 1000:.1f} ms per sample: {e_reference / e_fast:.1f}x fewer denoiser evaluations, "
                 f"{t_reference / t_fast:.1f}x less wall time per sample (goal >= 10x fewer evaluations)")
    return lines, rows


def run(out_dir: Path, scale: str = "ci", workdir: Path | None = None, **_: object) -> list[str]:
    """``benchmarks/run_all``'s entry: the comparison on ``workdir``'s trained LDM."""
    workdir = Path(workdir or Path(__file__).resolve().parents[1])
    checkpoint = workdir / "results" / "models" / "ldm" / "model.ckpt"
    stores = sorted((workdir / "resources" / "store").glob("*.zarr"))
    if not checkpoint.is_file() or not stores:
        return [f"sampler: skipped: no trained LDM checkpoint and store under {workdir} "
                "(snakemake results/models/ldm/model.ckpt first, or --workdir a finished run)"]
    store = stores[0]
    times, members = SCALES[scale]
    # Both samplers start from the same noise; which seed does not matter for the comparison.
    lines, rows = measure(str(checkpoint), str(store), str(store.with_suffix(".json")), times, members, seed=0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "sampler.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({key for row in rows for key in row}))
        writer.writeheader()
        writer.writerows(rows)
    return [line if line.startswith("sampler") else f"sampler: {line.strip()}" for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/models/ldm/model.ckpt")
    parser.add_argument("--store", default="resources/store/italy.zarr")
    parser.add_argument("--meta", default="resources/store/italy.json")
    parser.add_argument("--times", type=int, default=8)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20251027, help="the workflow's seed (config `seed`)")
    parser.add_argument("--solver", default="dpmpp_2m")
    parser.add_argument("--spacing", default="logsnr")
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines, _ = measure(args.checkpoint, args.store, args.meta, args.times, args.members, args.seed, args.solver,
                       args.spacing, tuple(args.budgets), args.reference_steps, args.tolerance, args.repeats)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
