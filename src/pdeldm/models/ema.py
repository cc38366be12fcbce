"""Exponential moving average (EMA) of a module's weights.

The shadow copy is a registered submodule, so it is saved in (and resumed from) every Lightning
checkpoint with the live weights. The decay warms up as ``min(decay, (1 + n) / (10 + n))``: in
short (CPU) runs a fixed 0.999 would keep the EMA close to the random initialisation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """EMA shadow of ``model``: call :meth:`update` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.shadow = copy.deepcopy(model)
        self.shadow.requires_grad_(False)
        self.shadow.eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> EMA:  # the shadow is never trained (dropout off)
        super().train(mode)
        self.shadow.eval()
        return self

    def current_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model``'s current weights (buffers are copied)."""
        decay = self.current_decay()
        for shadow, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            shadow.lerp_(live.detach().to(shadow.dtype), 1.0 - decay)
        for shadow, live in zip(self.shadow.buffers(), model.buffers(), strict=True):
            shadow.copy_(live)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the EMA weights."""
        model.load_state_dict(self.shadow.state_dict())

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.shadow(*args, **kwargs)
