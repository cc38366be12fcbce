"""Transfer tables: means of the per-time CSVs, each region's interpolation as reference, paired intervals."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.evaluation.transfer import read_cases, region_summary, regions_markdown, transfer_paired, transfer_table

TIMES = pd.date_range("2003-05-01", periods=40, freq="19h").strftime("%Y-%m-%dT%H:%M:%S")


def _csv(tmp_path: Path, name: str, model: str, rmse: np.ndarray, seed: int | None = None,
         crps: np.ndarray | None = None) -> str:
    frame = pd.DataFrame({"time": TIMES, "model": model, "rmse": rmse, "mae": 0.8 * rmse,
                          "crps": np.full(len(TIMES), np.nan) if crps is None else crps})
    if seed is not None:
        frame.insert(2, "seed", seed)
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def cases(tmp_path: Path):
    rng = np.random.default_rng(3)
    files, cases = [], []
    for test, offset in (("a", 0.0), ("b", 0.5)):
        files.append(_csv(tmp_path, f"interp_{test}", "interpolation", 2.0 + offset + rng.random(40)))
        cases.append(("a", test, "interpolation"))
        for seed in (1, 2):
            files.append(_csv(tmp_path, f"ctl{seed}_{test}", "ldm_control", 1.0 + offset + rng.random(40), seed,
                              crps=0.5 + rng.random(40)))
            cases.append(("a", test, f"ldm_control/seed{seed}"))
            files.append(_csv(tmp_path, f"run{seed}_{test}", "pde_ldm_adv", 1.1 + offset + rng.random(40), seed,
                              crps=0.6 + rng.random(40)))
            cases.append(("a", test, f"pde_ldm_adv/seed{seed}"))
        for train in ("a", "b"):
            files.append(_csv(tmp_path, f"unet_{train}_{test}", "unet",
                              1.2 + offset + 0.3 * (train != test) + rng.random(40)))
            cases.append((train, test, "unet"))
    return cases, files


def test_table_numbers_are_means_of_the_per_time_csvs(cases):
    case_list, files = cases
    data = read_cases(case_list, files)
    table = transfer_table(data, ["rmse", "crps"]).set_index(["train", "test", "model"])
    for (train, test, key), path in zip(case_list, files, strict=True):
        model = key.split("/seed")[0]
        seeds = [f for (tr, te, k), f in zip(case_list, files, strict=True)
                 if (tr, te, k.split("/seed")[0]) == (train, test, model)]
        expected = pd.concat([pd.read_csv(f) for f in seeds]).groupby("time")["rmse"].mean().mean()
        assert table.loc[(train, test, model), "rmse"] == pytest.approx(expected, rel=1e-12)
        reference = pd.read_csv(files[case_list.index(("a", test, "interpolation"))])
        assert table.loc[(train, test, model), "rmse_vs_interpolation"] == pytest.approx(
            expected - reference["rmse"].mean(), rel=1e-12)
    # a deterministic model's CRPS is its mean absolute error
    interp = pd.read_csv(files[case_list.index(("a", "b", "interpolation"))])
    assert table.loc[("a", "b", "interpolation"), "crps"] == pytest.approx(interp["mae"].mean())
    assert (table["n_times"] == len(TIMES)).all()


def test_missing_reference_and_mismatched_files_are_named(cases):
    case_list, files = cases
    keep = [i for i, c in enumerate(case_list) if c != ("a", "b", "interpolation")]
    data = read_cases([case_list[i] for i in keep], [files[i] for i in keep])
    with pytest.raises(ValueError, match=r"no interpolation scores on test region\(s\) \['b'\]"):
        transfer_table(data, ["rmse"])
    with pytest.raises(ValueError, match=r"holds metrics of \['interpolation'\], expected 'unet'"):
        read_cases([("a", "a", "unet")], [files[0]])
    with pytest.raises(ValueError, match=r"1 cases but 2 metric files"):
        read_cases([("a", "a", "interpolation")], files[:2])


def test_paired_runs_against_the_control_and_transfer_against_training_at_home(cases):
    case_list, files = cases
    data = read_cases(case_list, files)
    table = transfer_paired(data, "a", ["pde_ldm_adv"], "ldm_control", ["unet"], ["rmse"], 7, 200, 0)
    pairs = set(zip(table["test"], table["model"], table["reference"], strict=True))
    assert pairs == {("a", "pde_ldm_adv@a", "ldm_control@a"), ("b", "pde_ldm_adv@a", "ldm_control@a"),
                     ("a", "unet@b", "unet@a"), ("b", "unet@a", "unet@b")}
    row = table[(table["test"] == "b") & (table["model"] == "unet@a")].iloc[0]
    home = pd.read_csv(files[case_list.index(("b", "b", "unet"))])["rmse"]
    away = pd.read_csv(files[case_list.index(("a", "b", "unet"))])["rmse"]
    assert row["difference"] == pytest.approx((away - home).mean())
    assert row["ci95_low"] <= row["difference"] <= row["ci95_high"]
    assert row["verdict"] == "worse"  # trained elsewhere: 0.3 K worse by construction


def test_region_summary_reads_height_and_land_fraction(tmp_path: Path):
    height = np.array([[0.0, 100.0], [200.0, 300.0]], dtype=np.float32)
    ds = xr.Dataset({"HSURF": (("rlat", "rlon"), height), "FR_LAND": (("rlat", "rlon"), np.array([[0, 1], [1, 1.0]])),
                     "lat": (("rlat", "rlon"), np.array([[40.0, 40], [41, 41]]))})
    ds.to_netcdf(tmp_path / "r.nc")
    row = region_summary({"r": tmp_path / "r.nc"}).iloc[0]
    assert (row["height_mean_m"], row["land_fraction"], row["lat_min"], row["lat_max"]) == (150.0, 0.75, 40.0, 41.0)
    assert row["height_std_m"] == pytest.approx(np.std(height))
    assert regions_markdown(region_summary({"r": tmp_path / "r.nc"})).splitlines()[-1] == "| r | 150 | 112 | 0.75 | 40.0-41.0 N |"
