"""``interpolation``: bicubic upsampling of the coarse t2m (no parameters, no training).

Its "checkpoint" is a tiny file holding the config, so the workflow's DAG is uniform.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pdeldm.models.base import Batch, BaseModel


class InterpolationModel(BaseModel):
    """Bicubic (or bilinear, config ``mode``) upsampling of coarse t2m onto the fine grid."""

    name = "interpolation"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        self.mode = str(self.cfg["mode"])
        if self.mode not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"models.interpolation.mode must be bicubic|bilinear|nearest, got {self.mode!r}")

    def forward(self, coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # Interpolation is linear, so normalising before or after upsampling gives the same field.
        t2m = self.spec.coarse_t2m_in_target_norm(coarse)
        kwargs = {} if self.mode == "nearest" else {"align_corners": False}
        return F.interpolate(t2m, size=size, mode=self.mode, **kwargs)

    @torch.no_grad()
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self(batch["coarse"], tuple(batch["static"].shape[-2:]))[None]
