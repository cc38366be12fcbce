# Versioning with DVC. Snakemake stays the only orchestrator: DVC stores and restores files.
#
#   snakemake --cores 1 dvc_track    `dvc add` the boundary data and the released model bundle,
#                                    write {results}/release.yaml (config, versions, DVC hashes);
#   git commit -m "..." && dvc push  then share them (remote: .dvc/config, or $PDELDM_DVC_REMOTE).
#
# A collaborator:  git clone ... && dvc pull && snakemake --touch && snakemake --cores N  (reruns nothing).
import os


def dvc_boundary_paths():
    """Directories of the ERA5 and COSMO-CLM files the stores read, and the paper's static inputs."""
    files = [f for region in DATA_REGIONS for f in era5_files_for_store(None, region) + cosmo_files_for_store(None, region)]
    paths = sorted({os.path.dirname(f) for f in files})
    if config["data"]["source"] != "twin":
        paths += sorted(static_input_files(None).values())
    return paths


def dvc_release_paths():
    """The released model bundle: checkpoints and training metrics, test metrics, and the
    directories of every final output (tables, figures, report pages), so that a collaborator's
    `snakemake` finds the default target complete and rebuilds none of the unversioned
    intermediates (store, predictions) behind it."""
    directories = {os.path.dirname(f) for f in final_outputs()}
    return sorted(directories | {f"{RESULTS}/models", f"{RESULTS}/metrics"})


def dvc_release_files(wildcards):
    checkpoints = [checkpoint(m) for m in TRAINED + RUN_MODELS]
    training_metrics = [f"{RESULTS}/models/{m}/training_metrics.csv" for m in TRAINED + RUN_MODELS]
    return final_outputs() + checkpoints + training_metrics + metric_csvs()


rule dvc_track:
    message:
        "Versioning the boundary data and the released models with DVC"
    input:
        # the input data of every region's store (the transfer experiment's regions too)
        era5_files=lambda wildcards: [f for r in DATA_REGIONS for f in era5_files_for_store(wildcards, r)],
        cosmo_files=lambda wildcards: [f for r in DATA_REGIONS for f in cosmo_files_for_store(wildcards, r)],
        release_files=dvc_release_files,
    output:
        manifest=f"{RESULTS}/release.yaml",
    params:
        paths=dvc_boundary_paths() + dvc_release_paths(),
        config=json.dumps(config, sort_keys=True),
    log:
        f"{LOGS}/dvc_track.log",
    benchmark: benchmark_path("dvc_track")
    script:
        STAGE_SCRIPT
