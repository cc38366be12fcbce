# Data stages: static fields -> (twin | fetched ERA5 + COSMO-CLM files) -> regridded training store.


def twin_era5_files():
    return [f"{RESOURCES}/twin/{REGION}/era5/era5_{y}_{m:02d}.nc" for y, m in MONTHS]


def twin_cosmo_files():
    return [f"{RESOURCES}/twin/{REGION}/cosmo/T_2M_{y}{m:02d}.nc" for y, m in MONTHS]


def era5_files_for_store(wildcards):
    if config["data"]["source"] == "twin":
        return twin_era5_files()
    return era5_fetched_files()


def cosmo_files_for_store(wildcards):
    if config["data"]["source"] == "twin":
        return twin_cosmo_files()
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
            "Cutting region '{REGION}' out of the COSMO-CLM EUR-11 static fields"
        input:
            source=config["paths"]["static_source"],
        output:
            out=f"{RESOURCES}/static/{REGION}.nc",
        params:
            region=region_box(),
        log:
            f"{LOGS}/static_region.log",
        benchmark: benchmark_path("static_region")
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
        "Integrating the embedded advection-diffusion twin over {REGION} ({config[data][period][start]} to {config[data][period][end]})"
    input:
        static=static_file(),
    output:
        era5=twin_era5_files(),
        cosmo=twin_cosmo_files(),
        diagnostics=f"{RESULTS}/twin/{REGION}_diagnostics.json",
    params:
        config=config_json("data.period", "twin.params", "twin.era5_resolution_deg"),
        era5_dir=f"{RESOURCES}/twin/{REGION}/era5",
        cosmo_dir=f"{RESOURCES}/twin/{REGION}/cosmo",
    log:
        f"{LOGS}/twin.log",
    benchmark: benchmark_path("twin")
    script:
        STAGE_SCRIPT


rule store:
    message:
        "Regridding ERA5 onto the COSMO-CLM grid and writing the time-blocked training store"
    input:
        era5_files=era5_files_for_store,
        cosmo_files=cosmo_files_for_store,
        static=static_file(),
    output:
        store_path=directory(store_paths()["store_path"]),
        meta_path=store_paths()["meta_path"],
    params:
        config=config_json("data"),
    log:
        f"{LOGS}/store.log",
    benchmark: benchmark_path("store")
    script:
        STAGE_SCRIPT
