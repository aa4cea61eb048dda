"""Anomaly maps: residual between a slice and its reconstruction, checked on synthetic lesions.

This is a **synthetic check**: bright and dark Gaussian blobs of a few sizes are painted
into real test slices; a model that has learnt normal anatomy reconstructs the slice without
them, so the residual should light up where they are.  The pixel AUROC of the residual
(inside the head) measures that.  It is not a clinical lesion-detection figure.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["insert_lesions", "residual_map", "lesion_auroc"]


def insert_lesions(images, seed: int = 0, radii=(2, 3, 5), amplitude: float = 0.35,
                   foreground: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Paint one bright or dark blob into each slice, inside its foreground.

    Args:
        images: ``(N, H, W)`` slices in [0, 1].
        radii: blob radii in px at 64 px (scaled with the image size); cycled over slices.
        amplitude: peak intensity change (alternately + and -).

    Returns:
        ``(lesioned (N, H, W) float32, masks (N, H, W) bool)``: the mask is where the blob
        changes the intensity by more than a quarter of its peak.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    if x.ndim != 3:
        raise UserError(f"images must be (N, H, W), got shape {x.shape}")
    rng = np.random.default_rng(seed)
    n, h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w]
    out, masks = x.copy(), np.zeros(x.shape, bool)
    scale = h / 64.0
    for i in range(n):
        radius = radii[i % len(radii)] * scale
        inside = np.argwhere(x[i] > foreground)
        if len(inside) == 0:
            continue
        cy, cx = inside[rng.integers(len(inside))]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        sign = 1.0 if i % 2 == 0 else -1.0
        out[i] = np.clip(x[i] + sign * amplitude * blob, 0, 1)
        masks[i] = (blob > 0.25) & (np.abs(out[i] - x[i]) > 0.25 * amplitude * 0.5)
    return out, masks


def residual_map(images, reconstructions, smooth: float = 0.0) -> np.ndarray:
    """Absolute residual ``|x - x_hat|`` per pixel, ``(N, H, W)``; optionally Gaussian-smoothed."""
    x, r = np.asarray(images, np.float32), np.asarray(reconstructions, np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    if r.ndim == 4:
        r = r[..., 0]
    if x.shape != r.shape:
        raise UserError(f"images {x.shape} and reconstructions {r.shape} differ in shape")
    residual = np.abs(x - r)
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        residual = np.stack([gaussian_filter(m, smooth) for m in residual])
    return residual


def lesion_auroc(model, images, seed: int = 0, foreground: float = 0.05, condition=None) -> dict:
    """Pixel AUROC of the residual for finding inserted lesions (a synthetic check)."""
    from sklearn.metrics import roc_auc_score

    lesioned, masks = insert_lesions(images, seed=seed)
    recon = np.asarray(model.reconstruct(lesioned) if condition is None
                       else model.reconstruct(lesioned, condition=condition))[..., 0]
    head = np.asarray(images)[..., :, :] > foreground
    if np.asarray(images).ndim == 4:
        head = head[..., 0]
    head |= masks
    result = {"label": "synthetic check: blobs painted into real test slices, not clinical lesions",
              "n_slices": int(len(lesioned)), "lesion_pixel_fraction": float(masks[head].mean())}
    for name, smooth in (("auroc", 0.0), ("auroc_smoothed", 1.0)):
        residual = residual_map(lesioned, recon, smooth)
        labels = masks[head]
        result[name] = float(roc_auc_score(labels, residual[head])) if 0 < labels.sum() < labels.size else None
    return result
