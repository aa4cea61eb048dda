"""Reconstruction and sample quality metrics on images in [0, 1].

SSIM and PSNR are scikit-image's reference implementations (Wang et al. 2004 with a
7×7 window); sharpness is the variance of the Laplacian, a standard focus measure that
falls as images blur.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from core.errors import UserError

__all__ = ["compute_ssim", "compute_psnr", "laplacian_variance", "compute_sharpness"]


def image_stack(images, name: str = "images") -> np.ndarray:
    """``(N, H, W)`` float32 from ``(N, H, W)`` or ``(N, H, W, 1)``; UserError otherwise.

    >>> image_stack(np.zeros((2, 4, 4, 1))).shape
    (2, 4, 4)
    """
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise UserError(f"{name} must be (N, H, W) or (N, H, W, 1), got shape {array.shape}")
    return array


def _as_stack(images, name: str) -> np.ndarray:
    """Like :func:`image_stack`, and a single ``(H, W)`` image is a stack of one."""
    array = np.asarray(images, dtype=np.float32)
    return image_stack(array[None] if array.ndim == 2 else array, name)


def _pairs(reference, test):
    reference, test = _as_stack(reference, "reference"), _as_stack(test, "test")
    if reference.shape != test.shape:
        raise UserError(f"reference {reference.shape} and test {test.shape} images differ in shape")
    return reference, test


def compute_ssim(reference, test) -> np.ndarray:
    """Per-image SSIM, ``(N,)`` float array, data range 1.

    >>> x = np.random.default_rng(0).random((2, 16, 16))
    >>> compute_ssim(x, x).round(3).tolist()
    [1.0, 1.0]
    """
    reference, test = _pairs(reference, test)
    return np.array([structural_similarity(r, t, data_range=1.0) for r, t in zip(reference, test)])


def compute_psnr(reference, test) -> np.ndarray:
    """Per-image PSNR in dB, ``(N,)`` float array, data range 1 (identical images give inf)."""
    reference, test = _pairs(reference, test)
    with np.errstate(divide="ignore"):
        return np.array([peak_signal_noise_ratio(r, t, data_range=1.0) for r, t in zip(reference, test)])


def laplacian_variance(images) -> np.ndarray:
    """Per-image variance of the 4-neighbour Laplacian, ``(N,)``: higher is sharper."""
    x = _as_stack(images, "images")
    laplacian = (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
                 - 4.0 * x[:, 1:-1, 1:-1])
    return laplacian.reshape(len(x), -1).var(axis=1)


def compute_sharpness(samples, real) -> float:
    """Mean Laplacian variance of ``samples`` divided by that of ``real`` images (1 = as sharp)."""
    real_value = float(laplacian_variance(real).mean())
    if real_value <= 0:
        raise UserError("the real images are constant: sharpness is undefined")
    return float(laplacian_variance(samples).mean()) / real_value
