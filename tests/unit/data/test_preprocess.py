"""core.data.preprocess on a real head of ../shared/data/real_dev (2 mm): each step, its bad
cases, the per-volume cache, and the dataset manifest/hash with steps.

The chain (skull strip, N4, registration on the 2 mm MNI grid, crop) runs once per session on
one head (``chain``); the step tests read its stages.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from core.data import preprocess as pp
from core.data.dataset import build_dataset, load_manifest
from core.data.slices import SliceSpec
from core.data.volumes import load_volume, scan_source
from core.errors import UserError

SUBJECT = "Subj5_T1"  # the smaller geometry (88 x 128 x 128): the quickest head
SPEC = pp.PreprocessSpec(("skullstrip", "n4", "register", "crop"), register_mm=2.0)
pytestmark = pytest.mark.slow


def _preprocessed_cache(tmp_path_factory):
    # The folder core.settings points at inside every test (tests/conftest.py: _isolated_dirs),
    # so the dataset tests below find the chain's cached steps.
    return tmp_path_factory.getbasetemp() / "cache" / "preprocessed"


@pytest.fixture(scope="module")
def head(real_dev_dir):
    entry = next(e for e in scan_source(real_dev_dir) if e.subject_id == SUBJECT)
    return entry, load_volume(entry)


@pytest.fixture(scope="module")
def chain(head, tmp_path_factory):
    entry, volume = head
    return pp.preprocess_volume(volume, SPEC, entry.identity(), axis="axial",
                                cache_dir=_preprocessed_cache(tmp_path_factory), keep_stages=True)


def _stage(chain, name):
    return next((volume, mask) for step, volume, mask in chain.stages if step == name)


def _low_frequency_cv(data, mask, zooms, sigma_mm=15.0):
    """Spread (sd / mean) of the intensity smoothed over ``sigma_mm`` inside the mask."""
    from scipy import ndimage

    sigma = [sigma_mm / z for z in zooms]
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    smooth = ndimage.gaussian_filter(np.where(mask, data, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    inner = ndimage.binary_erosion(mask, iterations=3)
    return float(smooth[inner].std() / smooth[inner].mean())


# --- the spec ---------------------------------------------------------------------------------

def test_spec_parses_in_fixed_order_and_names_a_bad_step():
    spec = pp.PreprocessSpec.parse("crop, N4,skullstrip,register=2mm")
    assert spec.steps == ("skullstrip", "n4", "register", "crop") and spec.register_mm == 2.0
    assert pp.PreprocessSpec.parse("none").steps == () and not pp.PreprocessSpec.parse("")
    with pytest.raises(UserError, match="'blur'"):
        pp.PreprocessSpec.parse("skullstrip,blur")
    with pytest.raises(UserError, match="register=MM"):
        pp.PreprocessSpec.parse("register=big")


# --- each step on a real head -----------------------------------------------------------------

def test_skull_strip_mask_is_a_plausible_brain(chain, head):
    _, raw = head
    stripped, mask = _stage(chain, "skullstrip")
    litres = mask.sum() * np.prod(raw.zooms) / 1e6
    assert 1.0 <= litres <= 1.9, litres
    assert mask.shape == raw.shape and not stripped.data[~mask].any()
    # The brain sits inside the head, and the head (scalp, neck) is bigger than the brain.
    assert pp.head_mask(raw).sum() > 1.5 * mask.sum()


def test_n4_removes_a_low_frequency_intensity_trend(chain):
    stripped, mask = _stage(chain, "skullstrip")
    x = np.linspace(-1.0, 1.0, stripped.shape[0])[:, None, None]
    z = np.linspace(-1.0, 1.0, stripped.shape[2])[None, None, :]
    biased = dataclasses.replace(stripped, data=(stripped.data * (1.0 + 0.35 * x + 0.2 * z)).astype(np.float32))
    before = _low_frequency_cv(biased.data, mask, stripped.zooms)
    corrected = pp.n4_correct(biased, mask, shrink_mm=8.0)
    after = _low_frequency_cv(corrected.data, mask, stripped.zooms)
    assert after < 0.6 * before, (before, after)
    assert corrected.shape == stripped.shape and corrected.data.dtype == np.float32


def test_registration_centres_the_brain_on_the_template_and_matches_its_anatomy(chain):
    import SimpleITK as sitk
    from scipy import ndimage

    template, template_mask, affine = pp.mni_template(2.0)
    corrected, mask = _stage(chain, "n4")
    registered, moved_mask = _stage(chain, "register")
    assert registered.shape == template.shape and np.allclose(registered.affine, affine)

    def world_centre(m, a):
        return a[:3, :3] @ np.array(ndimage.center_of_mass(m)) + a[:3, 3]

    target = world_centre(template_mask, affine)
    assert np.linalg.norm(world_centre(mask, corrected.affine) - target) > 15  # raw head: off centre
    assert np.linalg.norm(world_centre(moved_mask, affine) - target) < 4
    # Correlation with the template inside its brain, before (the head where the scanner put it,
    # on the template grid) and after.
    grid = pp._to_sitk(template, affine)
    unmoved = pp._from_sitk(sitk.Resample(pp._to_sitk(corrected.data, corrected.affine), grid,
                                          sitk.Transform(), sitk.sitkLinear, 0.0))
    before = np.corrcoef(unmoved[template_mask], template[template_mask])[0, 1]
    after = np.corrcoef(registered.data[template_mask], template[template_mask])[0, 1]
    assert after > before + 0.2 and after > 0.4, (before, after)
    assert pp._dice(moved_mask, template_mask) > 0.8


def test_crop_shrinks_the_field_in_plane_and_keeps_the_brain_and_slice_axis(chain):
    registered, mask = _stage(chain, "register")
    cropped, cropped_mask = _stage(chain, "crop")
    assert cropped.shape[2] == registered.shape[2]  # axial: slice indices keep their meaning
    assert cropped.shape[0] < registered.shape[0] and cropped.shape[1] < registered.shape[1]
    assert cropped_mask.sum() == mask.sum()  # no brain voxel lost
    # World position of a voxel is kept by the moved affine.
    ijk = np.argwhere(cropped_mask)[0]
    offset = np.round(np.linalg.solve(registered.affine[:3, :3], cropped.affine[:3, 3] - registered.affine[:3, 3]))
    assert cropped.data[tuple(ijk)] == registered.data[tuple((ijk + offset).astype(int))]


# --- bad cases name the volume and the step ---------------------------------------------------

def test_empty_and_full_masks_are_refused_by_name(head):
    _, raw = head
    with pytest.raises(pp.PreprocessError, match=r"Subj5_T1\.nii\.gz: skull strip: .*empty"):
        pp.check_brain_mask(raw, np.zeros(raw.shape, bool))
    with pytest.raises(pp.PreprocessError, match=r"Subj5_T1\.nii\.gz: skull strip: .*covers 100%"):
        pp.check_brain_mask(raw, np.ones(raw.shape, bool))
    with pytest.raises(pp.PreprocessError, match=r"crop: the brain mask is empty"):
        pp.crop_to_brain(raw, np.zeros(raw.shape, bool), "axial")


def test_constant_volume_is_refused_by_every_step(head):
    _, raw = head
    flat = dataclasses.replace(raw, data=np.full(raw.shape, 7.0, np.float32))
    with pytest.raises(pp.PreprocessError, match=r"Subj5_T1\.nii\.gz: skull strip: .*constant"):
        pp.skull_strip(flat)
    with pytest.raises(pp.PreprocessError, match=r"N4: .*constant"):
        pp.n4_correct(flat)
    with pytest.raises(pp.PreprocessError, match=r"register: .*constant"):
        pp.register_to_mni(flat, np.ones(raw.shape, bool))


def test_registration_that_cannot_match_the_template_is_reported(chain):
    # A thin rod is no brain: the best rigid fit leaves it far from the template's brain.
    stripped, mask = _stage(chain, "n4")
    rod = np.zeros(mask.shape, bool)
    rod[40:46, 10:120, 60:66] = True
    with pytest.raises(pp.PreprocessError, match=r"Subj5_T1\.nii\.gz: register: did not converge"):
        pp.register_to_mni(stripped, rod, mm=2.0, iterations=10)


# --- cache and dataset ------------------------------------------------------------------------

def test_steps_are_cached_per_volume_and_reused(chain, head, tmp_path_factory):
    entry, volume = head
    started = time.perf_counter()
    again = pp.preprocess_volume(volume, SPEC, entry.identity(), axis="axial",
                                 cache_dir=_preprocessed_cache(tmp_path_factory))
    assert all(again.cached.values()) and time.perf_counter() - started < 10
    assert np.array_equal(again.volume.data, chain.volume.data) and np.array_equal(again.mask, chain.mask)
    assert again.seconds == pytest.approx(chain.seconds)  # the time it took when computed
    # Another crop margin reuses the first three steps and runs crop only.
    wider = dataclasses.replace(SPEC, crop_margin_mm=10.0)
    more = pp.preprocess_volume(volume, wider, entry.identity(), axis="axial",
                                cache_dir=_preprocessed_cache(tmp_path_factory))
    assert [more.cached[s] for s in SPEC.steps] == [True, True, True, False]
    assert more.volume.shape[0] > chain.volume.shape[0]
    # Another volume identity (the file changed) does not reuse them.
    other = pp.preprocess_volume(volume, pp.PreprocessSpec(("crop",)), entry.identity() + "-changed",
                                 axis="axial", cache_dir=_preprocessed_cache(tmp_path_factory))
    assert other.cached == {"crop": False}


def test_dataset_lists_its_steps_in_the_manifest_and_hash(chain, head, tiny_nifti):
    entry, _ = head
    spec = SliceSpec(axis="axial", start=30, stop=34, size=32)
    plain = build_dataset([entry], spec, fractions=(1, 0, 0))
    done = build_dataset([entry], spec, fractions=(1, 0, 0), preprocess=SPEC)
    assert done.path != plain.path and done.manifest["hash"] != plain.manifest["hash"]
    assert "preprocess" not in plain.manifest["spec"]
    assert done.manifest["spec"]["preprocess"]["steps"] == list(SPEC.steps)
    assert done.manifest["spec"]["preprocess"]["register_mm"] == 2.0
    assert set(done.preprocess_seconds) == set(SPEC.steps) and done.preprocess_seconds["skullstrip"] > 0
    images = np.load(done.path / "train.npy")
    assert images.shape == (4, 32, 32) and 0 <= images.min() and images.max() <= 1
    # Same choice again: reused, with the recorded step times.
    again = build_dataset([entry], spec, fractions=(1, 0, 0), preprocess=SPEC)
    assert again.reused and again.path == done.path and again.preprocess_seconds == done.preprocess_seconds
    assert load_manifest(done.path)["preprocess_seconds"] == done.preprocess_seconds
    # Other parameters, other dataset.
    other = build_dataset([entry], spec, fractions=(1, 0, 0),
                          preprocess=dataclasses.replace(SPEC, crop_margin_mm=10.0))
    assert other.manifest["hash"] != done.manifest["hash"]


def test_a_volume_that_fails_a_step_is_skipped_by_name_and_the_others_build(chain, head, tiny_nifti):
    # tiny_nifti is a 40 x 48 x 32 smooth blob, no head: skull stripping finds no plausible brain.
    entry, _ = head
    tiny = scan_source(tiny_nifti)[0]
    spec = SliceSpec(axis="axial", start=10, stop=12, size=32)
    result = build_dataset([entry, tiny], spec, fractions=(1, 0, 0), preprocess=SPEC)
    assert result.manifest["splits"]["train"]["subjects"] == [SUBJECT]
    assert len(result.skipped) == 1 and result.skipped[0].startswith(f"{tiny.name}: skull strip: ")
