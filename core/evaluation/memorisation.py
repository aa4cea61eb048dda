"""Memorisation: each synthetic sample's nearest training slice and whether it is a near-copy.

A sample is flagged as a near-copy when it is closer (root-mean-square pixel distance) to
a training slice than the closest two real training slices of *different* subjects are to
each other: no two real people are that alike, so such a sample copies its neighbour.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["rms_distances", "nearest_neighbours", "copy_threshold", "memorisation_report"]


def _flat(images, name) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise UserError(f"{name} must be (N, H, W) images, got shape {array.shape}")
    return array.reshape(len(array), -1)


def rms_distances(a, b, chunk: int = 512) -> np.ndarray:
    """Root-mean-square pixel distance between every image of ``a`` and of ``b``: ``(N, M)``."""
    a, b = _flat(a, "a"), _flat(b, "b")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"image sizes differ: {a.shape[1]} and {b.shape[1]} pixels")
    b2 = (b**2).sum(1)
    out = np.empty((len(a), len(b)), np.float32)
    for s in range(0, len(a), chunk):
        x = a[s:s + chunk]
        d2 = (x**2).sum(1)[:, None] + b2[None, :] - 2 * x @ b.T
        out[s:s + chunk] = np.sqrt(np.maximum(d2, 0) / a.shape[1])
    return out


def nearest_neighbours(samples, train) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``train`` of each sample's nearest slice and its RMS distance, both ``(N,)``."""
    d = rms_distances(samples, train)
    index = d.argmin(1)
    return index, d[np.arange(len(d)), index]


def copy_threshold(train, subjects, max_images: int = 2000, seed: int = 0) -> float:
    """Smallest RMS distance between two training slices of different subjects."""
    subjects = np.asarray(subjects)
    if len(set(subjects.tolist())) < 2:
        raise UserError("the near-copy threshold needs training slices of at least 2 subjects")
    train = np.asarray(train)
    if len(train) > max_images:  # keep the pairwise matrix small on big datasets
        keep = np.sort(np.random.default_rng(seed).choice(len(train), max_images, replace=False))
        train, subjects = train[keep], subjects[keep]
    d = rms_distances(train, train)
    d[subjects[:, None] == subjects[None, :]] = np.inf
    return float(d.min())


def memorisation_report(samples, train, subjects) -> dict:
    """``{nearest_index, nearest_distance, threshold, near_copies, near_copy_fraction, ...}``."""
    index, distance = nearest_neighbours(samples, train)
    threshold = copy_threshold(train, subjects)
    flags = distance < threshold
    return {
        "nearest_index": index.tolist(), "nearest_distance": [round(float(d), 5) for d in distance],
        "nearest_distance_median": float(np.median(distance)), "nearest_distance_min": float(distance.min()),
        "threshold": threshold, "near_copies": int(flags.sum()), "near_copy_fraction": float(flags.mean()),
        "meaning": "near-copy = closer to a training slice than any two training slices of different subjects",
    }
