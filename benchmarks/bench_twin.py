"""Cost of the twin's integration and of the realism check's short January runs (not a test).

Times, on one region of the committed EUR-11 static fields (default: config.yaml's Italy, 96x96):
* the integration of ``--days`` days after the spin-up, reported as seconds per simulated year
  (target: the default 3-year run within 3 minutes on one idle core, i.e. <= 60 s per year);
* one realism-check month (spin-up + 31 days) for the region (target: <= 10 s on one idle core,
  so that the check of six regions adds about a minute to the default run).

    OMP_NUM_THREADS=1 python benchmarks/bench_twin.py --days 30
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pdeldm.data.static import region_static
from pdeldm.data.twin import TwinModel, merged_params, run_region
from pdeldm.data.twin.realism import twin_monthly_mean

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="italy")
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    static = region_static(ROOT / "data" / "static" / "eur11_static.nc", config["data"]["regions"][args.region])
    first = np.datetime64("2003-01-01T00:00:00", "s")
    n_hours = int(args.days * 24)
    model = TwinModel(static, merged_params({"spinup_days": 0.0}), int(config["seed"]), first)
    clock = time.perf_counter()
    run_region(model, first, n_hours)
    seconds = time.perf_counter() - clock
    print(f"integration: {seconds:6.2f} s for {args.days:g} days = {seconds / args.days * 365.25:6.1f} s per "
          f"simulated year ({model.substeps} sub-steps/h, {model.ny}x{model.nx} + {model.margin} margin)")
    clock = time.perf_counter()
    twin_monthly_mean(static, {}, int(config["seed"]), pd.Timestamp(first).strftime("%Y-%m"))
    print(f"realism month (spin-up + 31 days): {time.perf_counter() - clock:6.2f} s")


if __name__ == "__main__":
    main()
