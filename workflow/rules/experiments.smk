# The study's open questions, each one target and one report section (category "Experiments"):
# `ablation_lambda` (scores against lambda_PDE per PDE form), `pde_forms` (the study's flux-ratio
# form, the explicit-wind form and the control on all test times and on a strong-wind,
# weak-thermal-contrast subset), `transfer_regions` (workflow/rules/transfer.smk) and
# `experiments` (all of them).

EXPERIMENT_SECTIONS = ("experiments", "finetune", "models.pde_ldm.pde", "evaluation")


def ablation_models():
    """Every seed of every run the ablation draws (the control and the runs of each (form, lambda))."""
    from pdeldm.experiments import run_for

    experiments = config["experiments"]
    runs = {run_for(config, form, float(lam)) for form in experiments["forms"] for lam in [0.0, *experiments["lambdas"]]}
    return [m for m in RUN_MODELS if model_run(m) in runs]


def form_models():
    from pdeldm.experiments import run_for

    lam = float(config["models"]["pde_ldm"]["pde"]["lambda"])
    runs = {run_for(config, form, lam) for form in config["experiments"]["forms"]} | {config["finetune"]["control"]}
    return [m for m in RUN_MODELS if model_run(m) in runs]


rule ablation_lambda:
    message:
        "Lambda ablation: scores against lambda_PDE per PDE form"
    input:
        metric_csvs=metric_csvs(models=ablation_models()),
    output:
        out_csv=f"{RESULTS}/tables/ablation_lambda.csv",
        out_md=f"{RESULTS}/tables/ablation_lambda.md",
        out_tex=f"{RESULTS}/tables/ablation_lambda.tex",
        out_png=report(f"{RESULTS}/figures/ablation_lambda.png", caption="../report/ablation_lambda.rst",
                       category="Experiments"),
        out_tradeoff=report(f"{RESULTS}/figures/ablation_tradeoff.png", caption="../report/ablation_tradeoff.rst",
                            category="Experiments"),
    params:
        config=config_json(*EXPERIMENT_SECTIONS),
    log:
        f"{LOGS}/experiments/ablation_lambda.log",
    benchmark: benchmark_path("ablation_lambda")
    script:
        STAGE_SCRIPT


rule wind_contrast_conditions:
    message:
        "Finding the strong-wind, weak-thermal-contrast test times"
    input:
        unpack(store_paths),
        prediction=f"{RESULTS}/predictions/interpolation.nc",
    output:
        out_csv=f"{RESULTS}/experiments/wind_contrast_conditions.csv",
    params:
        config=config_json("experiments.subset"),
    log:
        f"{LOGS}/experiments/wind_contrast_conditions.log",
    benchmark: benchmark_path("wind_contrast_conditions")
    script:
        STAGE_SCRIPT


rule pde_forms:
    message:
        "PDE forms against the control, on all test times and on strong-wind, weak-contrast times"
    input:
        metric_csvs=metric_csvs(models=form_models()),
        conditions=f"{RESULTS}/experiments/wind_contrast_conditions.csv",
    output:
        out_csv=f"{RESULTS}/tables/pde_forms.csv",
        out_md=f"{RESULTS}/tables/pde_forms.md",
        out_png=report(f"{RESULTS}/figures/pde_forms.png", caption="../report/pde_forms.rst",
                       category="Experiments"),
    params:
        config=config_json(*EXPERIMENT_SECTIONS),
    log:
        f"{LOGS}/experiments/pde_forms.log",
    benchmark: benchmark_path("pde_forms")
    script:
        STAGE_SCRIPT


def experiment_outputs():
    return [f"{RESULTS}/tables/ablation_lambda.csv", f"{RESULTS}/figures/ablation_lambda.png",
            f"{RESULTS}/figures/ablation_tradeoff.png", f"{RESULTS}/tables/pde_forms.csv",
            f"{RESULTS}/figures/pde_forms.png", *transfer_outputs()]  # transfer.smk


rule experiments:
    message:
        "All experiments"
    input:
        experiment_outputs(),
