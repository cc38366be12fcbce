"""One function per workflow rule: the code that Snakemake rules run.

Rules stay thin: ``workflow/scripts/stage.py`` hands Snakemake's ``snakemake`` object to
:func:`run_from_snakemake`, which calls the function registered under the rule's name with plain
paths and config values. Each function can be called directly (tests, notebooks, debugging).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pdeldm.logs import stage_logger

StageFunction = Callable[..., None]
_STAGES: dict[str, StageFunction] = {}


def stage(name: str) -> Callable[[StageFunction], StageFunction]:
    """Register ``function`` as the code of the workflow rule ``name``."""

    def register(function: StageFunction) -> StageFunction:
        _STAGES[name] = function
        return function

    return register


def _config(params: Any) -> dict[str, Any]:
    # The whole validated config travels as JSON in `params.config` so Snakemake reruns a job
    # exactly when the config it depends on changes (params rerun trigger).
    return json.loads(params.config) if isinstance(params.config, str) else dict(params.config)


@stage("static_region")
def static_region(source: str, region: dict[str, Any], out: str, log: str | None = None) -> None:
    """Cut the configured region out of the committed EUR-11 static fields."""
    from pdeldm.data.static import extract_region

    logger = stage_logger("static_region", log)
    logger.info("extracting region %s from %s", region, source)
    extract_region(Path(source), region, Path(out))
    logger.info("wrote %s", out)


@stage("static_inputs")
def static_inputs(target_grid: str, cfg: dict[str, Any], out: str, log: str | None = None,
                  **_source_files: str) -> None:
    """Remap the paper's high-resolution static inputs onto the COSMO-CLM target grid."""
    from pdeldm.data.static_inputs import build_static_inputs

    build_static_inputs(cfg["static_inputs"], Path(target_grid), Path(out), log=log,
                        variable=cfg["cosmo"]["variable"])


@stage("twin")
def twin(static: str, cfg: dict[str, Any], era5: Sequence[str], cosmo: Sequence[str], diagnostics: str,
         log: str | None = None) -> None:
    """Integrate the embedded twin into the monthly ERA5- and COSMO-CLM-format files the rule declares."""
    from pdeldm.data.twin import simulate_twin

    logger = stage_logger("twin", log)
    period = cfg["data"]["period"]
    written = simulate_twin(
        static_path=Path(static),
        start=period["start"],
        end=period["end"],
        seed=int(cfg["seed"]),
        params=cfg["twin"]["params"],
        era5_dir=single_folder(era5, "era5"),
        cosmo_dir=single_folder(cosmo, "cosmo"),
        diagnostics_path=Path(diagnostics),
        era5_resolution_deg=float(cfg["twin"]["era5_resolution_deg"]),
        log=logger,
    )
    check_written(written, [*era5, *cosmo, diagnostics], "twin")


def single_folder(paths: Sequence[str], name: str) -> Path:
    """The one folder that holds every path of the output ``name``."""
    folders = sorted({str(Path(p).parent) for p in paths})
    if len(folders) != 1:
        raise ValueError(f"output '{name}' must lie in one folder, the rule declares files in {folders}")
    return Path(folders[0])


def check_written(written: Sequence[str | Path], declared: Sequence[str], stage_name: str) -> None:
    """A stage that names its own files must write exactly the ones its rule declares."""
    written_set, declared_set = {str(Path(p)) for p in written}, {str(Path(p)) for p in declared}
    if written_set != declared_set:
        raise RuntimeError(f"{stage_name}: wrote {sorted(written_set - declared_set)} that the rule does not declare "
                           f"and not {sorted(declared_set - written_set)} that it does; the rule's file names and "
                           "the writer's must agree")


@stage("twin_realism")
def twin_realism(static_source: str, reference: str, regions: dict[str, Any], cfg: dict[str, Any], out_csv: str,
                 out_md: str, out_html: str, out_png: str, log: str | None = None, **_params: Any) -> None:
    """Compare the twin's monthly mean with a real COSMO-CLM one over every region."""
    from pdeldm.data.twin.realism import realism_check

    logger = stage_logger("twin_realism", log)
    realism = cfg["twin"]["realism"]
    realism_check(Path(static_source), Path(reference), dict(regions), cfg["twin"]["params"], int(cfg["seed"]),
                  int(cfg["data"]["factor"]), out_csv, out_md, out_html, out_png, days=realism["days"], log=logger)
    logger.info("wrote %s", out_md)


