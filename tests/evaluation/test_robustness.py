"""The robustness table: scores with the store's and with a perfect coarse input, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdeldm.evaluation.robustness import write_robustness


def _metrics(path: Path, model: str, rmse: list[float], crps: list[float] | None = None) -> Path:
    frame = pd.DataFrame({"time": [f"2003-05-0{i + 1}" for i in range(len(rmse))], "model": model, "rmse": rmse,
                          "mae": [0.8 * r for r in rmse]})
    if crps is not None:
        frame["crps"] = crps
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_robustness_table_pairs_the_inputs_per_model(tmp_path: Path) -> None:
    store = [_metrics(tmp_path / "store" / "unet.csv", "unet", [1.0, 1.2]),
             _metrics(tmp_path / "store" / "interpolation.csv", "interpolation", [2.0, 2.0]),
             _metrics(tmp_path / "store" / "ldm.csv", "ldm", [1.1, 1.1], crps=[0.5, 0.7])]
    perfect = [_metrics(tmp_path / "perfect" / "ldm.csv", "ldm", [1.6, 1.8], crps=[0.9, 0.9]),
               _metrics(tmp_path / "perfect" / "unet.csv", "unet", [1.5, 1.7]),
               _metrics(tmp_path / "perfect" / "interpolation.csv", "interpolation", [1.0, 1.0])]
    out = {ext: tmp_path / f"robustness.{ext}" for ext in ("csv", "md", "html")}
    table = write_robustness(store, perfect, out["csv"], out["md"], out["html"])
    assert list(table["model"]) == ["interpolation", "unet", "ldm"]  # the project's model order
    unet = table.set_index("model").loc["unet"]
    assert unet["rmse_store"] == pytest.approx(1.1) and unet["rmse_perfect"] == pytest.approx(1.6)
    assert unet["rmse_change"] == pytest.approx(0.5) and np.isnan(unet["crps_store"])
    assert table.set_index("model").loc["ldm", "crps_change"] == pytest.approx(0.3)
    assert pd.read_csv(out["csv"]).shape[0] == 3
    markdown = out["md"].read_text()
    assert "| unet | 1.100 | 1.600 | +0.500 |" in markdown and "| –" in markdown
    assert "<table" in out["html"].read_text()
