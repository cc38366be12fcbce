# Realism of the twin: its monthly mean against a real COSMO-CLM monthly mean, region by region,
# at the scales below the coarse cell (pdeldm.data.twin.realism). Each region gets its own short
# twin run over the reference's month, so the check costs seconds per region and does not wait
# for the default region's multi-year twin.
import os
import sys

REALISM_REFERENCE = config["twin"]["realism"]["reference_file"]


def realism_regions():
    """The regions to compare (`twin.realism.regions`, or every configured region) with their boxes."""
    chosen = config["twin"]["realism"]["regions"] or list(config["data"]["regions"])
    return {name: config["data"]["regions"][name] for name in chosen}


def realism_outputs():
    """The check's outputs among the final targets: on the twin, where the reference file exists."""
    if config["data"]["source"] != "twin":
        return []
    if not os.path.isfile(REALISM_REFERENCE):
        print(f"Skipping the twin realism check: the real COSMO-CLM reference {REALISM_REFERENCE} is absent "
              "(Debian: apt-get install libncarg-data; or set twin.realism.reference_file).", file=sys.stderr)
        return []
    return [f"{RESULTS}/twin/realism.{ext}" for ext in ("csv", "md", "html", "png")]


rule twin_realism:
    message:
        "Comparing the twin with real COSMO-CLM ({input.reference}) over {params.n_regions} regions"
    input:
        static_source=config["paths"]["static_source"],
        reference=REALISM_REFERENCE,
    output:
        out_csv=f"{RESULTS}/twin/realism.csv",
        out_md=f"{RESULTS}/twin/realism.md",
        out_html=report(f"{RESULTS}/twin/realism.html", caption="../report/realism.rst", category="Twin realism"),
        out_png=report(f"{RESULTS}/twin/realism.png", caption="../report/realism.rst", category="Twin realism"),
    params:
        config=config_json("data.factor", "twin.params", "twin.realism"),
        regions=realism_regions(),
        n_regions=len(realism_regions()),
    log:
        f"{LOGS}/twin_realism.log",
    benchmark: benchmark_path("twin_realism")
    script:
        STAGE_SCRIPT
