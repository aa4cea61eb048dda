"""Measured image quality: pure ``compute_*`` functions over (N, H, W) arrays in [0, 1]."""

from core.evaluation.metrics import compute_psnr, compute_sharpness, compute_ssim, laplacian_variance

__all__ = ["compute_ssim", "compute_psnr", "compute_sharpness", "laplacian_variance"]
