"""core.data.thumbnails: per-axis thumbnail stacks kept on disk for the range previews."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.data.slices import AXES, PREVIEW_PX, preview_slices
from core.data.thumbnails import is_cached, stack_path, thumbnail_stack, thumbnails
from core.data.volumes import load_volume, scan_source
from core.errors import UserError
from helpers import smooth_head, write_nifti


@pytest.fixture
def entry(tiny_nifti):
    return scan_source(tiny_nifti)[0]


@pytest.mark.parametrize("axis", list(AXES))
@pytest.mark.parametrize("radiological", [True, False])
def test_stack_holds_every_slice_scaled_like_the_preview(entry, axis, radiological, tmp_path):
    volume = load_volume(entry)
    n = volume.shape[AXES[axis]]
    stack = thumbnail_stack(entry, axis, radiological, cache_dir=tmp_path)
    assert stack.shape == (n, PREVIEW_PX, PREVIEW_PX) and stack.dtype == np.uint8
    expected = preview_slices(volume, axis, range(n), PREVIEW_PX, radiological)
    np.testing.assert_array_equal(stack, (expected * 255 + 0.5).astype(np.uint8))
    assert stack.max() > 200  # the head is there, not a blank stack


def test_second_call_reads_the_disk_not_the_volume(entry, tiny_nifti, tmp_path):
    first = np.array(thumbnail_stack(entry, "axial", cache_dir=tmp_path))
    path = stack_path(entry, "axial", cache_dir=tmp_path)
    assert path.is_file() and path.parent == tmp_path / "thumbnails"
    assert is_cached(entry, "axial", cache_dir=tmp_path)
    assert not is_cached(entry, "axial", radiological=False, cache_dir=tmp_path)
    assert not is_cached(entry, "coronal", cache_dir=tmp_path)
    # Without the volume file the cached stack still answers: no volume is read.
    tiny_nifti.unlink()
    again = thumbnails(entry, "axial", (0, 5, 31), cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first[[0, 5, 31]])
    with pytest.raises(UserError, match="cannot read"):
        thumbnail_stack(entry, "coronal", cache_dir=tmp_path)
    # Written atomically: no temporary file is left beside the stack.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_changed_file_gets_a_new_stack(entry, tiny_nifti, tmp_path):
    old = np.array(thumbnail_stack(entry, "axial", cache_dir=tmp_path))
    write_nifti(tiny_nifti, smooth_head(seed=5) * 0.5 + 100)
    os.utime(tiny_nifti, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))
    changed = scan_source(tiny_nifti)[0]
    assert stack_path(changed, "axial", cache_dir=tmp_path) != stack_path(entry, "axial", cache_dir=tmp_path)
    new = thumbnail_stack(changed, "axial", cache_dir=tmp_path)
    expected = preview_slices(load_volume(changed), "axial", range(len(new)))
    np.testing.assert_array_equal(new, (expected * 255 + 0.5).astype(np.uint8))
    assert not np.array_equal(new, old)


@pytest.mark.parametrize("damage", [b"", b"not a numpy file", "wrong shape"])
def test_a_damaged_stack_is_rebuilt(entry, tmp_path, damage):
    good = np.array(thumbnail_stack(entry, "sagittal", cache_dir=tmp_path))
    path = stack_path(entry, "sagittal", cache_dir=tmp_path)
    if damage == "wrong shape":
        np.save(path, np.zeros((3, 7, 7), np.uint8))
    else:
        path.write_bytes(damage)
    assert not is_cached(entry, "sagittal", cache_dir=tmp_path)
    np.testing.assert_array_equal(thumbnail_stack(entry, "sagittal", cache_dir=tmp_path), good)
    assert is_cached(entry, "sagittal", cache_dir=tmp_path)


def test_the_loaded_volume_is_used_and_indices_are_checked(entry, tmp_path):
    volume = load_volume(entry)
    picked = thumbnails(entry, "coronal", [1, 2], volume=volume, cache_dir=tmp_path)
    assert picked.shape == (2, PREVIEW_PX, PREVIEW_PX) and picked.flags.writeable
    n = volume.shape[AXES["coronal"]]
    with pytest.raises(UserError, match=f"coronal slice {n} is outside the volume"):
        thumbnails(entry, "coronal", [0, n], cache_dir=tmp_path)
    with pytest.raises(UserError, match="axis must be one of"):
        stack_path(entry, "oblique", cache_dir=tmp_path)


def test_default_location_is_under_the_cache_dir(entry, monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "c"))
    assert stack_path(entry, "axial").parent == tmp_path / "c" / "thumbnails"
    thumbnail_stack(entry, "axial")
    assert is_cached(entry, "axial")
