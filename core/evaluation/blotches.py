"""Blotch rate: how many samples hold bright or dark blobs outside the real intensity range.

An autoregressive prior that drifts late in its raster order paints blobs in the lower rows
that no real slice has at that place.  The rate is defined against the real slices, pixel
by pixel:

1. **Envelope.** For each pixel, the ``low``-th and ``high``-th percentiles of the real
   slices' intensity there, widened over a ``window x window`` neighbourhood (min of the lows,
   max of the highs) so small misalignments between heads do not count.
2. **Outliers.** A sample pixel is an outlier when it lies more than ``margin`` (intensity in
   [0, 1]) above the envelope's high or below its low.
3. **Blotch.** A connected group (8-neighbour) of outlier pixels of one sign (bright or dark),
   at least ``min_area`` pixels large, whose centroid lies in the lower rows (row index
   ``>= start_fraction * H``).  ``min_area`` defaults to ``(H / 16)^2`` (16 px at 64 px).
4. **Rate.** The fraction of samples with at least one blotch.

Real test slices score close to 0; single noisy pixels never count (area), and neither do
blobs in the upper rows (the drift this measures is late in raster order).
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = ["BlotchDetector", "blotch_rate"]


def _stack(images, name) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or len(array) == 0:
        raise UserError(f"{name} must be (N >= 1, H, W) or (N, H, W, 1), got shape {array.shape}")
    return array


class BlotchDetector:
    """Envelope of real slices and the blotch test against it.

    Args:
        real: ``(N, H, W)`` real slices in [0, 1] (the training split).
        low, high: percentiles of the per-pixel envelope.
        window: side of the neighbourhood the envelope is widened over (odd).
        margin: intensity beyond the envelope at which a pixel is an outlier.
        start_fraction: blotches whose centroid row is at or below ``start_fraction * H`` count.
        min_area: smallest blotch in pixels (default ``(H / 16)^2``, at least 4).
    """

    def __init__(self, real, low=1.0, high=99.0, window=5, margin=0.2, start_fraction=0.5,
                 min_area=None):
        from scipy import ndimage

        real = _stack(real, "real")
        if not 0 <= low < high <= 100:
            raise UserError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
        if window < 1 or window % 2 == 0:
            raise UserError(f"window must be an odd number >= 1, got {window}")
        if not 0 <= start_fraction < 1:
            raise UserError(f"start_fraction must be in [0, 1), got {start_fraction}")
        if margin < 0:
            raise UserError(f"margin must be >= 0, got {margin}")
        h = real.shape[1]
        self.shape = real.shape[1:]
        self.min_area = int(min_area) if min_area is not None else max(4, round((h / 16) ** 2))
        self.start_row = start_fraction * h
        self.settings = {"low": low, "high": high, "window": window, "margin": margin,
                         "start_fraction": start_fraction, "min_area": self.min_area}
        lo, hi = np.percentile(real, [low, high], axis=0)
        self.low = ndimage.minimum_filter(lo, size=window) - margin
        self.high = ndimage.maximum_filter(hi, size=window) + margin

    def blotches(self, image) -> list[dict]:
        """Blotches of one ``(H, W)`` image: ``[{kind, area, row, col}]`` (centroid row/col)."""
        from scipy import ndimage

        image = np.asarray(image, dtype=np.float32).reshape(self.shape)
        found = []
        for kind, mask in (("bright", image > self.high), ("dark", image < self.low)):
            labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
            if count == 0:
                continue
            index = np.arange(1, count + 1)
            areas = ndimage.sum(mask, labels, index)
            centres = ndimage.center_of_mass(mask, labels, index)
            for area, (row, col) in zip(areas, centres):
                if area >= self.min_area and row >= self.start_row:
                    found.append({"kind": kind, "area": int(area), "row": float(row), "col": float(col)})
        return found

    def rate(self, samples) -> dict:
        """``{rate, n, n_flagged, flagged, settings}`` for samples ``(N, H, W[, 1])``."""
        samples = _stack(samples, "samples")
        if samples.shape[1:] != self.shape:
            raise UserError(f"samples are {samples.shape[1:]}, the real slices {self.shape}")
        flagged = [i for i, image in enumerate(samples) if self.blotches(image)]
        return {"rate": len(flagged) / len(samples), "n": int(len(samples)), "n_flagged": len(flagged),
                "flagged": flagged, "settings": dict(self.settings)}


def blotch_rate(samples, real, **settings) -> dict:
    """Fraction of ``samples`` with a blotch in the lower rows (see the module docstring).

    >>> real = np.zeros((10, 32, 32), "float32")
    >>> spot = real[:2].copy(); spot[0, 24:30, 10:16] = 1.0
    >>> blotch_rate(spot, real)["rate"]
    0.5
    """
    return BlotchDetector(real, **settings).rate(samples)
