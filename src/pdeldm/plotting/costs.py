"""Where the time goes: wall time and peak memory per rule, and the timeline of the run's jobs."""

from __future__ import annotations

import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pdeldm.plotting.style import save_figure, set_style


def plot_job_costs(jobs_csv: str | os.PathLike[str], summary_json: str | os.PathLike[str],
                   out_png: str | os.PathLike[str]) -> None:
    """Three panels from ``jobs.csv`` (:mod:`pdeldm.costs`) -> ``out_png``.

    Left: wall time summed per rule, split into the stage's own work, the libraries the stage
    imports, and the rest of the job (interpreter start, Snakemake's job launch). Middle: the largest peak resident memory of a job of
    each rule. Right: the jobs of the current run against time, one row per job, coloured by
    rule, with the CPU cores in use (CPU seconds per wall second, summed over the running jobs).
    """
    from pdeldm.costs import per_rule

    set_style()
    jobs = pd.read_csv(jobs_csv)
    summary = json.loads(open(summary_json).read())
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.28 * max(len(jobs["rule"].unique()), 8) + 2.2),
                             gridspec_kw={"width_ratios": [1.1, 0.8, 1.6]})
    if jobs.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no job records", ha="center", va="center")
            ax.axis("off")
        save_figure(fig, out_png)
        return
    rules = per_rule(jobs).iloc[::-1]  # largest at the top
    y = np.arange(len(rules))
    imports = rules["import_s"].fillna(0.0).to_numpy() / 60
    model = rules["stage_s"].fillna(0.0).to_numpy() / 60 - imports
    rest = (rules["wall_s"].to_numpy() / 60) - model - imports
    axes[0].barh(y, model, color="#3b6ea8", label="stage's own work")
    axes[0].barh(y, imports, left=model, color="#8fb3d9", label="stage's library imports")
    axes[0].barh(y, rest, left=model + imports, color="#c8a25a", label="job start-up, launch")
    axes[0].set_yticks(y, [f"{rule} ({n})" for rule, n in zip(rules.index, rules["jobs"])], fontsize="small")
    axes[0].set_xlabel("wall time, summed over the rule's jobs (min)")
    axes[0].legend(fontsize="small", loc="lower right")
    axes[1].barh(y, rules["max_rss_mib"].to_numpy(), color="#7a7a7a")
    axes[1].set_yticks(y, [""] * len(y))
    axes[1].set_xlabel("largest peak memory of a job (MiB)")

    run = jobs
    if summary.get("run_start") is not None:
        run = jobs[jobs["start"] >= float(summary["run_start"]) - 1.0]
    origin = float(summary.get("run_start") or run["start"].min())
    order = run.sort_values("start")
    # 40 distinct colours (tab20, then tab20b): one per rule of a run of the whole workflow
    palette = [*plt.cm.tab20(np.arange(20)), *plt.cm.tab20b(np.arange(20))]
    colors = {rule: palette[i % len(palette)] for i, rule in enumerate(sorted(jobs["rule"].unique()))}
    for row, job in enumerate(order.itertuples()):
        axes[2].barh(row, (job.end - job.start) / 60, left=(job.start - origin) / 60, color=colors[job.rule],
                     height=0.8)
    axes[2].invert_yaxis()
    axes[2].set_yticks([])
    axes[2].set_ylabel(f"jobs of this run ({len(run)}), by start")
    axes[2].set_xlabel("minutes since the run started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[rule]) for rule in sorted(run["rule"].unique())]
    # below the panel: the jobs fill it from top left to bottom right
    axes[2].legend(handles, sorted(run["rule"].unique()), fontsize="x-small", ncol=3, loc="upper center",
                   bbox_to_anchor=(0.5, -0.07), frameon=False)
    cores_axis = axes[2].twinx()
    grid = np.linspace(origin, float(summary.get("run_end") or run["end"].max()), 400)
    load = np.zeros_like(grid)
    for job in run.itertuples():
        if job.wall_s > 0 and np.isfinite(job.cpu_s):
            load += np.where((grid >= job.start) & (grid <= job.end), job.cpu_s / job.wall_s, 0.0)
    cores_axis.plot((grid - origin) / 60, load, color="black", lw=1.0)
    cores_axis.set_ylabel("CPU cores in use")
    cores_axis.grid(False)
    cores_axis.set_ylim(0, max(float(summary.get("cores") or 0), float(load.max()), 1.0) * 1.1)
    title = (f"{summary.get('jobs', 0)} jobs in {summary.get('span_s', 0) / 60:.1f} min; no stage code ran in "
             f"{100 * summary.get('outside_stage_share', float('nan')):.0f}% of the time, no stage's own work in "
             f"{100 * summary.get('outside_model_share', float('nan')):.0f}%")
    if summary.get("core_utilisation") is not None:
        title += f"; {100 * summary['core_utilisation']:.0f}% of {summary['cores']} cores busy"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, out_png)