@stage("store")
def store(era5_files: Sequence[str], cosmo_files: Sequence[str], static: str, cfg: dict[str, Any],
          store_path: str, meta_path: str, log: str | None = None) -> None:
    """Regrid ERA5 onto the COSMO-CLM grid, align, split in time and write the training store."""
    from pdeldm.data.store import build_store

    logger = stage_logger("store", log)
    data = cfg["data"]
    store_cfg = {
        "factor": data["factor"],
        "predictors": data["predictors"],
        "static_vars": data["static_vars"],
        "regrid_method": data["regrid_method"],
        "split": data["split"],
    }
    logger.info("building store from %d ERA5 and %d COSMO-CLM files", len(era5_files), len(cosmo_files))
    build_store([Path(f) for f in era5_files], [Path(f) for f in cosmo_files], Path(static),
                Path(store_path), Path(meta_path), store_cfg)
    logger.info("wrote %s and %s", store_path, meta_path)


@stage("train")
def train(model: str, cfg: dict[str, Any], store_path: str, meta_path: str, out_ckpt: str, out_metrics: str,
          workdir: str, log: str | None = None, **deps: str) -> None:
    """Train one model (resuming from ``workdir/last.ckpt`` if a previous run was killed).

    ``deps`` are the checkpoints of the models this one builds on, keyed by model name.
    """
    from pdeldm.train import train as train_model

    train_model(model, cfg, Path(store_path), Path(meta_path), {k: Path(v) for k, v in deps.items()},
                Path(out_ckpt), Path(out_metrics), Path(workdir), Path(log) if log else None)


@stage("finetune")
def finetune(overrides: str, seed: str, cfg: dict[str, Any], store_path: str, meta_path: str, ldm: str,
             out_ckpt: str, out_metrics: str, workdir: str, coefficients: str | None = None,
             log: str | None = None) -> None:
    """Fine-tune the LDM as one run (``overrides`` of models.pde_ldm.pde, JSON) with training seed ``seed``."""
    from pdeldm.train import finetune_config
    from pdeldm.train import train as train_model

    run_cfg = finetune_config(cfg, json.loads(overrides), int(seed), coefficients)
    train_model("pde_ldm", run_cfg, Path(store_path), Path(meta_path), {"ldm": Path(ldm)}, Path(out_ckpt),
                Path(out_metrics), Path(workdir), Path(log) if log else None)


@stage("identify_pde")
def identify_pde(cfg: dict[str, Any], store_path: str, meta_path: str, out: str, log: str | None = None) -> None:
    """Identify the transport equation's coefficients on the training targets."""
    from pdeldm.io import write_json
    from pdeldm.physics.identification import identify_coefficients

    logger = stage_logger("identify_pde", log)
    result = identify_coefficients(store_path, meta_path, dict(cfg["physics"], seed=cfg["seed"]), logger)
    write_json(out, result)
    logger.info("wrote %s", out)


@stage("predict")
def predict(model: str, cfg: dict[str, Any], store_path: str, meta_path: str, out: str, ckpt: str,
            log: str | None = None, coarse_input: str = "store") -> None:
    """Downscale the test period with one trained model (``model``: a name, or ``run/seedN``);
    ``coarse_input="perfect"`` replaces the coarse t2m by the block mean of the truth (with
    ``evaluation.perfect_input_members`` members)."""
    from pdeldm.predict import predict as predict_model

    if coarse_input == "perfect":  # fewer members: the robustness table needs member 0 and a CRPS
        evaluation = cfg["evaluation"]
        cfg = {**cfg, "evaluation": {**evaluation, "members": evaluation["perfect_input_members"]}}
    name, _, seed = model.partition("/seed")
    attrs = {"finetune_seed": int(seed)} if seed else {}
    predict_model(name, cfg, Path(store_path), Path(meta_path), {name: Path(ckpt)}, Path(out),
                  Path(log) if log else None, extra_attrs=attrs, coarse_input=coarse_input)


