"""summarise: mean ± std per model and metric, best per column in bold (Markdown and LaTeX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdeldm.evaluation.tables import best_models, summarise, summary_frame


def _toy_csvs(tmp: Path) -> list[Path]:
    times = pd.date_range("2003-05-01", periods=4, freq="D").strftime("%Y-%m-%dT%H:%M:%S")
    rows = {
        # pde_ldm_flux: best rmse, r2; unet: smallest |bias| (negative); ldm: ssim best.
        "unet": dict(rmse=[1.0, 1.2, 1.1, 0.9], bias=[-0.05] * 4, r2=[0.90] * 4, ssim=[0.80] * 4),
        "pde_ldm_flux": dict(rmse=[0.6, 0.8, 0.7, 0.7], bias=[0.20] * 4, r2=[0.95] * 4, ssim=[0.85] * 4,
                        crps=[0.4, 0.5, 0.45, 0.45], spread_skill=[0.9] * 4),
        "ldm": dict(rmse=[0.9, 0.9, 0.9, 0.9], bias=[-0.30] * 4, r2=[0.93] * 4, ssim=[0.88] * 4,
                    crps=[0.5] * 4, spread_skill=[0.7] * 4),
    }
    paths = []
    for model, cols in rows.items():
        frame = pd.DataFrame({"time": times, "model": model, **cols})
        path = tmp / f"{model}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_summary_csv_means_and_order(tmp_path: Path) -> None:
    paths = _toy_csvs(tmp_path)
    summarise(paths, tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.tex")
    table = pd.read_csv(tmp_path / "s.csv")
    assert list(table["model"]) == ["unet", "ldm", "pde_ldm_flux"]  # fixed study order
    row = table.set_index("model").loc["pde_ldm_flux"]
    assert row["rmse_mean"] == pytest.approx(0.7)
    assert row["rmse_std"] == pytest.approx(np.std([0.6, 0.8, 0.7, 0.7], ddof=1))
    assert np.isnan(table.set_index("model").loc["unet", "crps_mean"])  # deterministic: no CRPS
    assert (table["n_times"] == 4).all()


def test_best_per_column_direction(tmp_path: Path) -> None:
    table, metrics = summary_frame([pd.read_csv(p) for p in _toy_csvs(tmp_path)])
    assert metrics[:4] == ["rmse", "bias", "r2", "ssim"]
    assert best_models(table, "rmse", 3) == {"pde_ldm_flux"}
    assert best_models(table, "r2", 3) == {"pde_ldm_flux"}
    assert best_models(table, "ssim", 3) == {"ldm"}
    assert best_models(table, "bias", 3) == {"unet"}  # smallest |bias|, although negative
    assert best_models(table, "spread_skill", 3) == {"pde_ldm_flux"}  # closest to 1


def test_markdown_and_latex(tmp_path: Path) -> None:
    summarise(_toy_csvs(tmp_path), tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.tex")
    md = (tmp_path / "s.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 3
    assert len({line.count("|") for line in lines}) == 1  # rectangular
    pde_line = next(line for line in lines if line.startswith("| PDE-LDM, study flux ratio"))
    assert "**0.700** ± 0.082" in pde_line
    assert "**-0.050**" in next(line for line in lines if line.startswith("| UNet"))

    tex = (tmp_path / "s.tex").read_text()
    assert r"\begin{tabular}" in tex and tex.rstrip().endswith(r"\end{tabular}")
    assert r"\textbf{0.700} $\pm$ 0.082" in tex
    body = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert len(body) == 1 + 3 and len({line.count("&") for line in body}) == 1
    assert "pde_ldm" not in tex and "PDE-LDM" in tex  # labels, no unescaped underscores
    assert tex.count("{") == tex.count("}")


def test_precision_follows_magnitude(tmp_path: Path) -> None:
    times = ["2003-05-01T00:00:00", "2003-05-02T00:00:00"]
    paths = []
    for model, flux, ssd in (("unet", [2000.0, 2200.0], [0.004, 0.006]), ("gan", [1000.0, 1200.0], [0.002, 0.002])):
        path = tmp_path / f"{model}.csv"
        pd.DataFrame({"time": times, "model": model, "study_flux_ratio": flux, "spectral_slope_diff": ssd}).to_csv(path)
        paths.append(path)
    summarise(paths, tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.tex")
    md = (tmp_path / "s.md").read_text()
    assert "Study FluxRatio [px] (not ↓)" in md and "| 1100 ± 141" in md  # no decimals, never bold
    assert "0.0050 ±" in md and "**0.0020**" in md  # small column: more decimals
    assert pd.read_csv(tmp_path / "s.csv").set_index("model").loc["gan", "study_flux_ratio_mean"] == pytest.approx(1100)


def test_truth_row_is_a_reference_and_seeds_are_pooled(tmp_path: Path) -> None:
    times = ["2003-05-01T00:00:00", "2003-05-02T00:00:00"]
    frames = [pd.DataFrame({"time": times, "model": "truth", "rmse": [0.0, 0.0], "pde_residual": [0.1, 0.1]})]
    for seed, rmse in ((0, [1.0, 1.2]), (1, [0.8, 1.0])):
        frames.append(pd.DataFrame({"time": times, "model": "ldm_control", "seed": seed, "rmse": rmse,
                                    "pde_residual": [0.3, 0.5]}))
    table, metrics = summary_frame(frames)
    assert "seed" not in metrics
    row = table.set_index("model").loc["ldm_control"]
    assert row["n_seeds"] == 2 and row["n_times"] == 2 and row["rmse_mean"] == pytest.approx(1.0)
    assert best_models(table, "rmse", 3) == {"ldm_control"}  # the truth is never "best"
    assert best_models(table, "pde_residual", 3) == {"ldm_control"}


def test_summary_spread_skill_is_pooled_over_times_not_a_mean_of_ratios(tmp_path: Path) -> None:
    # A quiet time (error 0.1 K, ratio 2) and a busy one (error 2 K, ratio 0.5): the mean of ratios is
    # 1.25, but the pooled spread (sqrt of the mean variance) is far below the pooled error.
    times = ["2003-05-01T00:00:00", "2003-05-02T11:00:00"]
    frame = pd.DataFrame({"time": times, "model": "ldm", "rmse": [0.2, 2.5], "spread_skill": [2.0, 0.5],
                          "rmse_ensmean": [0.1, 2.0]})
    table, _ = summary_frame([frame])
    spread = np.array([2.0 * 0.1, 0.5 * 2.0])
    expected = np.sqrt(np.mean(spread**2) / np.mean(np.array([0.1, 2.0]) ** 2))
    assert table.loc[0, "spread_skill_mean"] == pytest.approx(expected)
    assert expected < 0.55
