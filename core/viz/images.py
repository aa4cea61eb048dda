"""Window/level, PNG bytes and image grids for the app (no streamlit here).

PNG bytes are what pages hand to ``st.image``: we upscale ourselves (nearest or
bilinear, our choice) so the browser never smooths a small slice.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.data.slices import plane, plane_labels, plane_pixel_mm, robust_range, voxel_to_plane

__all__ = ["auto_window", "apply_window", "png_bytes", "png_data_url", "render_plane", "image_grid", "grid_png",
           "DISPLAY_PX", "display_upscale"]

CROSSHAIR_RGB = (0, 220, 255)
RANGE_RGB = (255, 170, 0)
LABEL_RGB = (255, 255, 80)
# Planes are drawn as palette images: 252 grey levels plus the three overlay colours. A
# palette PNG is a third of an RGB one to compress (~2x faster to render, smaller to send),
# and 252 grey levels (steps of 1.01 instead of 1) are indistinguishable on screen.
_GREYS = 252
_CROSSHAIR, _RANGE, _LABEL = _GREYS, _GREYS + 1, _GREYS + 2
_TO_GREY_INDEX = np.round(np.arange(256) * (_GREYS - 1) / 255).astype(np.uint8)
_PALETTE = np.zeros((256, 3), dtype=np.uint8)
_PALETTE[:_GREYS] = np.round(np.arange(_GREYS) * 255 / (_GREYS - 1))[:, None]
_PALETTE[_CROSSHAIR], _PALETTE[_RANGE], _PALETTE[_LABEL] = CROSSHAIR_RGB, RANGE_RGB, LABEL_RGB
_PALETTE = _PALETTE.ravel().tolist()
#: Pixels a model-sized slice is shown at, at least: smaller images are upscaled (nearest).
DISPLAY_PX = 128


def auto_window(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(level, width) from robust percentiles of a volume."""
    lo, hi = robust_range(data, low, high)
    return (lo + hi) / 2.0, hi - lo


def apply_window(image: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map intensities in [level - width/2, level + width/2] to uint8 0..255."""
    width = max(float(width), 1e-6)
    scaled = (np.asarray(image, dtype=np.float32) - (level - width / 2.0)) * (255.0 / width)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a uint8 (H, W) or (H, W, 3) array, or a float array in [0, 1]."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    # Level 1: several times faster than the default for a few % larger files.
    Image.fromarray(array).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def png_data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes.

    Why: a view that changes on every slider move (Browse's planes, the Latent decoder) travels
    inline with the app's message instead of as a media file the browser then has to fetch in a
    second request; Streamlit's ``st.image`` passes ``data:`` URLs through unchanged.

    >>> png_data_url(b"PNG")
    'data:image/png;base64,UE5H'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def render_plane(
    volume,
    axis: str,
    index: int,
    level: float,
    width: float,
    radiological: bool = True,
    crosshair=None,
    range_lines=None,
    display_px: int = 360,
    labels: bool = True,
) -> bytes:
    """One plane of a volume as PNG bytes, with physical aspect, crosshair and range lines.

    Parameters
    ----------
    volume : :class:`core.data.volumes.Volume`.
    crosshair : canonical voxel (i, j, k) to mark, or None.
    range_lines : ``(axis_name, start, stop)`` of a slice range along another axis,
        drawn as two lines (first and last chosen slice) when visible in this plane.
    display_px : size of the longer side of the output image in pixels.
    """
    section = apply_window(plane(volume.data, axis, index, radiological), level, width)
    row_mm, col_mm = plane_pixel_mm(volume.zooms, axis)
    rows, cols = section.shape
    scale = display_px / max(rows * row_mm, cols * col_mm)
    out_h, out_w = max(1, round(rows * row_mm * scale)), max(1, round(cols * col_mm * scale))
    grey = np.asarray(Image.fromarray(section).resize((out_w, out_h), Image.Resampling.BILINEAR))
    canvas = Image.frombytes("P", (out_w, out_h), _TO_GREY_INDEX[grey].tobytes())
    canvas.putpalette(_PALETTE)
    draw = ImageDraw.Draw(canvas)
    sy, sx = out_h / rows, out_w / cols

    def row_to_y(r):
        return (r + 0.5) * sy

    def col_to_x(c):
        return (c + 0.5) * sx

    if range_lines is not None:
        range_axis, start, stop = range_lines
        if range_axis != axis:
            for slice_index in (start, stop - 1):
                ijk = [0, 0, 0]
                ijk[{"sagittal": 0, "coronal": 1, "axial": 2}[range_axis]] = slice_index
                r, c = voxel_to_plane(volume.data.shape, axis, ijk, radiological)
                if _runs_vertically(axis, range_axis):
                    draw.line([(col_to_x(c), 0), (col_to_x(c), out_h)], fill=_RANGE, width=2)
                else:
                    draw.line([(0, row_to_y(r)), (out_w, row_to_y(r))], fill=_RANGE, width=2)
    if crosshair is not None:
        r, c = voxel_to_plane(volume.data.shape, axis, crosshair, radiological)
        x, y = col_to_x(c), row_to_y(r)
        gap = 6
        draw.line([(0, y), (x - gap, y)], fill=_CROSSHAIR, width=1)
        draw.line([(x + gap, y), (out_w, y)], fill=_CROSSHAIR, width=1)
        draw.line([(x, 0), (x, y - gap)], fill=_CROSSHAIR, width=1)
        draw.line([(x, y + gap), (x, out_h)], fill=_CROSSHAIR, width=1)
    if labels:
        font = _font(max(12, display_px // 24))
        edge = plane_labels(axis, radiological)
        pad = 4
        draw.text((out_w / 2, pad), edge["top"], fill=_LABEL, font=font, anchor="mt")
        draw.text((out_w / 2, out_h - pad), edge["bottom"], fill=_LABEL, font=font, anchor="mb")
        draw.text((pad, out_h / 2), edge["left"], fill=_LABEL, font=font, anchor="lm")
        draw.text((out_w - pad, out_h / 2), edge["right"], fill=_LABEL, font=font, anchor="rm")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _runs_vertically(view_axis: str, range_axis: str) -> bool:
    """Whether slices along ``range_axis`` appear as vertical lines in ``view_axis``'s plane."""
    # Columns of axial/coronal views run left-right (sagittal index); of sagittal, A-P (coronal).
    return (range_axis == "sagittal") or (view_axis == "sagittal" and range_axis == "coronal")


def image_grid(images, ncols: int, pad: int = 2, upscale: int = 1) -> np.ndarray:
    """Tile (N, H, W) images in [0, 1] (or uint8) into one (rows*H, ncols*W) uint8 array."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.dtype != np.uint8:
        images = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
    n, h, w = images.shape
    if upscale > 1:  # nearest: keep every pixel visible as it is
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
        h, w = h * upscale, w * upscale
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.zeros((nrows * (h + pad) - pad, ncols * (w + pad) - pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[i]
    return grid


def display_upscale(size: int) -> int:
    """Whole-number factor that brings a ``size`` px image to about :data:`DISPLAY_PX` (>= 1).

    >>> display_upscale(64), display_upscale(128), display_upscale(256)
    (2, 1, 1)
    """
    return max(1, DISPLAY_PX // int(size))


def grid_png(images, ncols: int = 8, upscale: int = 1) -> bytes:
    """PNG bytes of :func:`image_grid`."""
    return png_bytes(image_grid(images, ncols, upscale=upscale))