def _twin_equation(cfg: dict[str, Any], static: str | None) -> dict[str, Any] | None:
    """What the evaluation needs to regenerate the twin's exact equation (None on real data)."""
    if cfg["data"]["source"] != "twin" or static is None:
        return None
    return {"static": static, "params": cfg["twin"]["params"], "seed": cfg["seed"],
            "start": cfg["data"]["period"]["start"]}


@stage("evaluate")
def evaluate(prediction: str, store_path: str, meta_path: str, coefficients: str, cfg: dict[str, Any],
             out_csv: str, rank_hist: str, extremes: str, rapsd: str, static: str | None = None,
             log: str | None = None) -> None:
    """Score one model's test predictions against the truth: per-time scores and the three side CSVs."""
    from pdeldm.evaluation.evaluate import evaluate_model

    evaluate_model(Path(prediction), Path(store_path), Path(meta_path), Path(out_csv), cfg["evaluation"],
                   log=Path(log) if log else None, coefficients=Path(coefficients),
                   twin=_twin_equation(cfg, static),
                   side_outputs={"rank_hist": rank_hist, "extremes": extremes, "rapsd": rapsd})


@stage("evaluate_truth")
def evaluate_truth(prediction: str, store_path: str, meta_path: str, coefficients: str, cfg: dict[str, Any],
                   out_csv: str, rank_hist: str, extremes: str, rapsd: str, static: str | None = None,
                   log: str | None = None) -> None:
    """Score the truth itself at the test times of ``prediction``: the reference row of the tables."""
    from pdeldm.evaluation.evaluate import evaluate_model

    evaluate_model(Path(prediction), Path(store_path), Path(meta_path), Path(out_csv), cfg["evaluation"],
                   log=Path(log) if log else None, coefficients=Path(coefficients),
                   twin=_twin_equation(cfg, static), score_truth=True,
                   side_outputs={"rank_hist": rank_hist, "extremes": extremes, "rapsd": rapsd})


@stage("summary_table")
def summary_table(metric_csvs: Sequence[str], out_csv: str, out_md: str, out_tex: str,
                  log: str | None = None) -> None:
    """Mean and spread of every metric per model -> CSV, Markdown and LaTeX tables."""
    from pdeldm.evaluation.tables import summarise

    summarise(metric_csvs, out_csv, out_md, out_tex, log=log)


@stage("paired_differences")
def paired_differences(metric_csvs: Sequence[str], cfg: dict[str, Any], out_csv: str, out_md: str,
                       log: str | None = None) -> None:
    """Each fine-tuning run minus the control, and the control minus the LDM, with intervals."""
    from pdeldm.evaluation.paired import write_paired_differences

    control = cfg["finetune"]["control"]
    pairs = [(run, control) for run in cfg["finetune"]["runs"] if run != control] + [(control, "ldm")]
    evaluation = cfg["evaluation"]
    write_paired_differences(metric_csvs, pairs, evaluation["paired_metrics"], evaluation["bootstrap_block_days"],
                             evaluation["bootstrap_samples"], cfg["seed"], out_csv, out_md, log=log)


