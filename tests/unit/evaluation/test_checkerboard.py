"""core/evaluation/checkerboard.py on real heads: real slices score ~1, the same slices with a
faint period-2 or period-4 pattern score far above, and nearest-neighbour upsampling (what a
resize-convolution decoder starts from) adds no peak."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.data.volumes import load_volume
from core.errors import UserError
from core.evaluation.checkerboard import checkerboard_index, peak_bins


@pytest.fixture(scope="module")
def real_slices(real_dev_dir):
    """Axial slices through the middle third of six real heads, windowed to [0, 1], 128 px."""
    out = []
    for path in sorted(real_dev_dir.glob("*.nii.gz"))[:6]:
        data = load_volume(path).data
        lo, hi = np.percentile(data, [0.5, 99.5])
        for k in np.linspace(data.shape[2] * 0.4, data.shape[2] * 0.6, 4).astype(int):
            plane = np.clip((data[:, :, k] - lo) / (hi - lo), 0, 1).astype(np.float32)
            out.append(np.asarray(Image.fromarray(plane).resize((128, 128), Image.BILINEAR)))
    return np.stack(out)


def _pattern(period, size=128):
    """A pattern of ``period`` pixels along both axes, zero mean, amplitude 1."""
    i, j = np.indices((size, size))
    return np.where(((i // (period // 2)) + (j // (period // 2))) % 2 == 0, 1.0, -1.0)


def test_real_slices_score_near_one(real_slices):
    index = checkerboard_index(real_slices)
    assert set(index) == {2, 4, 8}
    assert all(0.5 < value < 3 for value in index.values()), index


@pytest.mark.parametrize("period", [2, 4])
def test_a_faint_pattern_is_found_at_its_period(real_slices, period):
    planted = real_slices + 0.01 * _pattern(period)  # 1 % of the range: barely visible
    index = checkerboard_index(planted)
    clean = checkerboard_index(real_slices)
    assert index[period] > 10 * clean[period], (index, clean)


def test_nearest_upsampling_adds_no_peak(real_slices):
    small = real_slices[:, ::2, ::2]
    upsampled = small.repeat(2, axis=1).repeat(2, axis=2)
    assert checkerboard_index(upsampled)[2] < 3


def test_bad_input_is_named():
    with pytest.raises(UserError, match="images must be"):
        checkerboard_index(np.zeros((4, 32, 16)))
    with pytest.raises(UserError, match="does not divide"):
        peak_bins(30, 4)
    assert checkerboard_index(np.random.default_rng(0).random((2, 30, 30)), periods=(2, 4)).keys() == {2}
