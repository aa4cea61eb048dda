"""Linear and spherical interpolation between latent vectors (any shape, flattened inside)."""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["lerp", "slerp", "interpolate", "MODES"]

MODES = ("linear", "spherical")


def _steps(n) -> np.ndarray:
    n = int(n)
    if n < 2:
        raise UserError(f"an interpolation needs at least 2 steps, got {n}")
    return np.linspace(0.0, 1.0, n)


def _pair(a, b):
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        raise UserError(f"cannot interpolate between shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UserError("cannot interpolate: an endpoint has NaN or infinite values")
    return a, b


def lerp(a, b, n: int) -> np.ndarray:
    """``n`` points on the segment from ``a`` to ``b``: ``(n, *a.shape)`` float32, endpoints exact.

    >>> lerp(np.zeros(2), np.ones(2), 3)[:, 0].tolist()
    [0.0, 0.5, 1.0]
    """
    a, b = _pair(a, b)
    t = _steps(n).reshape(-1, *([1] * a.ndim))
    out = (1.0 - t) * a + t * b
    out[0], out[-1] = a, b
    return out.astype("float32")


def slerp(a, b, n: int) -> np.ndarray:
    """``n`` points from ``a`` to ``b`` along the great circle, norm interpolated linearly.

    The direction moves at constant angular speed on the unit sphere; the norm goes linearly
    from ``|a|`` to ``|b|``, so two endpoints of equal norm keep that norm at every step
    (where a straight line would cut through the low-density centre of a Gaussian prior).
    Antiparallel or zero endpoints fall back to :func:`lerp`.  Returns ``(n, *a.shape)``
    float32 with exact endpoints.

    >>> p = slerp(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)
    >>> np.round(np.linalg.norm(p, axis=1), 6).tolist()
    [1.0, 1.0, 1.0]
    """
    a, b = _pair(a, b)
    t = _steps(n)
    fa, fb = a.ravel(), b.ravel()
    na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
    if na == 0 or nb == 0:
        return lerp(a, b, n)
    ua, ub = fa / na, fb / nb
    omega = float(np.arccos(np.clip(ua @ ub, -1.0, 1.0)))
    if omega < 1e-6 or np.pi - omega < 1e-6:
        return lerp(a, b, n)
    s = np.sin(omega)
    dirs = (np.sin((1 - t) * omega)[:, None] * ua + np.sin(t * omega)[:, None] * ub) / s
    norms = (1 - t) * na + t * nb
    out = (dirs * norms[:, None]).reshape(len(t), *a.shape)
    out[0], out[-1] = a, b
    return out.astype("float32")


def interpolate(a, b, n: int, mode: str = "spherical") -> np.ndarray:
    """:func:`lerp` (``mode="linear"``) or :func:`slerp` (``"spherical"``)."""
    if mode not in MODES:
        raise UserError(f"interpolation mode must be one of {MODES}, got {mode!r}")
    return lerp(a, b, n) if mode == "linear" else slerp(a, b, n)