@stage("wind_contrast_conditions")
def wind_contrast_conditions(prediction: str, store_path: str, meta_path: str, cfg: dict[str, Any], out_csv: str,
                             log: str | None = None) -> None:
    """Per test time: wind, coarse thermal contrast and the strong-wind, weak-contrast subset."""
    import xarray as xr

    from pdeldm.evaluation.ablation import wind_contrast_conditions as conditions
    from pdeldm.io import atomic_output

    with xr.open_dataset(prediction) as ds:
        times = [str(t) for t in ds["time"].values.astype("datetime64[s]")]
    subset = cfg["experiments"]["subset"]
    frame = conditions(store_path, meta_path, [t.replace(" ", "T") for t in times], subset["wind_quantile"],
                       subset["gradient_quantile"])
    frame["time"] = [t.replace(" ", "T") for t in frame["time"]]
    with atomic_output(out_csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    stage_logger("experiments", log).info(
        "%d of %d test times have strong wind (> %.2f m/s) and weak coarse contrast (< %.3f K/100 km) -> %s",
        int(frame["subset"].sum()), len(frame), frame.attrs["wind_threshold"], frame.attrs["gradient_threshold"],
        out_csv)


@stage("ablation_lambda")
def ablation_lambda(metric_csvs: Sequence[str], cfg: dict[str, Any], out_csv: str, out_md: str, out_tex: str,
                    out_png: str, out_tradeoff: str, log: str | None = None) -> None:
    """Scores against lambda for every PDE form (seeds and their mean), the trade-off figure, tables."""
    from pdeldm.evaluation.ablation import ablation_table, read_metrics, write_table
    from pdeldm.experiments import run_for
    from pdeldm.plotting.experiments import plot_lambda_ablation, plot_tradeoff

    experiments = cfg["experiments"]
    points = [(form, 0.0, run_for(cfg, form, 0.0)) for form in experiments["forms"]]
    points += [(form, float(lam), run_for(cfg, form, float(lam))) for form in experiments["forms"]
               for lam in experiments["lambdas"] if lam]
    table = ablation_table(read_metrics(metric_csvs), points, experiments["metrics"])
    write_table(table, out_csv, out_md, out_tex, caption="Mean over the test times per training seed, and "
                "the mean over seeds (seed = mean); lambda = 0 is the control run.")
    plot_lambda_ablation(table, experiments["metrics"], out_png)
    plot_tradeoff(table, [m for m in experiments["metrics"] if m not in ("rmse", "crps", "mae")], out_tradeoff)
    stage_logger("experiments", log).info("lambda ablation: %d (form, lambda) points -> %s", len(points), out_csv)


@stage("pde_forms")
def pde_forms(metric_csvs: Sequence[str], conditions: str, cfg: dict[str, Any], out_csv: str, out_md: str,
              out_png: str, log: str | None = None) -> None:
    """The study's form, the explicit-wind form and the control on all times and on the subset."""
    import pandas as pd

    from pdeldm.evaluation.ablation import form_comparison, read_metrics, write_table
    from pdeldm.experiments import run_for
    from pdeldm.plotting.experiments import plot_form_comparison

    pde = cfg["models"]["pde_ldm"]["pde"]
    runs = {form: run_for(cfg, form, float(pde["lambda"])) for form in cfg["experiments"]["forms"]}
    evaluation = cfg["evaluation"]
    table = form_comparison(read_metrics(metric_csvs), pd.read_csv(conditions), runs, cfg["finetune"]["control"],
                            cfg["experiments"]["metrics"], evaluation["bootstrap_block_days"],
                            evaluation["bootstrap_samples"], cfg["seed"])
    write_table(table, out_csv, out_md, caption="Run minus the lambda = 0 control, paired per test time "
                "(seeds averaged), with 95% moving-block bootstrap intervals over test days; 'strong wind, "
                "weak contrast' = the test times of results/experiments/wind_contrast_conditions.csv.")
    plot_form_comparison(table, out_png)
    stage_logger("experiments", log).info("PDE forms %s compared with the control -> %s", runs, out_csv)


@stage("transfer_regions")
def transfer_regions(metric_csvs: Sequence[str], statics: Sequence[str], cases: str, cfg: dict[str, Any],
                     out_csv: str, out_md: str, out_tex: str, out_paired_csv: str, out_paired_md: str,
                     out_matrix: str, out_models: str, out_maps: str, log: str | None = None) -> None:
    """Models trained on one region scored on every region: tables, paired intervals, figures, maps."""
    import json

    from pdeldm.evaluation.ablation import write_table
    from pdeldm.evaluation.tables import MODEL_LABELS
    from pdeldm.evaluation.transfer import (paired_markdown, read_cases, region_summary, regions_markdown,
                                            transfer_paired, transfer_table)
    from pdeldm.io import atomic_output
    from pdeldm.plotting.transfer import plot_region_maps, plot_transfer_matrix, plot_transfer_models

    transfer, main_region = cfg["experiments"]["transfer"], cfg["data"]["region"]
    regions, metrics = transfer["regions"], transfer["metrics"]
    data = read_cases(json.loads(cases), metric_csvs)
    table = transfer_table(data, metrics)
    summary = region_summary(dict(zip(regions, statics, strict=True)))
    write_table(table, out_csv, out_md, out_tex, caption=(
        f"Mean over the test times of each test region (seeds averaged per time), and the difference from "
        f"that region's interpolation (`_vs_{'interpolation'}`). Models trained on {main_region} unless "
        "`train` says otherwise; no retuning on any region.\n\n" + regions_markdown(summary)))
    finetune, evaluation = cfg["finetune"], cfg["evaluation"]
    runs = [run for run in finetune["runs"] if run != finetune["control"]]
    paired = transfer_paired(data, main_region, runs, finetune["control"], transfer["models"], metrics,
                             evaluation["bootstrap_block_days"], evaluation["bootstrap_samples"], cfg["seed"])
    with atomic_output(out_paired_csv) as tmp:
        paired.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_paired_md) as tmp:
        Path(tmp).write_text(paired_markdown(paired, MODEL_LABELS))
    plot_transfer_matrix(table, transfer["models"], metrics, regions, out_matrix)
    plot_transfer_models(table, main_region, metrics, regions, out_models)
    plot_region_maps(dict(zip(regions, statics, strict=True)), summary, out_maps)
    stage_logger("experiments", log).info("transfer: %d cases on %d regions -> %s", len(json.loads(cases)),
                                          len(regions), out_csv)


