"""Tests for core/evaluation/blotches.py: the blotch rate on planted cases."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.blotches import BlotchDetector, blotch_rate


def _heads(n, size=64, seed=0):
    """Ellipse 'heads' of varying size with a darker centre and mild noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    out = []
    for _ in range(n):
        a, b = rng.uniform(0.6, 0.85, 2)
        head = ((xx / a) ** 2 + (yy / b) ** 2) < 1
        centre = ((xx / 0.15) ** 2 + (yy / 0.3) ** 2) < 1
        image = 0.75 * head - 0.35 * centre + rng.normal(0, 0.03, (size, size))
        out.append(np.clip(image, 0, 1))
    return np.array(out, np.float32)


def _disk(image, row, col, radius, value):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    out = image.copy()
    out[(yy - row) ** 2 + (xx - col) ** 2 <= radius**2] = value
    return out


@pytest.fixture(scope="module")
def real():
    return _heads(200, seed=0)


def test_real_slices_have_no_blotches(real):
    assert blotch_rate(_heads(100, seed=1), real)["rate"] == 0.0


def test_planted_blotches_are_counted(real):
    clean = _heads(20, seed=2)
    planted = clean.copy()
    planted[0] = _disk(clean[0], 59, 48, 3, 1.0)   # bright blob on the background, lower rows
    planted[1] = _disk(clean[1], 44, 32, 4, 0.0)   # dark blob inside the head, lower rows
    planted[2] = _disk(clean[2], 54, 5, 3, 1.0)    # bright blob in a lower corner
    planted[3] = _disk(clean[3], 4, 48, 3, 1.0)    # upper rows: not the drift measured
    planted[4] = clean[4].copy()
    planted[4][50, 30] = planted[4][52, 40] = 1.0  # single hot pixels: too small
    result = blotch_rate(planted, real)
    assert result["flagged"] == [0, 1, 2]
    assert result["rate"] == pytest.approx(3 / 20) and result["n"] == 20
    kinds = [BlotchDetector(real).blotches(planted[i])[0]["kind"] for i in (0, 1)]
    assert kinds == ["bright", "dark"]


def test_start_fraction_zero_counts_the_whole_image(real):
    image = _disk(_heads(1, seed=3)[0], 4, 48, 3, 1.0)
    assert blotch_rate(image[None], real)["rate"] == 0.0
    assert blotch_rate(image[None], real, start_fraction=0.0)["rate"] == 1.0


def test_min_area_scales_with_the_image():
    assert BlotchDetector(_heads(4, size=64)).min_area == 16
    assert BlotchDetector(_heads(4, size=32)).min_area == 4


@pytest.mark.parametrize(
    "kwargs, name",
    [({"low": 50, "high": 10}, "percentiles"), ({"window": 4}, "window"),
     ({"start_fraction": 1.0}, "start_fraction"), ({"margin": -0.1}, "margin")],
)
def test_bad_settings(real, kwargs, name):
    with pytest.raises(UserError, match=name):
        BlotchDetector(real, **kwargs)


def test_bad_shapes(real):
    with pytest.raises(UserError, match="samples"):
        blotch_rate(np.zeros((2, 32, 32)), real)
    with pytest.raises(UserError, match="real"):
        blotch_rate(np.zeros((2, 64, 64)), np.zeros((0, 64, 64)))
