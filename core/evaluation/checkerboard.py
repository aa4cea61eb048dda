"""Checkerboard index: how much of an image's energy sits in the periodic pattern of upsampling.

A stride-2 transposed convolution whose kernel the stride does not divide evenly overlaps
unevenly and paints a pattern of period 2 (Odena et al. 2016, "Deconvolution and checkerboard
artifacts"); stacked up-blocks add periods 4, 8, ... .  In the 2-D power spectrum of an
``S x S`` image, a pattern of period ``p`` along rows and / or columns is a peak at the
frequencies ``k * S / p`` (``k = 1 .. p - 1``) in either axis and both.

For each period and image, the index is the mean power in those peak bins divided by the median
power of a ring of bins around them (a 5 x 5 neighbourhood without its centre): ~1 for an image
whose spectrum is smooth there (real slices, a resize-convolution decoder), far above 1 for a
visible checkerboard.  The figure reported is the median over the images, beside the same
figure for real slices.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["checkerboard_index", "peak_bins"]


def peak_bins(size: int, period: int) -> list[tuple[int, int]]:
    """``(row, col)`` frequency bins of a period-``period`` pattern in an ``size x size`` spectrum,
    without those of the shorter periods it contains (period 4 holds period 2's bins).

    >>> peak_bins(8, 2)
    [(0, 4), (4, 0), (4, 4)]
    >>> len(peak_bins(8, 4)), (4, 4) in peak_bins(8, 4), len(peak_bins(16, 8)), (8, 0) in peak_bins(16, 8)
    (12, False, 48, False)
    """
    if size % period:
        raise UserError(f"the period {period} does not divide the image side {size}")
    step = size // period
    freqs = [k * step for k in range(period)]  # 0 and the pattern's harmonics

    def shorter(r, c):  # a bin of every period that divides this one (period 2's are period 4's too)
        return any(r % (size // q) == 0 and c % (size // q) == 0 for q in range(1, period) if period % q == 0)

    return [(r, c) for r in freqs for c in freqs if not shorter(r, c)]


def _ring(spectrum: np.ndarray, r: int, c: int, radius: int = 2) -> np.ndarray:
    size = spectrum.shape[-1]
    rows = [(r + dr) % size for dr in range(-radius, radius + 1)]
    cols = [(c + dc) % size for dc in range(-radius, radius + 1)]
    block = spectrum[..., rows, :][..., :, cols]
    mask = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    mask[radius, radius] = False
    return block[..., mask]


def checkerboard_index(images, periods=(2, 4, 8)) -> dict[int, float]:
    """``{period: median over images of peak power / ring power}`` for square ``images``.

    ``images``: ``(N, S, S)`` or ``(N, S, S, 1)`` intensities.  Periods that do not divide ``S``
    are skipped.

    >>> x = np.random.default_rng(0).normal(0.5, 0.05, (4, 32, 32))
    >>> round(checkerboard_index(x, periods=(2,))[2]) <= 2  # noise: no peak
    True
    >>> board = x + 0.1 * (np.indices((32, 32)).sum(0) % 2)  # a period-2 checkerboard on top
    >>> checkerboard_index(board, periods=(2,))[2] > 100
    True
    """
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or array.shape[1] != array.shape[2] or len(array) == 0:
        raise UserError(f"images must be (N >= 1, S, S) or (N, S, S, 1), got shape {array.shape}")
    size = array.shape[-1]
    centred = array - array.mean(axis=(1, 2), keepdims=True)
    spectrum = np.abs(np.fft.fft2(centred)) ** 2
    out = {}
    for period in periods:
        if size % period or period < 2:
            continue
        ratios = []
        for r, c in peak_bins(size, period):
            ring = np.median(_ring(spectrum, r, c), axis=-1)
            ratios.append(spectrum[:, r, c] / np.maximum(ring, 1e-12))
        out[int(period)] = float(np.median(np.mean(ratios, axis=0)))
    return out
