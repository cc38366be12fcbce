"""Snakemake `script:` shim: every rule's code lives in pdeldm.stages (importable and tested)."""

import os

# BLAS/OpenMP pools sized to the job's threads before numpy/torch load: oversubscribed OpenBLAS
# busy-waits and made the twin 2.5x slower when jobs ran side by side.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = str(snakemake.threads)  # noqa: F821 - injected by Snakemake

from pdeldm.stages import run_from_snakemake  # noqa: E402

run_from_snakemake(snakemake)  # noqa: F821