@stage("robustness_table")
def robustness_table(store_csvs: Sequence[str], perfect_csvs: Sequence[str], out_csv: str, out_md: str,
                     out_html: str, log: str | None = None) -> None:
    """Every model's scores with the store's coarse input beside those with a perfect one."""
    from pdeldm.evaluation.robustness import write_robustness

    table = write_robustness(store_csvs, perfect_csvs, out_csv, out_md, out_html)
    stage_logger("robustness_table", log).info("wrote %s (%d models)", out_md, len(table))


@stage("figure_boxplots")
def figure_boxplots(metric_csvs: Sequence[str], out_png: str, log: str | None = None) -> None:
    """The study's main figure: one box plot panel per metric across models."""
    from pdeldm.plotting.boxplots import plot_metric_boxplots

    plot_metric_boxplots(metric_csvs, out_png)
    stage_logger("figures", log).info("wrote %s", out_png)


@stage("figure_maps")
def figure_maps(predictions: Sequence[str], store_path: str, meta_path: str, cfg: dict[str, Any],
                out_png: str, log: str | None = None) -> None:
    """Map panels of coarse input, truth and each model for a few test times."""
    from pdeldm.plotting.maps import plot_maps

    evaluation = cfg["evaluation"]
    plot_maps(predictions, store_path, meta_path, out_png, times=evaluation["map_times"],
              n_times=int(evaluation["map_n_times"]))
    stage_logger("figures", log).info("wrote %s", out_png)


@stage("figure_spectra")
def figure_spectra(rapsd_csvs: Sequence[str], out_png: str, log: str | None = None) -> None:
    """Radially averaged power spectra of truth and every model."""
    from pdeldm.plotting.spectra import plot_spectra

    plot_spectra(rapsd_csvs, out_png)
    stage_logger("figures", log).info("wrote %s", out_png)


@stage("figure_calibration")
def figure_calibration(rank_hist_csvs: Sequence[str], metric_csvs: Sequence[str], out_png: str,
                       log: str | None = None) -> None:
    """Rank histograms and spread-skill of the ensemble models."""
    from pdeldm.plotting.calibration import plot_calibration

    plot_calibration(rank_hist_csvs, metric_csvs, out_png)
    stage_logger("figures", log).info("wrote %s", out_png)


@stage("figure_training")
def figure_training(out_png: str, log: str | None = None, **metrics_csvs: str) -> None:
    """Training and validation loss per epoch of every trained network."""
    from pdeldm.plotting.training import plot_training_curves

    logger = stage_logger("figures", log)
    plot_training_curves(metrics_csvs, out_png)
    logger.info("wrote %s", out_png)


@stage("data_page")
def data_page(meta_path: str, out_html: str, log: str | None = None, diagnostics: str | None = None,
              **_inputs: Any) -> None:
    """The report's data page: facts of the training store (and the twin's diagnostics)."""
    from pdeldm.report_pages import write_data_page

    write_data_page(meta_path, out_html, diagnostics_json=diagnostics)
    stage_logger("report", log).info("wrote %s", out_html)


