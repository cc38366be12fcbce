"""Snakemake `script:` shim: every rule's code lives in pdeldm.stages (importable and tested)."""

from pdeldm.stages import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 - injected by Snakemake
