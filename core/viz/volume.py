"""A whole volume for a client-side viewer: windowed to 8 bit, compressed, with what it needs to draw.

The browser's viewer (``ui/components/volume_viewer``) draws planes from these bytes exactly as
:func:`core.viz.images.render_plane` cuts them (:func:`core.data.slices.plane`): the 8-bit values
are :func:`core.viz.images.apply_window` of the volume, so a plane's pixels are the server's.
"""

from __future__ import annotations

import zlib

import numpy as np

from core.data.slices import AXES, plane
from core.viz.images import apply_window

__all__ = ["volume_u8", "volume_payload", "window_lut", "viewer_meta", "preview_planes"]


def volume_u8(volume, level: float, width: float) -> np.ndarray:
    """``(X, Y, Z)`` uint8 C-ordered array: :func:`apply_window` of a canonical (RAS+) volume's data."""
    return np.ascontiguousarray(apply_window(volume.data, level, width))


def volume_payload(volume, level: float, width: float, compress_level: int = 1) -> bytes:
    """zlib (RFC 1950, the browser's ``DecompressionStream("deflate")``) of :func:`volume_u8`'s bytes,
    C order (index ``(i * Y + j) * Z + k``).  A 256×256×150 head is 9.8 MB raw, ~2–4 MB here."""
    return zlib.compress(volume_u8(volume, level, width).tobytes(), compress_level)


def window_lut(base_level: float, base_width: float, level: float, width: float) -> np.ndarray:
    """``(256,)`` uint8 table from the 8-bit values of a volume windowed with ``(base_level,
    base_width)`` to those of the window ``(level, width)``: each value stands for the centre of its
    intensity bin.  The identity for the same window.

    >>> bool((window_lut(100, 200, 100, 200) == np.arange(256)).all())
    True
    >>> int(window_lut(100, 200, 50, 100)[255])  # a window below the base one saturates
    255
    """
    if float(level) == float(base_level) and float(width) == float(base_width):
        return np.arange(256, dtype=np.uint8)
    base_width = max(float(base_width), 1e-6)
    intensity = (base_level - base_width / 2.0) + (np.arange(256) + 0.5) * base_width / 255.0
    return apply_window(intensity, level, width)


def viewer_meta(volume, radiological: bool, crosshair, range_lines, lut=None) -> dict:
    """JSON-ready description the viewer needs beside the bytes: shape, voxel sizes (mm), the
    voxel-to-mm affine, the convention, the crosshair voxel, the range ``[axis, start, stop]`` and
    the 256-entry window table (``None``: identity)."""
    return {
        "shape": [int(s) for s in volume.shape],
        "zooms": [float(z) for z in volume.zooms],
        "affine": np.asarray(volume.affine, float).round(6).tolist(),
        "radiological": bool(radiological),
        "crosshair": [int(c) for c in crosshair],
        "range": None if range_lines is None else [str(range_lines[0]), int(range_lines[1]), int(range_lines[2])],
        "lut": None if lut is None else [int(v) for v in lut],
    }


def preview_planes(volume, crosshair, level: float, width: float, radiological: bool = True) -> dict:
    """``{axis: (rows, cols) uint8}``: the three planes through ``crosshair`` as the viewer draws them
    from :func:`volume_u8` (:func:`core.data.slices.plane` of the windowed volume), sent with a
    subject's first render so its first picture does not wait for the whole volume."""
    return {axis: np.ascontiguousarray(apply_window(plane(volume.data, axis, int(crosshair[AXES[axis]]), radiological),
                                                    level, width))
            for axis in ("axial", "coronal", "sagittal")}
