"""Distances between two sets of feature vectors: Fréchet distance and kernel MMD.

Both take ``(N, D)`` arrays.  The Fréchet distance fits a Gaussian to each set and is
``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (the formula of FID, in a feature
space of our own: never call the result "FID").  The MMD uses a Gaussian kernel with the
median-distance bandwidth on features standardised by the first set.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from core.errors import UserError

__all__ = ["frechet_distance", "mmd_rbf"]


def _features(x, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise UserError(f"{name} must be (N >= 2, D) feature vectors, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} holds NaN or infinite features")
    return array


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` ``(N, D)`` and ``b`` ``(M, D)``.

    >>> x = np.random.default_rng(0).normal(size=(500, 3))
    >>> frechet_distance(x, x) < 1e-6
    True
    >>> round(frechet_distance(x, x + 2.0), 3)   # a shift of 2 in 3 dimensions: 3 * 2**2
    12.0
    """
    a, b = _features(a, "a"), _features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD
    # matrix: stable for the singular covariances of small sets (no complex square roots).
    w, v = linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_covmean = float(np.sqrt(np.clip(inner, 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_covmean)
    return max(value, 0.0)


def mmd_rbf(a, b, bandwidth: float | None = None) -> dict:
    """Unbiased squared MMD with a Gaussian kernel: ``{mmd2, bandwidth}``.

    Features are standardised with the mean and spread of ``a`` (the real set), so each
    handcrafted feature weighs the same.  ``bandwidth`` defaults to the median pairwise
    distance of the pooled sets.
    """
    a, b = _features(a, "a"), _features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    mean, sd = a.mean(0), a.std(0)
    sd[sd < 1e-12] = 1.0
    a, b = (a - mean) / sd, (b - mean) / sd
    pooled = np.concatenate([a, b])
    d2 = _sq_dists(pooled, pooled)
    if bandwidth is None:
        upper = d2[np.triu_indices(len(pooled), 1)]
        bandwidth = float(np.sqrt(np.median(upper[upper > 0]))) if np.any(upper > 0) else 1.0
    k = np.exp(-d2 / (2 * bandwidth**2))
    n, m = len(a), len(b)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    mmd2 = ((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
            - 2 * kab.mean())
    return {"mmd2": float(mmd2), "bandwidth": float(bandwidth)}


def _sq_dists(x, y):
    d2 = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d2, 0.0)
