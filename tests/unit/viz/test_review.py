"""Review panels: heat colours, window PNG, colour bar."""

import io

import numpy as np
from PIL import Image

from core.viz.review import HEAT_STOPS, colorbar_png, heat_rgb, heatmap_png, window_png


def test_heat_rgb_ends_and_clipping():
    rgb = heat_rgb(np.array([[0.0, 0.5, 1.0, 2.0]]), vmax=1.0)
    assert rgb[0, 0].tolist() == HEAT_STOPS[0].astype(int).tolist()
    assert rgb[0, 2].tolist() == HEAT_STOPS[-1].astype(int).tolist() == rgb[0, 3].tolist()
    assert rgb[0, 1].tolist() == HEAT_STOPS[2].astype(int).tolist()  # the middle stop


def test_window_and_heatmap_png_are_zoomed_without_smoothing():
    image = np.zeros((4, 4), np.float32)
    image[0, 0] = 1.0
    png = Image.open(io.BytesIO(window_png(image, 0.5, 1.0, zoom=3)))
    assert png.size == (12, 12)
    pixels = np.asarray(png)
    assert (pixels[:3, :3] == 255).all() and (pixels[3:, 3:] == 0).all()
    heat = Image.open(io.BytesIO(heatmap_png(image, 1.0, zoom=2)))
    assert heat.size == (8, 8) and heat.mode == "RGB"


def test_colorbar_has_the_requested_height():
    bar = Image.open(io.BytesIO(colorbar_png(0.3, height=100)))
    assert bar.size[1] == 112 and bar.size[0] > 18
