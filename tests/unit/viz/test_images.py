"""core.viz.images: windowing, PNG bytes, physical aspect, crosshair, grids."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.data.slices import plane
from core.data.volumes import volume_from_bytes
from core.viz.images import apply_window, auto_window, grid_png, image_grid, png_bytes, render_plane


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _decode_rgb(data: bytes) -> np.ndarray:
    """What the browser shows (a palette PNG's indices looked up in its palette)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_apply_window_maps_level_and_width():
    image = np.array([[0.0, 50.0, 100.0, 200.0]])
    np.testing.assert_array_equal(apply_window(image, level=100, width=100)[0], [0, 0, 127, 255])


def test_png_round_trip():
    image = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    np.testing.assert_array_equal(_decode(png_bytes(image)), image)
    floats = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert _decode(png_bytes(floats))[-1, -1] == 255


def _anisotropic_volume():
    import gzip

    import nibabel as nib

    data = np.random.default_rng(0).random((40, 40, 20)).astype(np.float32)
    # RAS axes with 1 x 1 x 2 mm voxels: the coronal plane (R x S) is 40 mm wide, 40 mm tall.
    raw = gzip.compress(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])).to_bytes())
    return volume_from_bytes(raw, "aniso.nii.gz")


def test_render_keeps_physical_aspect_and_draws_overlays():
    volume = _anisotropic_volume()
    level, width = auto_window(volume.data)
    coronal = _decode_rgb(render_plane(volume, "coronal", 20, level, width, display_px=200, labels=False))
    assert coronal.shape[:2] == (200, 200)  # 20 voxels of 2 mm = 40 voxels of 1 mm: square
    axial = _decode_rgb(render_plane(volume, "axial", 10, level, width, display_px=200, labels=False,
                                 crosshair=(5, 5, 10)))
    assert axial.shape == (200, 200, 3)
    cyan = (axial[..., 0] < 30) & (axial[..., 1] > 200) & (axial[..., 2] > 240)
    assert cyan.sum() > 100  # the crosshair is drawn
    with_range = _decode_rgb(render_plane(volume, "coronal", 20, level, width, display_px=200, labels=False,
                                      range_lines=("axial", 4, 8)))
    orange = (with_range[..., 0] > 240) & (with_range[..., 1] > 150) & (with_range[..., 2] < 30)
    assert orange.any(axis=1).sum() >= 2  # two horizontal lines: first and last chosen slice


def test_render_keeps_the_windowed_grey_levels():
    volume = _anisotropic_volume()
    level, width = auto_window(volume.data)
    shown = _decode_rgb(render_plane(volume, "coronal", 20, level, width, display_px=40, labels=False))
    assert shown.shape == (40, 40, 3)
    assert (shown[..., 0] == shown[..., 1]).all() and (shown[..., 1] == shown[..., 2]).all()  # grey
    # 40 x 20 voxels of 1 x 2 mm shown at 40 x 40 px: the windowed plane, resampled bilinearly
    # to its physical aspect, within one grey step (252 levels are shown).
    windowed = Image.fromarray(apply_window(plane(volume.data, "coronal", 20), level, width))
    expected = np.asarray(windowed.resize((40, 40), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(shown[..., 0].astype(int) - expected).max() <= 1


def test_image_grid_tiles_and_upscales():
    images = np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 0.5, 1.0)])
    grid = image_grid(images, ncols=2, pad=1, upscale=2)
    assert grid.shape == (2 * 8 + 1, 2 * 8 + 1)
    assert grid[0, 0] == 0 and grid[0, 9] == 128 and grid[9, 0] == 255
    assert _decode(grid_png(images, ncols=3)).shape == (4, 3 * 4 + 2 * 2)