@stage("experiment_page")
def experiment_page(summary_md: str, cfg: dict[str, Any], out_html: str, repository: str = ".",
                    log: str | None = None) -> None:
    """The report's experiment page: summary table, software versions, commit and configuration."""
    from pdeldm.report_pages import write_experiment_page

    write_experiment_page(summary_md, cfg, out_html, repository=repository)
    stage_logger("report", log).info("wrote %s", out_html)


@stage("dvc_track")
def dvc_track(paths: Sequence[str], manifest: str, cfg: dict[str, Any], log: str | None = None,
              **_inputs: Any) -> None:
    """`dvc add` the boundary data and the released model bundle; write the release manifest."""
    from pdeldm.versioning import track

    track(list(paths), manifest, cfg, logger=stage_logger("dvc_track", log))


@stage("job_costs")
def job_costs(records: str, out_csv: str, out_summary: str, cores: int = 0, log: str | None = None,
              **_results: Any) -> None:
    """Every job's cost record -> ``jobs.csv``, and the run's totals (span, overhead, core use)."""
    from pdeldm.costs import write_job_costs

    logger = stage_logger("job_costs", log)
    summary = write_job_costs(records, out_csv, out_summary, cores)
    logger.info("wrote %s and %s: %s", out_csv, out_summary, summary)


@stage("figure_job_costs")
def figure_job_costs(jobs_csv: str, summary_json: str, out_png: str, out_html: str, log: str | None = None) -> None:
    """Where the time and memory went: per-rule bars and the run's timeline, and the report page."""
    from pdeldm.plotting.costs import plot_job_costs
    from pdeldm.report_pages import write_costs_page

    plot_job_costs(jobs_csv, summary_json, out_png)
    write_costs_page(jobs_csv, summary_json, out_html)
    stage_logger("figures", log).info("wrote %s and %s", out_png, out_html)


def _plain(value: Any) -> Any:
    """Snakemake's Namedlist/str subclasses -> list[str] / str."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return value


def stage_kwargs(smk: Any) -> dict[str, Any]:
    """Keyword arguments for a stage from a rule's *named* inputs, outputs and params.

    Rules name their inputs and outputs after the stage function's parameters; ``params.config``
    (the config as JSON) becomes ``cfg``; ``params.stage`` picks the function (default: rule name).
    """
    kwargs: dict[str, Any] = {}
    for container in (smk.input, smk.output):
        kwargs.update({name: _plain(value) for name, value in container.items()})
    for name, value in smk.params.items():
        if name == "config":
            kwargs["cfg"] = _config(smk.params)
        elif name != "stage":
            kwargs[name] = value
    kwargs["log"] = str(smk.log[0]) if len(smk.log) else None
    return kwargs


def _register_other_stages() -> None:
    """Stages kept in their own modules register themselves on import."""
    import pdeldm.ensemble_stages  # noqa: F401


def run_from_snakemake(smk: Any) -> None:
    """Dispatch a Snakemake ``script:`` call to the registered stage function of the rule.

    The job holds a lease on the run's cores while it runs (:mod:`pdeldm.cores`; the rule's
    ``shared_cores`` resource is the run's core count, 0 or absent where a scheduler allots them)
    and records what its stage cost next to its Snakemake benchmark (:mod:`pdeldm.costs`).
    """
    from pdeldm.cores import holding
    from pdeldm.costs import job_record_path, records_root, stage_record

    _register_other_stages()
    name = smk.params.get("stage", smk.rule)
    function = _STAGES.get(name)
    if function is None:
        raise KeyError(f"no stage function registered for rule '{name}' (known: {sorted(_STAGES)})")
    paths = smk.config["paths"]
    record = job_record_path(records_root(paths["logs"]), smk.rule, dict(smk.wildcards.items()), ".stage.json")
    shared = int(smk.resources.get("shared_cores", 0) or 0)
    kwargs = stage_kwargs(smk)
    if "cores" in inspect.signature(function).parameters:  # the run's cores (0 where a scheduler allots them)
        kwargs["cores"] = shared
    with holding(Path(paths["resources"]) / "running", shared, int(smk.threads)) as share, \
            stage_record(record, smk.rule) as cost:
        function(**kwargs)
        cost["threads_max"] = share.max_threads if share is not None else int(smk.threads)
