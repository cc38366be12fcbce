# Data stages: static fields -> (twin | fetched ERA5 + COSMO-CLM files) -> regridded training store.
# On the twin every stage is per region (wildcard `region`): the models' region `data.region` and
# the other regions of the transfer experiment (`experiments.transfer.regions`). Real data has one
# region, the COSMO-CLM files' domain.

DATA_REGIONS = [REGION] + [r for r in config["experiments"]["transfer"]["regions"] if r != REGION]


wildcard_constraints:
    region="|".join(DATA_REGIONS),


def twin_era5_files(region=REGION):
    return [f"{RESOURCES}/twin/{region}/era5/era5_{y}_{m:02d}.nc" for y, m in MONTHS]


def twin_cosmo_files(region=REGION):
    return [f"{RESOURCES}/twin/{region}/cosmo/T_2M_{y}{m:02d}.nc" for y, m in MONTHS]


def era5_files_for_store(wildcards, region=None):
    """The ERA5 files of the store of `region` (the job's wildcard, by default)."""
    if config["data"]["source"] == "twin":
        return twin_era5_files(region or wildcards.region)
    return era5_fetched_files()


def cosmo_files_for_store(wildcards, region=None):
    if config["data"]["source"] == "twin":
        return twin_cosmo_files(region or wildcards.region)
    return sorted(glob.glob(config["cosmo"]["files"]))


def static_target_grid(wildcards):
    """A COSMO-CLM file that defines the paper's target grid (the glob itself if none exists yet,
    so that Snakemake reports it as the missing input)."""
    chosen = config["static_inputs"]["target_grid"]
    if chosen:
        return chosen
    files = sorted(glob.glob(config["cosmo"]["files"]))
    return files[0] if files else config["cosmo"]["files"]


def static_input_files(wildcards):
    """The source files named in `static_inputs` (so editing one reruns the remap)."""
    sources = {name: config["static_inputs"].get(name) for name in ("orography", "land_fraction", "land_cover")}
    return {f"{name}_file": spec["file"] for name, spec in sources.items() if spec}


if config["data"]["source"] == "twin":

    rule static_region:
        message:
            "Cutting region '{wildcards.region}' out of the COSMO-CLM EUR-11 static fields"
        input:
            source=config["paths"]["static_source"],
        output:
            out=f"{RESOURCES}/static/{{region}}.nc",
        params:
            region=lambda wildcards: region_box(wildcards.region),
        log:
            f"{LOGS}/static_region/{{region}}.log",
        benchmark: benchmark_path("static_region", "region")
        script:
            STAGE_SCRIPT

else:

    rule static_inputs:
        message:
            "Remapping the high-resolution static inputs onto the COSMO-CLM target grid"
        input:
            unpack(static_input_files),
            target_grid=static_target_grid,
        output:
            out=static_file(),
        params:
            config=config_json("static_inputs", "cosmo.variable"),
        log:
            f"{LOGS}/static_inputs.log",
        benchmark: benchmark_path("static_inputs")
        script:
            STAGE_SCRIPT


rule twin:
    message:
        "Integrating the embedded advection-diffusion twin over {wildcards.region} ({config[data][period][start]} to {config[data][period][end]})"
    input:
        static=f"{RESOURCES}/static/{{region}}.nc",
    output:
        era5=twin_era5_files("{region}"),
        cosmo=twin_cosmo_files("{region}"),
        diagnostics=f"{RESULTS}/twin/{{region}}_diagnostics.json",
    params:
        config=config_json("data.period", "twin.params", "twin.era5_resolution_deg"),
    priority: 3  # every training waits on the data: a region's twin and store before any model job
    log:
        f"{LOGS}/twin/{{region}}.log",
    benchmark: benchmark_path("twin", "region")
    script:
        STAGE_SCRIPT


rule store:
    message:
        "Regridding ERA5 onto the COSMO-CLM grid and writing the time-blocked training store"
    input:
        era5_files=era5_files_for_store,
        cosmo_files=cosmo_files_for_store,
        static=f"{RESOURCES}/static/{{region}}.nc",
    output:
        store_path=directory(store_paths(region="{region}")["store_path"]),
        meta_path=store_paths(region="{region}")["meta_path"],
    params:
        config=config_json("data"),
    priority: 3
    log:
        f"{LOGS}/store/{{region}}.log",
    benchmark: benchmark_path("store", "region")
    script:
        STAGE_SCRIPT
