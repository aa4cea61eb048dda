"""core.data.volumes on the real IXI sample, an IXI-like tar, and every kind of bad input."""

from __future__ import annotations

import gzip
import tarfile

import nibabel as nib
import numpy as np
import pytest

from helpers import smooth_head, write_nifti
from core.data.volumes import canonical_shape, load_volume, parse_subject_name, scan_source, volume_from_bytes
from core.errors import UserError


# --- Real IXI --------------------------------------------------------------------------------

def test_real_ixi_is_reoriented_to_ras(ixi_sample_dir):
    entry = scan_source(ixi_sample_dir)[0]
    volume = load_volume(entry)
    raw = nib.load(entry.path)
    assert volume.raw_axcodes == ("P", "S", "R")
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    # Stored (P, S, R) -> canonical (R, A, S): axes (2, 0, 1), with P flipped to A.
    expected = np.asarray(raw.dataobj, dtype=np.float32).transpose(2, 0, 1)[:, ::-1, :]
    np.testing.assert_array_equal(volume.data, expected)
    np.testing.assert_allclose(volume.zooms, [2.0, 2.0, 2.0])
    assert volume.shape == canonical_shape(entry) == (90, 120, 120)
    assert volume.data.dtype == np.float32 and np.isfinite(volume.data).all()


def test_ixi_names_give_id_and_site(ixi_sample_dir):
    entries = scan_source(ixi_sample_dir)
    assert [(e.subject_id, e.site) for e in entries] == [
        ("IXI012-HH-1211-T1", "HH"), ("IXI015-HH-1258-T1", "HH")]
    assert parse_subject_name("IXI002-Guys-0828-T1.nii.gz") == ("IXI002-Guys-0828-T1", "Guys")
    assert parse_subject_name("IXI100-iop-0001-T1.nii") == ("IXI100-iop-0001-T1", "IOP")
    assert parse_subject_name("scan 7.nii") == ("scan 7", None)


def test_ixi_tar_is_read_in_place(ixi_sample_dir, tmp_path):
    archive = tmp_path / "IXI-T1.tar"
    with tarfile.open(archive, "w") as tar:  # IXI-T1.tar is an uncompressed tar of .nii.gz
        for path in sorted(ixi_sample_dir.glob("*.nii.gz")):
            tar.add(path, arcname=path.name)
    from_tar = scan_source(archive)
    from_folder = scan_source(ixi_sample_dir)
    assert [e.subject_id for e in from_tar] == [e.subject_id for e in from_folder]
    assert from_tar[0].member is not None
    np.testing.assert_array_equal(load_volume(from_tar[1]).data, load_volume(from_folder[1]).data)
    assert canonical_shape(from_tar[0]) == (90, 120, 120)


def test_raw_index_maps_to_canonical(ixi_sample_dir):
    volume = load_volume(scan_source(ixi_sample_dir)[0])
    # Stored axis 1 is S -> canonical axis 2, same direction; stored axis 0 is P -> A, flipped.
    assert volume.raw_index_to_canonical(1, 10) == (2, 10)
    assert volume.raw_index_to_canonical(0, 10) == (1, 120 - 1 - 10)


# --- Bad input --------------------------------------------------------------------------------

def _nifti_bytes(data, gz=True):
    image = nib.Nifti1Image(np.asarray(data), np.diag([1.2, 1, 1, 1]))
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def test_truncated_gzip_names_the_file(ixi_sample_dir):
    raw = (ixi_sample_dir / "IXI012-HH-1211_T1.nii.gz").read_bytes()
    with pytest.raises(UserError, match=r"IXI012.*(truncated|corrupt)"):
        volume_from_bytes(raw[: len(raw) // 2], "IXI012-HH-1211_T1.nii.gz")


def test_truncated_uncompressed_voxels(tmp_path):
    raw = _nifti_bytes(smooth_head(), gz=False)
    with pytest.raises(UserError, match="cut.nii"):
        volume_from_bytes(raw[: len(raw) - 5000], "cut.nii")


def test_corrupt_and_foreign_files():
    with pytest.raises(UserError, match="bad.nii.gz.*gzip"):
        volume_from_bytes(b"\x1f\x8b\x08\x00not really gzip", "bad.nii.gz")
    with pytest.raises(UserError, match="notes.nii.gz.*not gzip"):
        volume_from_bytes(b"hello", "notes.nii.gz")
    with pytest.raises(UserError, match="notes.nii.*not a readable NIfTI"):
        volume_from_bytes(b"this is a text file, not an image" * 20, "notes.nii")


def test_4d_singleton_is_squeezed_other_4d_refused():
    head = smooth_head()
    volume = volume_from_bytes(_nifti_bytes(head[..., None]), "one.nii.gz")
    assert volume.shape == head.shape
    with pytest.raises(UserError, match="4-D"):
        volume_from_bytes(_nifti_bytes(np.stack([head] * 3, axis=-1)), "fmri.nii.gz")


def test_2d_and_tiny_images_refused():
    with pytest.raises(UserError, match="2-D"):
        volume_from_bytes(_nifti_bytes(np.ones((64, 64), np.float32)), "flat.nii.gz")
    with pytest.raises(UserError, match="2-D"):
        volume_from_bytes(_nifti_bytes(np.ones((64, 64, 1), np.float32)), "flat3.nii.gz")


def test_nan_inf_voxels_are_zeroed_with_a_warning_all_nan_refused():
    head = smooth_head()
    head[0, 0, :3] = [np.nan, np.inf, -np.inf]
    volume = volume_from_bytes(_nifti_bytes(head), "nan.nii.gz")
    assert np.isfinite(volume.data).all()
    assert "3 NaN/Inf voxels" in volume.warnings[0]
    with pytest.raises(UserError, match="no finite voxels"):
        volume_from_bytes(_nifti_bytes(np.full((8, 8, 8), np.nan, np.float32)), "allnan.nii.gz")


def test_constant_volume_refused():
    with pytest.raises(UserError, match="constant intensity 7"):
        volume_from_bytes(_nifti_bytes(np.full((16, 16, 16), 7, np.int16)), "flat.nii.gz")


def test_empty_missing_and_non_nifti_sources(tmp_path):
    with pytest.raises(UserError, match="no NIfTI volumes"):
        scan_source(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        scan_source(tmp_path / "nowhere")
    text = tmp_path / "readme.txt"
    text.write_text("hi")
    with pytest.raises(UserError, match="neither a folder"):
        scan_source(text)


def test_a_folder_named_like_nifti_is_not_a_volume(tmp_path):
    write_nifti(tmp_path / "good.nii.gz", smooth_head())
    (tmp_path / "trap.nii.gz").mkdir()
    assert [e.subject_id for e in scan_source(tmp_path)] == ["good"]


@pytest.mark.parametrize("name", ["with space.nii.gz", "ümlaut-ß.nii.gz", ";rm -rf ~.nii.gz",
                                  "-leading-dash.nii.gz", "x" * 200 + ".nii.gz"])
def test_hostile_file_names_load(tmp_path, name):
    write_nifti(tmp_path / name, smooth_head())
    (entry,) = scan_source(tmp_path)
    assert load_volume(entry).shape == (32, 40, 48)
    assert entry.subject_id == name[: -len(".nii.gz")]


def test_duplicate_subjects_are_kept_once(tmp_path):
    write_nifti(tmp_path / "IXI001-Guys-0001-T1.nii.gz", smooth_head())
    (tmp_path / "copy").mkdir()
    write_nifti(tmp_path / "copy" / "IXI001-Guys-0001_T1.nii.gz", smooth_head())
    assert len(scan_source(tmp_path)) == 1


