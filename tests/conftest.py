"""Fixtures shared across test packages.

``ci_twin_store``/``wrong_field_family``: the CI twin region's store and a family of wrong fields
(physics tests). ``twin_workflow`` runs the workflow's own code path on a 32 x 32 twin region for
three days: twin -> store -> training of interpolation, unet and gan -> predictions of the test
day; ``pdeldm downscale`` is compared against it (tests/test_downscale.py) and its product files
are checked for CF compliance (tests/test_cf_compliance.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pdeldm.config import load_config

REPO = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO / "config" / "ci.yaml"


@pytest.fixture(scope="session")
def ci_twin_store(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A twin of the CI region (64x64) over two months, written and stored like the workflow does.

    Train 2001-01-01..02-14, val 02-15..21, test 02-22..28; the twin's own parameters are the
    defaults (``twin.params`` of the CI config), so the physics tests can compare against them.
    """
    from pdeldm.data.static import extract_region
    from pdeldm.data.store import build_store
    from pdeldm.data.twin import simulate_twin

    cfg = load_config(CI_CONFIG)
    root = tmp_path_factory.mktemp("ci_twin")
    region = cfg["data"]["regions"][cfg["data"]["region"]]
    static = root / "static.nc"
    extract_region(REPO / cfg["paths"]["static_source"], region, static)
    start, end = "2001-01-01", "2001-02-28"
    files = simulate_twin(static, start, end, int(cfg["seed"]), cfg["twin"]["params"], root / "era5", root / "cosmo",
                          None, era5_resolution_deg=float(cfg["twin"]["era5_resolution_deg"]))
    era5 = sorted(p for p in files if p.parent.name == "era5")
    cosmo = sorted(p for p in files if p.parent.name == "cosmo")
    split = {"train": ["2001-01-01", "2001-02-14"], "val": ["2001-02-15", "2001-02-21"],
             "test": ["2001-02-22", "2001-02-28"]}
    data = cfg["data"]
    store, meta = root / "store.zarr", root / "store.json"
    build_store(era5, cosmo, static, store, meta, {"factor": data["factor"], "predictors": data["predictors"],
                                                   "static_vars": data["static_vars"],
                                                   "regrid_method": data["regrid_method"], "split": split})
    return SimpleNamespace(root=root, static=static, store=store, meta=meta, cfg=cfg, start=start, split=split)


WRONG_FIELDS = ("nearest", "bilinear", "bicubic", "smoothed_1", "smoothed_2", "noisy_0.5K", "flux_ratio_optimised")


def _flux_ratio_optimised(truth: np.ndarray, coarse: np.ndarray, dx: float, dy: float, factor: int,
                          steps: int = 50) -> np.ndarray:
    """The truth after ``steps`` of gradient descent (Adam, 0.02 K steps) on the study's flux-ratio
    loss against the coarse input (16-px cells, boundary-pixel sampling, K)."""
    import torch

    from pdeldm.physics import flux_ratio_loss

    field = torch.tensor(truth[None, None], dtype=torch.float64, requires_grad=True)
    reference = torch.tensor(coarse[None, None], dtype=torch.float64)
    optimiser = torch.optim.Adam([field], lr=0.02)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = flux_ratio_loss(field, reference, cell=2 * factor, dx=dx, dy=dy, sampling="pixels")
        loss.backward()
        optimiser.step()
    return field.detach().numpy()[0, 0]


@pytest.fixture(scope="session")
def wrong_field_family(ci_twin_store: SimpleNamespace) -> SimpleNamespace:
    """20 hours of the CI twin's truth with their neighbours, wind, coarse input and wrong fields.

    ``fields[name][k]`` for ``name`` in ``("truth", *WRONG_FIELDS)``: interpolations of the coarse
    t2m (nearest, bilinear, bicubic), the truth Gaussian-smoothed by 1 and 2 cells, the truth plus
    0.5 K white noise, and the truth after 50 gradient steps on the study's flux-ratio loss.
    """
    import pandas as pd
    import scipy.ndimage as ndi
    import xarray as xr

    from pdeldm.io import read_json

    meta = read_json(ci_twin_store.meta)
    factor, dx, dy = int(meta["factor"]), float(meta["dx_m"]), float(meta["dy_m"])
    ds = xr.open_zarr(ci_twin_store.store)
    i0, i1 = meta["splits"]["test"]
    indices = np.linspace(i0 + 1, i1 - 2, 20).round().astype(int)
    rng = np.random.default_rng(20)
    out = SimpleNamespace(times=pd.DatetimeIndex(ds["time"].values[indices]), factor=factor, dx=dx, dy=dy,
                          prev=[], next=[], wind=[], coarse_nearest=[], fields={"truth": []}, meta=meta)
    out.fields.update({name: [] for name in WRONG_FIELDS})
    predictors = list(meta["predictors"])
    for i in indices:
        truth = ds["target"][i].values.astype(np.float64)
        coarse = ds["coarse"][i].values[predictors.index("t2m")].astype(np.float64)
        nearest = np.kron(coarse, np.ones((factor, factor)))
        out.prev.append(ds["target"][i - 1].values.astype(np.float64))
        out.next.append(ds["target"][i + 1].values.astype(np.float64))
        out.wind.append(ds["wind"][i].values.astype(np.float64))
        out.coarse_nearest.append(nearest)
        out.fields["truth"].append(truth)
        out.fields["nearest"].append(nearest)
        out.fields["bilinear"].append(ndi.zoom(coarse, factor, order=1, mode="nearest", grid_mode=True))
        out.fields["bicubic"].append(ndi.zoom(coarse, factor, order=3, mode="nearest", grid_mode=True))
        out.fields["smoothed_1"].append(ndi.gaussian_filter(truth, 1.0, mode="nearest"))
        out.fields["smoothed_2"].append(ndi.gaussian_filter(truth, 2.0, mode="nearest"))
        out.fields["noisy_0.5K"].append(truth + 0.5 * rng.standard_normal(truth.shape))
        out.fields["flux_ratio_optimised"].append(_flux_ratio_optimised(truth, nearest, dx, dy, factor))
    return out


@pytest.fixture(scope="session")
def ci_twin_fit(ci_twin_store: SimpleNamespace) -> dict:
    """The identified equation of the CI twin store (the physics section of the CI config)."""
    from pdeldm.physics.identification import identify_coefficients

    return identify_coefficients(ci_twin_store.store, ci_twin_store.meta, dict(ci_twin_store.cfg["physics"], seed=0))


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
