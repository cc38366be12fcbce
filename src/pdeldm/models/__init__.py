"""Downscaling models (LightningModules), one file per job.

- ``blocks``: conv building blocks; ``unet``: UNet backbone + ``unet`` model; ``gan``: ``gan``;
- ``autoencoder``: residual VQ/KL autoencoder (``autoencoder``); ``denoiser``: latent denoiser;
- ``samplers``: noise schedule, v-parameterisation, DDIM; ``ema``: weight EMA;
- ``diffusion``: ``ldm``; ``pde_ldm``: PDE-informed fine-tuning; ``baselines``: ``interpolation``;
- ``registry``: name -> class, building from config + dependencies, final checkpoint format.

Import the registry lazily (``from pdeldm.models.registry import load_model``): importing this
package does not import torch-heavy submodules.
"""

MODEL_NAMES = ("interpolation", "unet", "gan", "autoencoder", "ldm", "pde_ldm")

__all__ = ["MODEL_NAMES"]
