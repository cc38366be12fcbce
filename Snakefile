# pdeldm: PDE-informed latent diffusion downscaling of 2-m temperature, ERA5 -> COSMO-CLM.
# Thin entry point: configuration and validation, the rule files, the final targets.
# Run:  snakemake --cores all                (embedded twin, see README.md)
#       snakemake --cores all --configfile config/paper.yaml   (real data, paper scale)

from snakemake.utils import min_version

min_version("9.0")


# ---- load and validate configuration ---------------------------------------------------------
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


# ---- rules, one file per stage ---------------------------------------------------------------
include: "workflow/rules/data.smk"
include: "workflow/rules/realism.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/ensembles.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/versioning.smk"
include: "workflow/rules/costs.smk"


# ---- targets -----------------------------------------------------------------------------------
rule all:
    default_target: True
    input:
        final_outputs(),
        experiment_outputs(),
