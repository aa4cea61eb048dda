"""The viewer's volume: 8-bit bytes equal to core.viz's window, the window table, preview planes."""

import zlib

import numpy as np
import pytest

from core.data.slices import AXES, plane
from core.data.volumes import load_volume
from core.viz.images import apply_window, auto_window
from core.viz.volume import preview_planes, viewer_meta, volume_payload, window_lut
from helpers import smooth_head, write_nifti


@pytest.fixture
def volume(tmp_path):
    return load_volume(write_nifti(tmp_path / "IXI900-Guys-0001-T1.nii.gz", smooth_head()))


def test_payload_is_the_windowed_volume_in_c_order(volume):
    level, width = auto_window(volume.data)
    raw = np.frombuffer(zlib.decompress(volume_payload(volume, level, width)), np.uint8)
    assert raw.size == np.prod(volume.shape)
    np.testing.assert_array_equal(raw.reshape(volume.shape), apply_window(volume.data, level, width))


@pytest.mark.parametrize("radiological", [True, False])
def test_preview_planes_are_the_servers_planes(volume, radiological):
    level, width = auto_window(volume.data)
    ijk = (5, 30, 7)
    planes = preview_planes(volume, ijk, level, width, radiological)
    for axis, a in AXES.items():
        np.testing.assert_array_equal(planes[axis], apply_window(plane(volume.data, axis, ijk[a], radiological),
                                                                 level, width))


def test_window_table_maps_8_bit_values_like_the_server_window(volume):
    base_level, base_width = auto_window(volume.data)
    level, width = base_level + 0.1 * base_width, 0.5 * base_width  # narrower, brighter
    lut = window_lut(base_level, base_width, level, width)
    assert lut.shape == (256,) and lut.dtype == np.uint8 and (np.diff(lut.astype(int)) >= 0).all()
    via_table = lut[apply_window(volume.data, base_level, base_width)]
    direct = apply_window(volume.data, level, width)
    inside = (volume.data >= base_level - base_width / 2) & (volume.data <= base_level + base_width / 2)
    # one 8-bit step of the base window is two of this one: within 2 levels (rounding both ways)
    assert np.abs(via_table.astype(int) - direct.astype(int))[inside].max() <= 2


def test_meta_is_json_ready(volume):
    import json

    meta = viewer_meta(volume, True, (1, 2, 3), ("axial", 4, 9), np.arange(256, dtype=np.uint8))
    again = json.loads(json.dumps(meta))
    assert again["shape"] == list(volume.shape) and again["range"] == ["axial", 4, 9]
    assert again["crosshair"] == [1, 2, 3] and len(again["lut"]) == 256
