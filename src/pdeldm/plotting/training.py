"""Training curves: training and validation loss per epoch of every trained network."""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from pdeldm.plotting.style import model_color, model_label, save_figure, set_style

#: The autoencoder of the latent diffusion models has no entry in the model style tables.
_EXTRA_LABELS = {"autoencoder": "Autoencoder (LDM)"}


def plot_training_curves(metrics_csvs: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str]) -> None:
    """One panel per network (``model -> training_metrics.csv``): loss against epoch -> ``out_png``.

    Models without epochs (the interpolation baseline trains nothing) are listed, not drawn. The
    losses of different networks are different quantities (MSE of a field, diffusion loss), so
    every panel has its own y axis.
    """
    set_style()
    curves = {model: pd.read_csv(path) for model, path in metrics_csvs.items()}
    trained = {model: frame for model, frame in curves.items() if len(frame)}
    untrained = [model for model, frame in curves.items() if not len(frame)]
    n = max(len(trained), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (model, frame) in zip(axes.flat, trained.items(), strict=False):
        color = model_color(model)
        label = _EXTRA_LABELS.get(model) or model_label(model)
        ax.plot(frame["epoch"], frame["train_loss"], "-o", color=color, ms=3, label="training")
        if "val_loss" in frame and frame["val_loss"].notna().any():
            ax.plot(frame["epoch"], frame["val_loss"], "--s", color=color, ms=3, alpha=0.7, label="validation")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        if len(frame) <= 10:
            ax.set_xticks(frame["epoch"])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(trained):]:
        ax.axis("off")
    if not trained:
        axes.flat[0].text(0.5, 0.5, "no trained networks", ha="center", va="center")
    if untrained:
        fig.text(0.01, 0.005, "not trained (no epochs): " + ", ".join(model_label(m) for m in untrained),
                 fontsize="small", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if untrained else 0, 1, 1))
    save_figure(fig, out_png)

