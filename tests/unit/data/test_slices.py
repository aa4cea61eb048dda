"""core.data.slices: plane orientation, aspect, scaling, the thesis preset, range yield."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.slices import (
    SliceSpec, extract_slices, plane, range_yield, thesis_spec, to_square, voxel_to_plane,
)
from core.data.volumes import load_volume, scan_source, volume_from_bytes
from core.errors import UserError

SHAPE = (20, 30, 40)  # canonical X (R), Y (A), Z (S)


def _marker_volume(ijk):
    data = np.zeros(SHAPE, np.float32)
    data[ijk] = 1.0
    return data


@pytest.mark.parametrize("radiological", [True, False])
def test_marker_lands_where_anatomy_says(radiological):
    # A voxel on the subject's right (high i), anterior (high j), superior (high k).
    ijk = (17, 25, 33)
    data = _marker_volume(ijk)
    axial = plane(data, "axial", ijk[2], radiological)
    row, col = np.argwhere(axial == 1)[0]
    assert row < axial.shape[0] / 2  # anterior is at the top
    assert (col < axial.shape[1] / 2) == radiological  # radiological: the right is on the left
    coronal = plane(data, "coronal", ijk[1], radiological)
    assert np.argwhere(coronal == 1)[0][0] < coronal.shape[0] / 2  # superior at the top
    sagittal = plane(data, "sagittal", ijk[0], radiological)
    r, c = np.argwhere(sagittal == 1)[0]
    assert r < sagittal.shape[0] / 2 and c < sagittal.shape[1] / 2  # superior top, anterior left


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("radiological", [True, False])
def test_voxel_plane_round_trip(axis, radiological):
    ijk = (3, 21, 35)
    data = _marker_volume(ijk)
    index = ijk[{"sagittal": 0, "coronal": 1, "axial": 2}[axis]]
    row, col = voxel_to_plane(SHAPE, axis, ijk, radiological)
    assert plane(data, axis, index, radiological)[row, col] == 1.0


def test_plane_outside_volume_is_a_user_error():
    with pytest.raises(UserError, match="axial slice 40 is outside"):
        plane(np.zeros(SHAPE), "axial", 40)


def test_to_square_pads_never_squashes():
    image = np.ones((50, 100), np.float32)  # 1 mm pixels: 50 mm tall, 100 mm wide
    out = to_square(image, (1.0, 1.0), 64)
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    assert out.shape == (64, 64)
    assert out.max(axis=0).min() > 0.5  # full width used
    assert abs(len(rows) - 32) <= 1  # half the height: aspect kept, padded
    # Anisotropic pixels: 100 x 50 pixels of 0.5 x 1 mm is a 50 mm square.
    square = to_square(np.ones((100, 50), np.float32), (0.5, 1.0), 64)
    assert (square > 0.5).all()


def test_extract_slices_scales_per_volume(ixi_sample_dir):
    volume = load_volume(scan_source(ixi_sample_dir)[0])
    spec = SliceSpec("axial", 40, 70, 64)
    stack = extract_slices(volume, spec)
    assert stack.shape == (30, 64, 64) and stack.dtype == np.float32
    assert 0.0 <= stack.min() and stack.max() <= 1.0
    # Per-volume scaling: low slices are darker on average than mid-brain ones, not all
    # stretched to the same range as per-slice min-max scaling would do.
    maxima = stack.reshape(30, -1).max(axis=1)
    assert maxima.min() < maxima.max()
    with pytest.raises(UserError, match="outside this volume"):
        extract_slices(volume, SliceSpec("axial", 100, 130, 64))


def test_slice_spec_checks_its_arguments():
    for bad in [dict(axis="oblique", start=0, stop=1), dict(axis="axial", start=5, stop=5),
                dict(axis="axial", start=-1, stop=3), dict(axis="axial", start=0, stop=3, size=4)]:
        with pytest.raises(UserError):
            SliceSpec(**bad)
    spec = SliceSpec("coronal", 10, 40, 96)
    assert SliceSpec.from_dict(spec.to_dict()) == spec and spec.count == 30


def _full_res_ixi_like(flip_superior: bool):
    """A 256×256×150 volume stored like IXI (axis codes P, S, R) at 0.94×0.94×1.2 mm."""
    import gzip

    import nibabel as nib

    data = np.zeros((256, 256, 150), np.int16)
    data[:, 160:190, :] = 100  # the thesis slab on the stored S axis
    data[100:150, :, 60:90] += 50
    s = -0.9375 if flip_superior else 0.9375
    affine = np.array([[0, 0, 1.2, -90], [-0.9375, 0, 0, 120], [0, s, 0, -100], [0, 0, 0, 1]])
    raw = gzip.compress(nib.Nifti1Image(data, affine).to_bytes(), compresslevel=1)
    return volume_from_bytes(raw, "IXI999-Guys-0001-T1.nii.gz")


@pytest.mark.parametrize("flip", [False, True])
def test_thesis_preset_maps_raw_160_190_to_canonical(flip):
    volume = _full_res_ixi_like(flip)
    spec = thesis_spec(volume)
    assert spec.axis == "axial" and spec.count == 30
    assert (spec.start, spec.stop) == ((66, 96) if flip else (160, 190))
    # The slab marked at raw 160..189 is exactly what the spec selects.
    slab = volume.data[:, :, spec.start:spec.stop]
    assert (slab >= 100).all()
    assert (volume.data[:, :, spec.start - 1] < 100).any() and (volume.data[:, :, spec.stop] < 100).any()


def test_thesis_preset_refuses_downsampled_volumes(ixi_sample_dir):
    with pytest.raises(UserError, match="full-resolution IXI"):
        thesis_spec(load_volume(scan_source(ixi_sample_dir)[0]))


def test_range_yield_counts_usable_volumes():
    shapes = {"a": (100, 100, 100), "b": (100, 100, 50), "c": "cannot read"}
    result = range_yield(shapes, "axial", 40, 70)
    assert result == {"volumes": 1, "slices": 30, "too_small": ["b"], "unreadable": ["c"]}
