# ERA5 from the Copernicus CDS (data.source: era5): one job per (variable group, year, month).
#
#   fetch_era5        -> {resources}/era5/{group}/era5_{group}_{year}_{month}.nc   (one CDS request)
#   merge_era5_month  -> {resources}/era5/era5_{year}_{month}.nc                   (all groups of a month)
#
# Needs the `era5` config block (workflow/schemas/config.schema.yaml, config/paper.yaml) and CDS credentials in CDSAPI_URL /
# CDSAPI_KEY or ~/.cdsapirc. Every fetch job holds one unit of the `cds` resource, so
# `--resources cds=4` caps the requests in flight (the CDS queues and throttles per user anyway).
# A failed month leaves no file behind. Only transient failures (network, server errors, broken
# downloads) are retried, `era5.retries` times, by the fetch job itself: Snakemake's `retries`
# would also re-queue permanent ones (rejected key, refused request, failed CDS job, wrong
# content), which the job reports with exit status 2 (75 for transient ones it gave up on). A job
# that finished on the CDS is downloaded again on a retry or rerun, never submitted again.
#
#   snakemake fetch_era5_all --resources cds=4   downloads (only) what is missing, e.g. before a
#                                                long run, or after deleting a broken download.
# Deleting a download whose merged month still exists does not refetch it on a plain run (Snakemake
# does not rebuild missing intermediates of up-to-date outputs); `fetch_era5_all` does, and the
# next plain run re-merges that month only if the new download differs.
#
# Why these two rules call the CLI (`python -m pdeldm.data.cds`) instead of `script: STAGE_SCRIPT`
# like every other rule: the stage dispatch (pdeldm.stages.run_from_snakemake) gives a stage only
# the rule's inputs, outputs, params and log, so that a job reruns exactly when something it reads
# changes. The client settings must reach the job WITHOUT being params (see ERA5_CLIENT below);
# the only other channel, `resources`, is read by schedulers and takes ints/strings, and it would
# need a dispatch path for this one rule. The exit status (2 permanent, 75 transient) would
# survive a stage (SystemExit), but the CLI is also how a fetch is run and debugged by hand, and
# `--printshellcmds` prints that exact command. This file is also included on its own (without
# common.smk, which defines STAGE_SCRIPT).
import shlex
import sys

import pandas as pd

from pdeldm.costs import job_record_path, records_root
from pdeldm.data.cds import group_spec

# Client settings: operational only, so they are passed in the shell template and a change does
# not count as a `params` change (which would re-download every month).
ERA5_CLIENT = {"retries": 2, "retry_max": 5, "sleep_max": 60, "timeout": 120}
ERA5_CLIENT.update({k: config.get("era5", {})[k] for k in ERA5_CLIENT if k in config.get("era5", {})})
ERA5_DIR = f"{config['paths']['resources']}/era5"
ERA5_LOGS = config["paths"].get("logs", "logs")

if "benchmark_path" not in globals():  # this file on its own (without common.smk) records its jobs' costs too

    def benchmark_path(rule_name, *wildcards):
        return job_record_path(records_root(ERA5_LOGS), rule_name, wildcards)



def era5_months():
    """(year, month) pairs to fetch: `era5.years` [first, last] if set, else the months of `data.period`."""
    years = config["era5"].get("years")
    if years:
        return [(y, m) for y in range(int(years[0]), int(years[-1]) + 1) for m in range(1, 13)]
    period = config["data"]["period"]
    months = pd.period_range(pd.Timestamp(period["start"]).to_period("M"),
                             pd.Timestamp(period["end"]).to_period("M"), freq="M")
    return [(p.year, p.month) for p in months]


def era5_group_file(group, year, month):
    return f"{ERA5_DIR}/{group}/era5_{group}_{int(year):04d}_{int(month):02d}.nc"


def era5_group_files():
    """Every per-group monthly download for the configured groups and period (none without groups)."""
    groups = config.get("era5", {}).get("groups") or {}
    return [era5_group_file(g, y, m) for y, m in era5_months() for g in groups] if groups else []


def era5_fetched_files():
    """One merged ERA5 file per month (all groups), as the store expects (docs/interfaces.md s. 2)."""
    return [f"{ERA5_DIR}/era5_{y:04d}_{m:02d}.nc" for y, m in era5_months()]


def era5_request_args(wildcards):
    """What is asked of the CDS for this group. A `params` value, so changing it refetches the group."""
    era5 = config["era5"]
    spec = group_spec(era5, wildcards.group)
    args = ["--group", wildcards.group, "--dataset", spec["dataset"],
            "--product-type", era5.get("product_type", "reanalysis"),
            "--variables", *spec["variables"], "--area", *(str(a) for a in era5["area"])]
    if spec["pressure_level"]:
        args += ["--pressure-level", *spec["pressure_level"]]
    if era5.get("times"):
        args += ["--times", *era5["times"]]
    return " ".join(shlex.quote(str(a)) for a in args)


rule fetch_era5:
    message:
        "Fetching ERA5 '{wildcards.group}' {wildcards.year}-{wildcards.month} from the CDS"
    output:
        f"{ERA5_DIR}/{{group}}/era5_{{group}}_{{year}}_{{month}}.nc",
    params:
        request=era5_request_args,
    log:
        f"{ERA5_LOGS}/fetch_era5/{{group}}_{{year}}_{{month}}.log",
    wildcard_constraints:
        group=r"[A-Za-z0-9_-]+",
        year=r"\d{4}",
        month=r"\d{2}",
    resources:
        cds=1,
    retries: 0  # the fetch retries transient failures itself (--retries), never permanent ones
    benchmark: benchmark_path("fetch_era5", "group", "year", "month")
    shell:
        "{sys.executable} -m pdeldm.data.cds {params.request}"
        " --year {wildcards.year} --month {wildcards.month} --retries {ERA5_CLIENT[retries]}"
        " --retry-max {ERA5_CLIENT[retry_max]} --sleep-max {ERA5_CLIENT[sleep_max]} --timeout {ERA5_CLIENT[timeout]}"
        " --out {output} --log {log}"


rule merge_era5_month:
    message:
        "Merging the ERA5 groups of {wildcards.year}-{wildcards.month}"
    input:
        lambda wc: [era5_group_file(g, wc.year, wc.month) for g in config["era5"]["groups"]],
    output:
        f"{ERA5_DIR}/era5_{{year}}_{{month}}.nc",
    log:
        f"{ERA5_LOGS}/merge_era5/{{year}}_{{month}}.log",
    wildcard_constraints:
        year=r"\d{4}",
        month=r"\d{2}",
    benchmark: benchmark_path("merge_era5_month", "year", "month")
    shell:
        "{sys.executable} -m pdeldm.data.cds merge --out {output} --log {log} {input}"


rule fetch_era5_all:
    message:
        "All ERA5 downloads for the configured groups and period"
    input:
        era5_group_files(),
