"""Before / after pictures of a preprocessing step, with the brain mask drawn as an outline."""

from __future__ import annotations

import numpy as np

from core.data.slices import AXES, plane, plane_pixel_mm, robust_range, to_square
from core.viz.images import png_bytes

__all__ = ["brain_centre", "stage_plane", "before_after_png"]

#: Outline colour of the brain mask (RGB, 0-255).
MASK_RGB = (255, 64, 32)


def brain_centre(volume, mask: np.ndarray | None, axis: str) -> int:
    """Index along ``axis`` through the mask's centre of mass (the volume's middle without a mask)."""
    a = AXES[axis]
    if mask is None or not np.any(mask):
        return volume.data.shape[a] // 2
    other = tuple(i for i in range(3) if i != a)
    counts = np.asarray(mask, bool).sum(axis=other)
    return int(round(float((counts * np.arange(len(counts))).sum() / counts.sum())))


def stage_plane(volume, mask: np.ndarray | None, axis: str, index: int, size: int = 192,
                show_mask: bool = True) -> np.ndarray:
    """One plane of a stage as a ``(size, size, 3)`` uint8 RGB image, radiological, square pixels.

    Intensities are windowed on the volume's 0.5-99.5 % percentiles; the mask's outline (its
    boundary pixels, before resizing) is drawn in :data:`MASK_RGB` when ``show_mask``.
    """
    index = int(np.clip(index, 0, volume.data.shape[AXES[axis]] - 1))
    lo, hi = robust_range(volume.data)
    section = (plane(volume.data, axis, index).astype(np.float32) - lo) / max(hi - lo, 1e-6)
    pixel_mm = plane_pixel_mm(volume.zooms, axis)
    grey = to_square(np.clip(section, 0, 1), pixel_mm, size)
    rgb = np.repeat((np.clip(grey, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    if show_mask and mask is not None:
        from scipy import ndimage

        inside = plane(np.asarray(mask, np.float32), axis, index)
        outline = inside.astype(bool) & ~ndimage.binary_erosion(inside.astype(bool))
        edge = to_square(outline.astype(np.float32), pixel_mm, size) > 0.25
        rgb[edge] = MASK_RGB
    return rgb


def before_after_png(before, before_mask, after, after_mask, axis: str, size: int = 192,
                     show_mask: bool = True, gap: int = 4) -> bytes:
    """PNG of the plane through the brain's centre before (left) and after (right) a step.

    Each side is a :func:`stage_plane` at the centre of its own mask (the grid may change:
    registration and crop), so the same anatomy shows on both.
    """
    left = stage_plane(before, before_mask, axis, brain_centre(before, before_mask if before_mask is not None
                                                                else after_mask, axis), size, show_mask)
    right = stage_plane(after, after_mask, axis, brain_centre(after, after_mask, axis), size, show_mask)
    spacer = np.zeros((size, gap, 3), np.uint8)
    return png_bytes(np.concatenate([left, spacer, right], axis=1))
