"""Review panels as PNG bytes: windowed slices, residual heat maps with a colour bar (no streamlit)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from core.viz.images import _font, apply_window, png_bytes

__all__ = ["HEAT_STOPS", "heat_rgb", "window_png", "heatmap_png", "colorbar_png", "study_png"]

#: Colour stops of the residual map (black → purple → orange → yellow, like "inferno").
HEAT_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heat_rgb(values: np.ndarray, vmax: float) -> np.ndarray:
    """``(H, W)`` values in [0, vmax] → ``(H, W, 3)`` uint8 colours of :data:`HEAT_STOPS`."""
    t = np.clip(np.asarray(values, np.float32) / max(float(vmax), 1e-6), 0, 1) * (len(HEAT_STOPS) - 1)
    low = np.minimum(t.astype(int), len(HEAT_STOPS) - 2)
    frac = (t - low)[..., None]
    return (HEAT_STOPS[low] * (1 - frac) + HEAT_STOPS[low + 1] * frac + 0.5).astype(np.uint8)


def _zoom(array: np.ndarray, zoom: int) -> np.ndarray:
    zoom = max(1, int(zoom))
    return array.repeat(zoom, axis=0).repeat(zoom, axis=1) if zoom > 1 else array


def window_png(image, level: float = 0.5, width: float = 1.0, zoom: int = 4) -> bytes:
    """PNG of a slice in [0, 1] through one window (level/width), upscaled ``zoom``× (nearest)."""
    return png_bytes(_zoom(apply_window(image, level, width), zoom))


def heatmap_png(residual, vmax: float, zoom: int = 4) -> bytes:
    """PNG of an absolute residual map coloured on [0, vmax], upscaled ``zoom``× (nearest)."""
    return png_bytes(_zoom(heat_rgb(residual, vmax), zoom))


def colorbar_png(vmax: float, height: int = 256, width: int = 18, label_width: int = 52) -> bytes:
    """A vertical colour bar for :func:`heatmap_png` with ticks 0, vmax/2, vmax (|residual|)."""
    ramp = np.linspace(vmax, 0, height)[:, None].repeat(width, axis=1)
    canvas = Image.new("RGB", (width + label_width, height + 12), "white")
    canvas.paste(Image.fromarray(heat_rgb(ramp, vmax)), (0, 6))
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    for value in (vmax, vmax / 2, 0.0):
        y = 6 + int(round((1 - value / max(vmax, 1e-6)) * (height - 1)))
        draw.line([(width, y), (width + 4, y)], fill="black")
        draw.text((width + 6, max(0, y - 6)), f"{value:.2f}", fill="black", font=font)
    return png_bytes(np.asarray(canvas))


def study_png(image, zoom: int = 5, salt: str = "") -> bytes:
    """A reader-study image: full window, ``zoom``× (nearest), an *uncompressed* PNG with ``salt``.

    Uncompressed: a compressed PNG of a blurry synthetic slice is smaller than one of a sharp
    real slice, and a reader sees file sizes in the browser's network panel; stored raw, every
    image of a study has one size.  ``salt`` goes into a ``tEXt`` chunk, never into the pixels:
    the page serves an image under a hash of its bytes, so a salt per reviewer and item gives
    every reviewer their own address for the same image (pass salts of one length, so the
    sizes stay equal).
    """
    import io

    from PIL.PngImagePlugin import PngInfo

    pixels = _zoom(apply_window(image, 0.5, 1.0), zoom)
    info = PngInfo()
    if salt:
        info.add_text("latentbrain", str(salt))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0, pnginfo=info)
    return buffer.getvalue()
