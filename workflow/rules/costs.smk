# Where the time goes: every job's `benchmark:` record (benchmark_path in common.smk) and its stage's
# own record (pdeldm.costs), collected once every other result of the run is built (the experiments
# too), and the report's page on them (category Costs of `snakemake --report results/report.html`).


rule job_costs:
    message:
        "Collecting what every job of the run cost"
    input:
        pipeline_outputs() + experiment_outputs(),
    output:
        out_csv=f"{RESULTS}/benchmarks/jobs.csv",
        out_summary=f"{RESULTS}/benchmarks/jobs_summary.json",
    params:
        records=BENCHMARKS,
    resources:
        shared_cores=shared_cores,
    log:
        f"{LOGS}/job_costs.log",
    benchmark: benchmark_path("job_costs")
    script:
        STAGE_SCRIPT


rule figure_job_costs:
    message:
        "Plotting where the time and memory of the run went"
    input:
        jobs_csv=f"{RESULTS}/benchmarks/jobs.csv",
        summary_json=f"{RESULTS}/benchmarks/jobs_summary.json",
    output:
        out_png=report(f"{RESULTS}/figures/job_costs.png", caption="../report/job_costs.rst", category="Costs"),
        out_html=report(f"{RESULTS}/report/costs.html", caption="../report/costs.rst", category="Costs"),
    log:
        f"{LOGS}/figures/job_costs.log",
    benchmark: benchmark_path("figure_job_costs")
    script:
        STAGE_SCRIPT
