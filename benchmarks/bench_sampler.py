"""Cost of DDIM-100 against the fast solver at equal skill, on a trained diffusion checkpoint (not a test).

On ``--times`` test times with ``--members`` members (the workflow's noise), it samples DDIM with
100 steps (the reference), then the fast solver (default DPM-Solver++(2M) on the log-SNR grid) at
each budget of ``--budgets`` denoiser evaluations in increasing order until its fair CRPS is
within ``--tolerance`` (relative) of the reference's. Both are then timed ``--repeats`` times
(median), and it prints the denoiser evaluations and wall time per sample of each and their
ratios (target: at least 10x fewer evaluations).

    python benchmarks/bench_sampler.py --checkpoint results/models/ldm/model.ckpt \
        --store resources/store/italy.zarr --meta resources/store/italy.json --times 8 --members 4

Run after the workflow has trained the model (``snakemake results/models/ldm/model.ckpt``).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pdeldm.evaluation.sampler_study import load_study_data, sample_configuration, score_ensemble
from pdeldm.models.solvers import evaluations, steps_for_evaluations


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

    model, inputs, indices, truth = load_study_data(args.checkpoint, args.store, args.meta, args.times)
    n_samples = args.members * len(indices)

    def run(config: dict) -> tuple[float, float]:
        fields, seconds = sample_configuration(model, inputs, indices, args.members, args.seed, config)
        return score_ensemble(fields, truth, model.spec.factor)["crps"], seconds

    reference = {"solver": "ddim", "spacing": "uniform", "steps": args.reference_steps}
    reference_crps, _ = run(reference)
    print(f"{model.name} from {args.checkpoint}: {len(indices)} test times x {args.members} members "
          f"({n_samples} samples per sampler call), torch threads {torch.get_num_threads()}")
    print(f"reference DDIM-{args.reference_steps}: CRPS {reference_crps:.4f} K")
    chosen = None
    for budget in sorted(args.budgets):
        steps = steps_for_evaluations(args.solver, budget)
        config = {"solver": args.solver, "spacing": args.spacing, "steps": steps}
        crps, _ = run(config)
        relative = crps / reference_crps
        print(f"  {args.solver} ({args.spacing}) {evaluations(args.solver, steps):4d} evaluations: CRPS {crps:.4f} K "
              f"({relative:.3f} x reference)")
        if relative <= 1 + args.tolerance:
            chosen = config
            break
    if chosen is None:
        print(f"no budget of {args.budgets} brings {args.solver} within {args.tolerance:.0%} of the reference CRPS")
        return

    def timed(config: dict) -> float:
        return statistics.median(run(config)[1] for _ in range(args.repeats)) / n_samples

    t_reference, t_fast = timed(reference), timed(chosen)
    e_reference = evaluations("ddim", args.reference_steps)
    e_fast = evaluations(chosen["solver"], chosen["steps"])
    print(f"DDIM-{args.reference_steps}: {e_reference} denoiser evaluations, {t_reference * 1000:.1f} ms per sample")
    print(f"{chosen['solver']} ({chosen['spacing']}, {chosen['steps']} steps): {e_fast} denoiser evaluations, "
          f"{t_fast * 1000:.1f} ms per sample")
    print(f"ratio: {e_reference / e_fast:.1f}x fewer denoiser evaluations, {t_reference / t_fast:.1f}x less wall time "
          f"per sample (target: >= 10x fewer evaluations)")


if __name__ == "__main__":
    main()
