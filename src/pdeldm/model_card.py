"""What a final checkpoint knows about how it was made: data, grid, training config and metrics.

Training writes :func:`training_record` into the checkpoint's ``info`` (next to the best epoch and
validation loss), so that a checkpoint can be used and described without the store or the config:

* ``info["data"]``: the store's data specification -- factor, predictors and static fields with
  their normalisation (train period), regrid method, sub-cell sampling, NaN fills, time step, the
  first store time and the split dates -- and the fine grid (``rlat``/``rlon`` values and attributes,
  grid mapping). ``pdeldm downscale`` regrids new ERA5 files with exactly these settings and
  checks new inputs against them.
* ``info["config"]``: the whole validated config of the training run;
* ``info["metrics"]``: the per-epoch rows of the training metrics CSV.

:func:`describe` renders all of it for ``pdeldm info``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pdeldm.errors import InputError

#: Store defaults for meta files written before they were recorded (see pdeldm.data.store).
_STORE_DEFAULTS: dict[str, Any] = {"regrid_method": "conservative", "supersample": 4, "fill_values": {"sst": 271.35},
                                   "wind_frame": "grid", "time_step": "1h"}


def data_record(store: str | os.PathLike[str], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The data specification and grid of a store (its meta JSON and coordinates), JSON-able."""
    from pdeldm.predict import store_coords

    coords = store_coords(store)
    times = coords["time"]
    record = {key: meta[key] for key in ("factor", "dx_m", "dy_m", "shape", "coarse_shape", "predictors",
                                         "static_vars", "norm", "splits", "split_dates", "n_times") if key in meta}
    for key, default in _STORE_DEFAULTS.items():
        record[key] = meta.get(key, default)
    record["time0"] = str(np.datetime_as_string(times[0], unit="s")) if len(times) else None
    record["grid"] = {
        "rlat": [float(v) for v in coords["rlat"]],
        "rlon": [float(v) for v in coords["rlon"]],
        "attrs": coords["attrs"],
        "grid_mapping": dict(coords["grid_mapping"]),
    }
    return record


def training_record(cfg: Mapping[str, Any], store: str | os.PathLike[str], meta: Mapping[str, Any],
                    metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"data", "config", "metrics"}`` for a checkpoint's ``info`` (see the module docstring).

    Plain JSON types only (numpy scalars become floats): checkpoints are read with
    ``torch.load(weights_only=True)``.
    """
    record = {"data": data_record(store, meta), "config": dict(cfg), "metrics": [dict(row) for row in metrics]}
    return json.loads(json.dumps(record, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def data_of(info: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The data record of a checkpoint's ``info``, or an InputError saying the checkpoint predates it."""
    data = info.get("data")
    if not isinstance(data, Mapping) or "grid" not in data:
        raise InputError(
            f"{path} has no record of its training data (grid, normalisation): it was written by an older "
            "pdeldm; retrain it (snakemake --forcerun train) to use it outside the workflow"
        )
    return dict(data)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _lines(mapping: Mapping[str, Any], indent: str = "  ") -> list[str]:
    out = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.append(f"{indent}{key}:")
            out.extend(_lines(value, indent + "  "))
        else:
            out.append(f"{indent}{key}: {_fmt(value)}")
    return out


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Model, data spec, training config and metrics of a final checkpoint, as a JSON-able dict."""
    import torch

    from pdeldm.models.registry import read_checkpoint

    ckpt = read_checkpoint(path)
    state = ckpt["state_dict"]
    n_params = int(sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()))
    info = dict(ckpt.get("info") or {})
    data = info.pop("data", None)
    config = info.pop("config", None)
    metrics = info.pop("metrics", None)
    hp = ckpt["hparams"]
    model: dict[str, Any] = {"name": ckpt["model"], "parameters (weights and buffers)": n_params,
                             "built on": _dependencies(hp)}
    return {"checkpoint": str(Path(path)), "model": model, "hyper-parameters": hp.get("model") or {},
            "training": info, "data": data, "config": config, "metrics": metrics}


def _dependencies(hp: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for name, sub in (hp.get("sub") or {}).items():
        names.append(name)
        names.extend(n for n in _dependencies(sub) if n not in names)
    return names


def render(card: Mapping[str, Any]) -> str:
    """Readable text of :func:`describe` (grid values summarised, metrics as a table)."""
    lines = [f"checkpoint: {card['checkpoint']}", "model:"]
    lines += _lines(card["model"])
    lines.append("hyper-parameters:")
    lines += _lines(card["hyper-parameters"]) or ["  (none)"]
    lines.append("training result:")
    lines += _lines(card["training"]) or ["  (none recorded)"]
    data = card.get("data")
    lines.append("data:")
    if data:
        shown = {k: v for k, v in data.items() if k not in ("grid", "norm")}
        grid = data["grid"]
        rlat, rlon = grid["rlat"], grid["rlon"]
        unit = (grid.get("attrs", {}).get("rlat", {}) or {}).get("units", "degrees")
        shown["grid"] = {"rlat": f"{len(rlat)} values {rlat[0]:.4f} .. {rlat[-1]:.4f} {unit}",
                         "rlon": f"{len(rlon)} values {rlon[0]:.4f} .. {rlon[-1]:.4f} {unit}",
                         "grid_mapping": {k: v for k, v in grid["grid_mapping"].items() if k != "crs_wkt"}}
        shown["norm"] = data.get("norm", {})
        lines += _lines(shown)
    else:
        lines.append("  (not recorded: checkpoint written by an older pdeldm)")
    lines.append("training config:")
    config = card.get("config")
    if config:
        name = card["model"]["name"]
        relevant = {"seed": config.get("seed"), "sampling_seed": config.get("sampling_seed", config.get("seed")),
                    "data": config.get("data", {}),
                    "training": config.get("training", {}),
                    f"models.{name}": (config.get("models") or {}).get(name, {})}
        for dep in card["model"]["built on"]:
            relevant[f"models.{dep}"] = (config.get("models") or {}).get(dep, {})
        lines += _lines(relevant)
    else:
        lines.append("  (not recorded)")
    metrics = card.get("metrics")
    lines.append("metrics per epoch:")
    if metrics:
        columns = list(metrics[0])
        lines.append("  " + "  ".join(f"{c:>12}" for c in columns))
        for row in metrics:
            lines.append("  " + "  ".join(f"{_fmt(row.get(c, '')):>12}" for c in columns))
    else:
        lines.append("  (none: not trained, or not recorded)")
    return "\n".join(lines)
