"""Helpers that drive Browse's client-side viewer (ui/components/volume_viewer) in a real browser:
find its frame, read a plane canvas's pixels, move a slice slider and time the redraw.

Shared by tests/e2e/test_browse_viewer.py and bench/browser.py.
"""

from __future__ import annotations

import time

import numpy as np

FRAME = 'iframe[title*="volume_viewer"]'


def viewer_frame(page, timeout_ms: int = 120_000, loaded: bool = True):
    """The viewer's ``Frame`` once it has drawn its first planes (``loaded``: from the whole volume,
    not only the preview planes that come with the page)."""
    page.locator(FRAME).first.wait_for(timeout=timeout_ms)
    frame = page.locator(FRAME).first.element_handle().content_frame()
    frame.wait_for_selector("body[data-loaded]" if loaded else "body[data-draws]", state="attached",
                            timeout=timeout_ms)
    return frame


def draws(frame) -> int:
    return int(frame.evaluate("() => window.volumeViewer.draws"))


def wait_shape(frame, axis: str, rows: int, cols: int, timeout_ms: int = 120_000) -> None:
    """Wait until the ``axis`` plane canvas has ``rows`` × ``cols`` pixels (a new volume drawn)."""
    frame.wait_for_function(
        "([axis, rows, cols]) => { const c = document.querySelector(`canvas.plane[data-axis=${axis}]`);"
        " return c && c.height === rows && c.width === cols; }", arg=[axis, rows, cols], timeout=timeout_ms)


def wait_volume(frame, shape, timeout_ms: int = 120_000) -> None:
    """Wait until the viewer holds a whole volume of ``shape`` (not only a subject's preview planes)."""
    frame.wait_for_function(
        "shape => { const v = window.volumeViewer; return v.data && v.meta"
        " && v.data.length === shape[0] * shape[1] * shape[2] && v.meta.shape.join() === shape.join(); }",
        arg=[int(s) for s in shape], timeout=timeout_ms)


def plane_pixels(frame, axis: str) -> np.ndarray:
    """``(rows, cols)`` uint8 grey values of the viewer's ``axis`` plane canvas (voxel resolution)."""
    width, height, values = frame.evaluate(
        "axis => { const c = document.querySelector(`canvas.plane[data-axis=${axis}]`);"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " const g = new Array(c.width * c.height); for (let i = 0; i < g.length; i++) g[i] = d[4 * i];"
        " return [c.width, c.height, g]; }", axis)
    return np.asarray(values, np.uint8).reshape(height, width)


def crosshair(frame) -> tuple[int, int, int]:
    return tuple(int(v) for v in frame.evaluate("() => window.volumeViewer.ijk"))


def slider_moves(frame, axis: str, moves: int, key: str = "ArrowRight") -> list[float]:
    """Press ``key`` on the ``axis`` slice slider ``moves`` times; for each, ms from the key press
    (sent by Playwright) until the viewer has drawn the new slice (its draw counter moved, checked
    each animation frame)."""
    slider = frame.locator(f'input[type=range][aria-label="{axis} slice"]')
    slider.focus()
    times = []
    for _ in range(moves):
        before = draws(frame)
        started = time.perf_counter()
        slider.press(key)
        frame.wait_for_function("n => window.volumeViewer.draws > n", arg=before, polling="raf", timeout=10_000)
        times.append((time.perf_counter() - started) * 1000)
    return times
