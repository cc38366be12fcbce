"""From prediction files to the ensemble and extremes tables and figures, on a small synthetic store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.evaluation.calibration import verify_prediction
from pdeldm.evaluation.climatology import write_climatology
from pdeldm.evaluation.ensembles import compare_ensembles
from pdeldm.evaluation.extremes import score_extremes, select_cases
from pdeldm.plotting.ensembles import plot_ensembles
from pdeldm.plotting.extremes import plot_case_maps, plot_extreme_scores

from test_evaluate import make_store, write_prediction  # noqa: E402  (tests/evaluation on sys.path)

N_TIMES = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ensembles")
    store, meta, truth = make_store(tmp, n_times=N_TIMES, seed=3)
    meta_dict = json.loads(meta.read_text())
    meta_dict["splits"] = {"train": [0, 20], "test": [20, N_TIMES]}
    meta.write_text(json.dumps(meta_dict))
    climatology = tmp / "climatology.nc"
    write_climatology(store, meta, {"warm": 0.9, "hot": 0.99, "cold": 0.01}, climatology)
    times = pd.DatetimeIndex(xr.open_zarr(store)["time"].values)[20:]
    test = truth[20:].astype(np.float64)
    rng = np.random.default_rng(4)
    sigma = 0.8
    centre = test + sigma * rng.standard_normal(test.shape)  # what the inputs determine
    truth_noise = test - centre
    files = {
        # calibrated: members drawn like the truth around the centre
        "ldm": centre[None] + sigma * rng.standard_normal((6, *test.shape)),
        # under-dispersive: a third of the spread
        "ldm_control": centre[None] + sigma / 3 * rng.standard_normal((6, *test.shape)),
        "unet": centre[None],
    }
    paths = {}
    for model, fields in files.items():
        path = write_prediction(tmp / f"{model}.nc", model, fields, times)
        paths[model] = {"prediction": path, "times": tmp / f"{model}_times.csv", "counts": tmp / f"{model}_counts.json"}
        verify_prediction(path, store, meta, climatology, paths[model]["times"], paths[model]["counts"], seed=1)
    assert np.allclose(truth_noise.std(), sigma, rtol=0.05)
    return {"tmp": tmp, "store": store, "meta": meta, "climatology": climatology, "paths": paths}


def test_ensemble_table_ranks_calibration_and_the_zero_spread_reference(workspace: dict) -> None:
    tmp, paths = workspace["tmp"], workspace["paths"]
    models = ["unet", "ldm", "ldm_control"]
    compare_ensembles([paths[m]["times"] for m in models], [paths[m]["counts"] for m in models], models,
                      tmp / "ens.csv", tmp / "ens.md", tmp / "ens.json", block_days=1, samples=300, seed=0)
    table = pd.read_csv(tmp / "ens.csv").set_index("model")
    assert table.loc["ldm", "spread_skill"] == pytest.approx(1.0, abs=0.1)
    assert table.loc["ldm", "spread_skill_ci95_low"] < 1.0 < table.loc["ldm", "spread_skill_ci95_high"]
    assert table.loc["ldm_control", "spread_skill"] < 0.5 and table.loc["ldm_control", "spread_skill_ci95_high"] < 0.6
    assert table.loc["ldm_control", "rank_shape"].startswith("U-shaped") and table.loc["ldm", "rank_shape"] == "flat"
    assert table.loc["unet", "spread"] == 0.0
    assert table.loc["unet", "crps"] == pytest.approx(table.loc["unet", "mae_member0"])
    assert table.loc["ldm", "crps"] < table.loc["ldm_control", "crps"] < table.loc["unet", "crps"]
    md = (tmp / "ens.md").read_text()
    assert "U-shaped" in md and md.count("\n|") >= 4
    plot_ensembles(tmp / "ens.json", tmp / "ens.png")
    assert (tmp / "ens.png").read_bytes()[:8] == PNG_MAGIC


def test_extremes_table_and_figures(workspace: dict) -> None:
    tmp, paths = workspace["tmp"], workspace["paths"]
    models = ["unet", "ldm", "ldm_control"]
    metrics = []
    for model in models:  # per-time metric rows as evaluate writes them (only what extremes reads)
        times = pd.read_csv(paths[model]["times"])["time"]
        frame = pd.DataFrame({"time": times, "model": model, "rmse": np.linspace(0.5, 1.0, len(times)),
                              "spectral_lsd": 1.0, "grad_w1": 0.01, "pde_residual": np.nan})
        metrics.append(tmp / f"{model}_metrics.csv")
        frame.to_csv(metrics[-1], index=False)
    score_extremes([paths[m]["times"] for m in models], models, metrics, tmp / "ext.csv", tmp / "ext.md",
                   tmp / "cases.json", case_fraction=0.25, block_days=1, samples=200, seed=0)
    table = pd.read_csv(tmp / "ext.csv")
    assert {"event:hot", "event:cold", "times:hottest", "times:coldest", "times:all"} <= set(table["scope"])
    hottest = table[(table["model"] == "ldm") & (table["scope"] == "times:hottest") & (table["metric"] == "rmse")]
    assert hottest["n_times"].iloc[0] == 5  # a quarter of 20 test times
    rates = table[(table["scope"] == "event:hot") & (table["metric"] == "base_rate")]["value"]
    assert rates.nunique() == 1  # the events are the truth's: the same for every model
    cases = json.loads((tmp / "cases.json").read_text())
    plot_case_maps([paths[m]["prediction"] for m in models], workspace["store"], workspace["climatology"],
                   tmp / "cases.json", tmp / "maps.png")
    plot_extreme_scores(tmp / "ext.csv", tmp / "scores.png")
    for png in ("maps.png", "scores.png"):
        assert (tmp / png).read_bytes()[:8] == PNG_MAGIC
    assert cases["hottest_case_mean_K"] > cases["coldest_case_mean_K"]


def test_case_selection() -> None:
    series = pd.Series([3.0, 1.0, 4.0, 1.5, 9.0, 2.6], index=[f"t{i}" for i in range(6)])
    cases = select_cases(series, 0.34)
    assert cases["hottest_case"] == "t4" and cases["coldest_case"] == "t1"
    assert cases["hottest_times"] == ["t0", "t2", "t4"] and cases["coldest_times"] == ["t1", "t3", "t5"]
    with pytest.raises(ValueError, match="case_fraction"):
        select_cases(series, 0.9)


def test_a_threshold_of_another_region_is_refused(workspace: dict, tmp_path: Path) -> None:
    other = tmp_path / "clim.nc"
    xr.Dataset({"threshold_warm": (("rlat", "rlon"), np.zeros((4, 4)))}).to_netcdf(other)
    paths = workspace["paths"]["ldm"]
    with pytest.raises(InputError, match="rebuild it for this region"):
        verify_prediction(paths["prediction"], workspace["store"], workspace["meta"], other, tmp_path / "t.csv",
                          tmp_path / "c.json")
    assert not (tmp_path / "t.csv").exists()
