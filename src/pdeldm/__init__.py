"""pdeldm: PDE-informed latent diffusion downscaling of 2-m temperature (ERA5 -> COSMO-CLM)."""

__version__ = "0.1.0"
