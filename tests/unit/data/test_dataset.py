"""core.data.dataset: subject-level split, cache reuse, manifest, damaged caches, bad volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.dataset import (
    balance_table, build_dataset, list_datasets, load_manifest, load_split_images, split_subjects,
)
from core.data.demographics import cohort_table
from core.data.slices import SliceSpec
from core.data.volumes import scan_source
from core.errors import UserError
from helpers import smooth_head, write_nifti

SITES = ["Guys", "HH", "IOP"]


@pytest.fixture(scope="module")
def cohort_template(tmp_path_factory, ixi_sample_dir):
    """The two real IXI volumes plus eight synthetic IXI-named ones, written once for the module
    (writing the eight gzipped volumes is most of a test's time here)."""
    folder = tmp_path_factory.mktemp("cohort_template") / "cohort"
    folder.mkdir()
    for path in ixi_sample_dir.glob("*.nii.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    for n in range(8):
        write_nifti(folder / f"IXI9{n:02d}-{SITES[n % 3]}-{n:04d}-T1.nii.gz",
                    smooth_head((90, 120, 120), seed=n), zooms=(2.0, 2.0, 2.0))
    return folder


@pytest.fixture
def cohort_dir(tmp_path, cohort_template):
    """This test's own copy of the template cohort (a test may add or break files in it)."""
    import shutil

    return shutil.copytree(cohort_template, tmp_path / "cohort")


def test_split_is_by_subject_deterministic_and_allows_zero():
    ids = [f"S{i:02d}" for i in range(20)]
    split = split_subjects(ids, (0.8, 0.1, 0.1), seed=3)
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(ids)
    assert [len(s) for s in sets] == [16, 2, 2]
    assert split_subjects(ids, (0.8, 0.1, 0.1), seed=3) == split
    assert split_subjects(ids, (0.8, 0.1, 0.1), seed=4) != split
    assert split_subjects(ids, (1, 0, 0))["train"] == ids
    for bad in [(1, 1), (-1, 1, 1), (0, 0, 0)]:
        with pytest.raises(UserError, match="split fractions"):
            split_subjects(ids, bad)


def test_build_is_leak_free_scaled_and_cached(cohort_dir, tmp_path):
    entries = scan_source(cohort_dir)
    spec = SliceSpec("axial", 50, 60, 32)
    cache = tmp_path / "datasets"
    first = build_dataset(entries, spec, cohort_table(entries), fractions=(0.6, 0.2, 0.2), seed=1,
                          cache_dir=cache)
    assert not first.reused and not first.skipped
    manifest = load_manifest(first.path)
    assert manifest["spec"]["axis"] == "axial" and manifest["spec"]["size"] == 32
    subjects = {k: set(v["subjects"]) for k, v in manifest["splits"].items()}
    assert not (subjects["train"] & subjects["val"] or subjects["train"] & subjects["test"]
                or subjects["val"] & subjects["test"])
    assert sum(len(s) for s in subjects.values()) == 10
    for name, entry in manifest["splits"].items():
        images = load_split_images(first.path, name)
        assert images.shape == (10 * len(entry["subjects"]), 32, 32)
        assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
        assert {s for s, _ in entry["slices"]} == subjects[name]
        assert sorted({i for _, i in entry["slices"]}) == list(range(50, 60))
    # Identical choice: reused at once from the same folder.
    again = build_dataset(entries, spec, fractions=(0.6, 0.2, 0.2), seed=1, cache_dir=cache)
    assert again.reused and again.path == first.path and again.seconds < first.seconds
    # Another range or seed: another hash.
    other = build_dataset(entries, SliceSpec("axial", 50, 61, 32), fractions=(0.6, 0.2, 0.2), seed=1,
                          cache_dir=cache)
    assert other.path != first.path
    assert len(list_datasets(cache)) == 2


def test_balance_table_counts(cohort_dir, tmp_path):
    entries = scan_source(cohort_dir)
    table = cohort_table(entries)
    table.loc[:, "age"] = np.arange(len(table)) * 5 + 20.0
    table.loc[:, "sex"] = ["F", "M"] * (len(table) // 2)
    result = build_dataset(entries, SliceSpec("axial", 50, 52, 16), table, fractions=(0.8, 0.2, 0),
                           cache_dir=tmp_path)
    balance = balance_table(result.manifest)
    assert list(balance["split"]) == ["train", "val", "test"]
    assert balance["subjects"].sum() == 10 and balance["images"].sum() == 20
    assert balance.loc[2, "subjects"] == 0


def test_bad_volumes_are_skipped_and_reported(cohort_dir, tmp_path):
    (cohort_dir / "IXI990-Guys-0990-T1.nii.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    write_nifti(cohort_dir / "IXI991-HH-0991-T1.nii.gz", smooth_head((20, 20, 20)))  # too small
    entries = scan_source(cohort_dir)
    result = build_dataset(entries, SliceSpec("axial", 50, 55, 16), cache_dir=tmp_path)
    assert len(result.skipped) == 2
    assert any("IXI990" in s and "gzip" in s for s in result.skipped)
    assert any("IXI991" in s and "outside this volume" in s for s in result.skipped)
    assert result.manifest["skipped"] == result.skipped


def test_range_outside_every_volume_is_a_user_error(cohort_dir, tmp_path):
    with pytest.raises(UserError, match="no usable volume"):
        build_dataset(scan_source(cohort_dir), SliceSpec("axial", 500, 510, 16), cache_dir=tmp_path)


def test_damaged_cache_is_rebuilt(cohort_dir, tmp_path):
    entries = scan_source(cohort_dir)
    spec = SliceSpec("coronal", 40, 44, 16)
    first = build_dataset(entries, spec, cache_dir=tmp_path)
    train = first.path / "train.npy"
    train.write_bytes(train.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt"):
        load_split_images(first.path, "train")
    again = build_dataset(entries, spec, cache_dir=tmp_path)
    assert not again.reused
    assert load_split_images(again.path, "train").shape[1:] == (16, 16)


def test_manifest_errors_are_readable(tmp_path):
    with pytest.raises(UserError, match="manifest.json is missing"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"spec": {}}))
    with pytest.raises(UserError, match="lacks"):
        load_manifest(tmp_path)
