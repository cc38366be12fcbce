"""Fixtures shared across test modules.

``twin_workflow`` runs the workflow's own code path once per session on a 32 x 32 twin region for
three days: twin -> store -> training of interpolation, unet and gan -> predictions of the test
day. ``pdeldm downscale`` is compared against it (tests/test_downscale.py) and its product files
are checked for CF compliance (tests/test_cf_compliance.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
TWIN_REGION = {"rlat0": -9.405, "rlon0": -8.245, "ny": 32, "nx": 32}
TWIN_SPLIT = {"train": ["2001-03-01", "2001-03-01"], "val": ["2001-03-02", "2001-03-02"],
              "test": ["2001-03-03", "2001-03-03"]}
TWIN_MODELS = ["interpolation", "unet", "gan"]


def _train_helpers():
    spec = importlib.util.spec_from_file_location("_train_helpers", Path(__file__).with_name("test_train.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_train_helpers", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def twin_workflow(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from pdeldm.data.static import extract_region
    from pdeldm.data.store import build_store
    from pdeldm.data.twin import simulate_twin
    from pdeldm.predict import predict
    from pdeldm.train import train

    root = tmp_path_factory.mktemp("twin_workflow")
    static = root / "static.nc"
    extract_region(REPO / "data" / "static" / "eur11_static.nc", TWIN_REGION, static)
    simulate_twin(static, "2001-03-01", "2001-03-03", 3, {"spinup_days": 0.5}, root / "era5", root / "cosmo", None)
    era5 = sorted((root / "era5").glob("*.nc"))
    store, meta = root / "store.zarr", root / "store.json"
    build_store(era5, sorted((root / "cosmo").glob("*.nc")), static, store, meta,
                {"factor": 8, "predictors": ["t2m", "u10", "v10"], "split": TWIN_SPLIT})
    cfg = _train_helpers().tiny_cfg()
    cfg["evaluation"] = {"time_stride": 5, "members": 1, "batch_size": 3}
    ckpts: dict[str, Path] = {}
    for name in TWIN_MODELS:
        out = root / "models" / name
        train(name, cfg, store, meta, {}, out / "model.ckpt", out / "metrics.csv", root / "work" / name, None)
        ckpts[name] = out / "model.ckpt"
        predict(name, cfg, store, meta, ckpts, root / "pred" / f"{name}.nc", None)
    return SimpleNamespace(root=root, static=static, era5=era5, cosmo=sorted((root / "cosmo").glob("*.nc")),
                           store=store, meta=meta, cfg=cfg, ckpts=ckpts)
