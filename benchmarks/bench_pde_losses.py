"""Cost of the PDE loss terms relative to one forward pass of a small UNet (not a test).

Times, on one batch ``[B, 1, S, S]``:
* ``flux_ratio_loss`` forward + backward (reference on the same grid, cells of 16 px),
* ``advection_diffusion_loss`` forward + backward (explicit winds),
* one forward pass of a 3-level conv UNet with 32 base channels (no grad),
and prints each loss time divided by the UNet time (target ≤ 0.15).

    python benchmarks/bench_pde_losses.py --size 512 --batch 4 --repeats 5 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from pdeldm.physics.pde_losses import advection_diffusion_loss, flux_ratio_loss

DX_M = 2200.0  # ~COSMO-CLM 0.02° spacing


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
    )  # fmt: skip


class TinyUNet(nn.Module):
    """Three resolution levels (c, 2c, 4c channels), skip connections, a 1x1 head."""

    def __init__(self, in_channels: int = 1, base: int = 32) -> None:
        super().__init__()
        c = base
        self.enc1, self.enc2, self.mid = _conv_block(in_channels, c), _conv_block(c, 2 * c), _conv_block(2 * c, 4 * c)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), _conv_block(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), _conv_block(2 * c, c)
        self.head = nn.Conv2d(c, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def _time(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` in seconds after one warm-up call."""
    def synced() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    synced()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        synced()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="field side in pixels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cell", type=int, default=16)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = (args.batch, 1, args.size, args.size)
    field = 280 + torch.randn(shape, device=device).cumsum(-1).cumsum(-2) / args.size  # smooth-ish, K
    reference = field + 0.1 * torch.randn(shape, device=device)
    u = 5 * torch.randn(shape, device=device)
    v = 5 * torch.randn(shape, device=device)
    unet = TinyUNet().to(device).eval()

    def unet_forward() -> None:
        with torch.no_grad():
            unet(field)

    def flux_step() -> None:
        pred = field.clone().requires_grad_(True)
        flux_ratio_loss(pred, reference, args.cell, DX_M, DX_M).backward()

    def advdiff_step() -> None:
        pred = field.clone().requires_grad_(True)
        advection_diffusion_loss(pred, u, v, DX_M, DX_M, kappa=1e3, scale=1e-3).backward()

    t_unet = _time(unet_forward, args.repeats, device)
    t_flux = _time(flux_step, args.repeats, device)
    t_adv = _time(advdiff_step, args.repeats, device)
    print(f"device={device} batch={args.batch} size={args.size} threads={torch.get_num_threads()}")
    print(f"unet forward (32 ch, 3 levels):      {t_unet * 1e3:9.2f} ms")
    print(f"flux_ratio_loss fwd+bwd:             {t_flux * 1e3:9.2f} ms  ratio {t_flux / t_unet:.4f}")
    print(f"advection_diffusion_loss fwd+bwd:    {t_adv * 1e3:9.2f} ms  ratio {t_adv / t_unet:.4f}")
    print("target: ratio <= 0.15 ->", "OK" if max(t_flux, t_adv) / t_unet <= 0.15 else "ABOVE TARGET")


if __name__ == "__main__":
    main()
