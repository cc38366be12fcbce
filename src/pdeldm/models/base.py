"""What every model shares: the data specification taken from the store's meta, and a base module.

:class:`DataSpec` carries everything a model needs to know about the data (factor, grid spacing,
channel counts, normalisation of t2m and of the target), so that a checkpoint is self-contained:
prediction rebuilds the model from the checkpoint alone, without the config or the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from pdeldm.config import fill_defaults
from pdeldm.errors import InputError

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DataSpec:
    """Data facts a model depends on (from the store's meta JSON, interfaces §3)."""

    factor: int
    dx_m: float
    dy_m: float
    n_coarse: int
    n_static: int
    t2m_channel: int
    coarse_t2m_mean: float
    coarse_t2m_std: float
    target_mean: float
    target_std: float
    predictors: list[str] = field(default_factory=list)
    static_vars: list[str] = field(default_factory=list)
    #: The coarse input ends with the data module's time-of-day and day-of-year channels.
    time_features: bool = False

    @classmethod
    def from_meta(cls, meta: dict[str, Any], time_features: bool = False) -> DataSpec:
        """Build from the meta dict; t2m is looked up by name among the predictors.

        ``time_features``: the data module appends its time channels (``data.time_features``).
        """
        from pdeldm.data.datasets import TIME_FEATURES

        predictors = list(meta["predictors"])
        if "t2m" not in predictors:
            raise InputError(f"meta 'predictors' {predictors} has no 't2m': the models need coarse t2m")
        norm = meta["norm"]
        return cls(
            factor=int(meta["factor"]),
            dx_m=float(meta["dx_m"]),
            dy_m=float(meta["dy_m"]),
            n_coarse=len(predictors) + (len(TIME_FEATURES) if time_features else 0),
            n_static=len(meta["static_vars"]),
            t2m_channel=predictors.index("t2m"),
            coarse_t2m_mean=float(norm["coarse"]["t2m"]["mean"]),
            coarse_t2m_std=float(norm["coarse"]["t2m"]["std"]),
            target_mean=float(norm["target"]["mean"]),
            target_std=float(norm["target"]["std"]),
            predictors=predictors,
            static_vars=list(meta["static_vars"]),
            time_features=bool(time_features),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def coarse_t2m_kelvin(self, coarse: torch.Tensor) -> torch.Tensor:
        """Coarse t2m ``[B, 1, h, w]`` in K from the normalised predictors ``[B, Cc, h, w]``."""
        t = coarse[:, self.t2m_channel : self.t2m_channel + 1]
        return t * self.coarse_t2m_std + self.coarse_t2m_mean

    def coarse_t2m_in_target_norm(self, coarse: torch.Tensor) -> torch.Tensor:
        """Coarse t2m expressed in the *target's* normalisation (the two use different stats)."""
        return (self.coarse_t2m_kelvin(coarse) - self.target_mean) / self.target_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised fine temperature -> K."""
        return x * self.target_std + self.target_mean


class BaseModel(L.LightningModule):
    """Base LightningModule: hyper-parameters as one JSON-able dict, common helpers.

    ``hp`` = ``{"name", "model": <cfg["models"][name]>, "spec": DataSpec dict, "sub": {...}}``; it is
    stored in every exported checkpoint so :func:`pdeldm.models.registry.load_model` can rebuild
    the module without the config.
    """

    name: ClassVar[str] = ""
    #: Whether :meth:`generate` draws random samples (ensembles) or is deterministic.
    stochastic: ClassVar[bool] = False

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__()
        self.hp = hp
        self.spec = DataSpec.from_dict(hp["spec"])
        # The model block with the schema's defaults for keys it lacks (a validated config has
        # them all; hand-written hyper-parameters in tests and older checkpoints may not).
        self.cfg: dict[str, Any] = fill_defaults(f"models.{self.name}", hp.get("model"))

    # --- how a model is built on the models it depends on (pdeldm.models.registry) ------------
    @classmethod
    def sub_hparams(cls, checkpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """``hp["sub"]``: the hyper-parameters of the models this one is built on, taken from their
        final checkpoints (``checkpoints``: name -> checkpoint dict). A model without dependencies
        has none."""
        return {}

    @classmethod
    def config_sub_hparams(cls, block: Callable[[str], dict[str, Any]],
                           hparams: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """``hp["sub"]`` straight from the config: ``block(name)`` gives ``{"model", "spec"}`` of a
        model, ``hparams(name)`` a whole model's hyper-parameters (its own ``sub`` included)."""
        return {}

    def load_dependencies(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        """Copy the weights of the models this one is built on from their checkpoints."""

    # --- inference -------------------------------------------------------------------------
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Downscaled field(s) ``[M, B, 1, H, W]``, normalised like the target.

        ``generators``: one CPU generator per (member, sample) in member-major order, used by
        stochastic models so that every sample is reproducible whatever the batch size.
        """
        raise NotImplementedError

    # --- training helpers ------------------------------------------------------------------
    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Lightning's ``log``; also keeps the latest ``train_loss`` and its batch size.

        :class:`pdeldm.callbacks.EpochMetricsLogger` averages these itself, because Lightning's
        epoch mean does not survive a resume from a mid-epoch checkpoint.
        """
        if name == "train_loss":
            loss = value.detach().float().item() if isinstance(value, torch.Tensor) else float(value)
            self.last_train_loss = (loss, int(kwargs.get("batch_size") or 1))
        super().log(name, value, *args, **kwargs)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(live module, EMA module) pairs updated after each optimiser step (see callbacks)."""
        return []

    def parameter_report(self) -> list[str]:
        """Human-readable parameter counts per top-level submodule (for the training log)."""
        lines = []
        for name, child in self.named_children():
            total = sum(p.numel() for p in child.parameters())
            trainable = sum(p.numel() for p in child.parameters() if p.requires_grad)
            if total:
                lines.append(f"{name}: {total:,} parameters ({trainable:,} trainable)")
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        lines.append(f"total: {total:,} parameters ({trainable:,} trainable)")
        return lines

    def optimizer_cfg(self) -> dict[str, Any]:
        """The model block's ``optimizer`` settings (defaults: the schema's, per model)."""
        return dict(self.cfg["optimizer"])

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        opt = self.optimizer_cfg()
        return torch.optim.AdamW(params, lr=float(opt["lr"]), betas=tuple(opt["betas"]),
                                 weight_decay=float(opt["weight_decay"]))

    def plateau_scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """ReduceLROnPlateau on ``val_loss`` (model block ``scheduler``; null in the config = none)."""
        sched = self.cfg["scheduler"]
        if not sched:
            return None
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=float(sched["factor"]),
            patience=int(sched["patience"]), min_lr=float(sched["min_lr"]))
        return {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch", "frequency": 1}

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer([p for p in self.parameters() if p.requires_grad])
        scheduler = self.plateau_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` (no gradients) and put it in eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module
