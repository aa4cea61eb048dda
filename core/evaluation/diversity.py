"""Sample diversity: mean pairwise MS-SSIM among images (high = alike; far above real = mode collapse).

``tf.image.ssim_multiscale`` with an 11-px filter needs every scale to be at least 11 px,
so its 5 default scales need 161 px.  For smaller images we keep the first scales that fit
(3 at 64 px, 4 at 128 px) and renormalise their power factors to sum to 1 (what other
libraries do for small images); :func:`ms_ssim_setting` returns the setting so it can be
recorded with the figure.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["DEFAULT_POWER_FACTORS", "ms_ssim_setting", "compute_ms_ssim", "pairwise_ms_ssim"]

#: Wang et al. 2003 weights of the five scales (``tf.image.ssim_multiscale``'s default).
DEFAULT_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FILTER_SIZE = 11


def ms_ssim_setting(image_size: int, filter_size: int = FILTER_SIZE) -> dict:
    """Scales and renormalised power factors for square images of ``image_size`` px.

    >>> ms_ssim_setting(64)["scales"], ms_ssim_setting(128)["scales"], ms_ssim_setting(256)["scales"]
    (3, 4, 5)
    >>> round(sum(ms_ssim_setting(64)["power_factors"]), 6)
    1.0
    """
    size = int(image_size)
    if size < filter_size:
        raise UserError(f"MS-SSIM needs images of at least {filter_size} px, got {size} px")
    scales = 1
    while scales < len(DEFAULT_POWER_FACTORS) and size // 2**scales >= filter_size:
        scales += 1
    factors = np.array(DEFAULT_POWER_FACTORS[:scales])
    factors = factors / factors.sum()
    return {"scales": scales, "power_factors": [round(float(f), 6) for f in factors],
            "filter_size": filter_size, "image_size": size,
            "renormalised": scales < len(DEFAULT_POWER_FACTORS)}


def _gaussian_1d(size: int, sigma: float = 1.5) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'VALID' Gaussian filter of a stack ``(N, H, W)`` (as ``tf.image.ssim``'s reducer)."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = sliding_window_view(x, len(g), axis=1) @ g
    return sliding_window_view(x, len(g), axis=2) @ g


def _ssim_terms(x, y, filter_size, max_val=1.0, k1=0.01, k2=0.03):
    """Per-image mean SSIM and contrast-structure term, as ``tf.image.ssim``'s helper computes them."""
    g = _gaussian_1d(min(filter_size, x.shape[1], x.shape[2]))
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    num0, den0 = 2 * mx * my, mx**2 + my**2
    luminance = (num0 + c1) / (den0 + c1)
    num1, den1 = 2 * _filter_valid(x * y, g), _filter_valid(x * x + y * y, g)
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    return (luminance * cs).mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _downsample(x):
    if x.shape[1] % 2 or x.shape[2] % 2:  # pad odd sides symmetrically, as TF does
        x = np.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2)), mode="symmetric")
    return 0.25 * (x[:, ::2, ::2] + x[:, 1::2, ::2] + x[:, ::2, 1::2] + x[:, 1::2, 1::2])


def compute_ms_ssim(a, b, setting: dict | None = None, batch_size: int = 256) -> np.ndarray:
    """MS-SSIM of each pair ``(a[i], b[i])``, ``(N,)`` float array; images ``(N, H, W[, 1])`` in [0, 1].

    The algorithm of ``tf.image.ssim_multiscale`` (Gaussian 11-px window, sigma 1.5, VALID
    filtering, 2x2 average pooling between scales, negative terms clipped to 0) in NumPy:
    identical values (checked in the tests) several times faster on a CPU, with the scales
    and power factors of ``setting`` (default :func:`ms_ssim_setting`).
    """
    a, b = _stack(a).astype(np.float64), _stack(b).astype(np.float64)
    if a.shape != b.shape:
        raise UserError(f"MS-SSIM pairs differ in shape: {a.shape} and {b.shape}")
    setting = setting or ms_ssim_setting(a.shape[1])
    weights = np.asarray(setting["power_factors"], dtype=np.float64)
    out = []
    for start in range(0, len(a), batch_size):
        x, y = a[start:start + batch_size], b[start:start + batch_size]
        terms = []
        for k in range(len(weights)):
            if k:
                x, y = _downsample(x), _downsample(y)
            ssim, cs = _ssim_terms(x, y, setting["filter_size"])
            terms.append(cs if k < len(weights) - 1 else ssim)
        stacked = np.maximum(np.stack(terms, axis=1), 0.0)
        out.append(np.prod(stacked ** weights, axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def pairwise_ms_ssim(images, n_pairs: int = 500, seed: int = 0, groups=None) -> dict:
    """Mean MS-SSIM over random pairs of distinct images: ``{mean, sd, n_pairs, setting}``.

    ``groups`` (one label per image, e.g. subject ids) restricts pairs to different groups,
    so neighbouring slices of one subject do not inflate the real baseline.
    """
    images = _stack(images)
    n = len(images)
    if n < 2:
        raise UserError(f"MS-SSIM diversity needs at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=4 * n_pairs)
    j = rng.integers(0, n, size=4 * n_pairs)
    keep = i != j
    if groups is not None:
        groups = np.asarray(groups)
        if len(set(groups.tolist())) > 1:
            keep &= groups[i] != groups[j]
    i, j = i[keep][:n_pairs], j[keep][:n_pairs]
    setting = ms_ssim_setting(images.shape[1])
    values = compute_ms_ssim(images[i], images[j], setting)
    return {"mean": float(values.mean()), "sd": float(values.std()), "n_pairs": int(len(values)),
            "setting": setting}


def _stack(images) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or array.shape[1] != array.shape[2]:
        raise UserError(f"images must be square (N, H, W) or (N, H, W, 1), got shape {array.shape}")
    return array
