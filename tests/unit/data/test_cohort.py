"""core.data.cohort: one entry point from "source + demographics" to a cohort and its dataset."""

from __future__ import annotations

import os
import shutil

import pytest

from core.data.cohort import build_cohort_dataset, demographics_id, load_cohort, save_upload
from core.data.slices import SliceSpec
from core.errors import UserError


@pytest.fixture
def sample_copy(ixi_sample_dir, tmp_path):
    """A copy of the IXI sample (two volumes + IXI_demog.csv) the test may change."""
    return shutil.copytree(ixi_sample_dir, tmp_path / "ixi")


def test_demographics_found_next_to_the_data(sample_copy):
    cohort = load_cohort(sample_copy)
    assert cohort.source.is_absolute()
    assert cohort.demographics == sample_copy / "IXI_demog.csv"
    assert cohort.demographics_id == demographics_id(sample_copy / "IXI_demog.csv") != ""
    assert len(cohort.entries) == len(cohort.table) == 2
    assert list(cohort.table["subject_id"]) == [e.subject_id for e in cohort.entries]


def test_relative_and_absolute_names_are_the_same_cohort(sample_copy, monkeypatch):
    absolute = load_cohort(sample_copy, sample_copy / "IXI_demog.csv")
    monkeypatch.chdir(sample_copy.parent)
    relative = load_cohort("ixi", "ixi/IXI_demog.csv")
    assert relative.source == absolute.source
    assert relative.demographics_id == absolute.demographics_id
    assert [e.identity() for e in relative.entries] == [e.identity() for e in absolute.entries]


def test_demographics_id_follows_the_content(sample_copy, tmp_path):
    csv = sample_copy / "IXI_demog.csv"
    moved = shutil.copy(csv, tmp_path / "elsewhere.csv")
    assert demographics_id(moved) == demographics_id(csv)
    csv.write_text(csv.read_text() + "\n")
    assert demographics_id(moved) != demographics_id(csv)
    assert demographics_id(None) == ""


def test_missing_demographics_file_is_a_user_error(sample_copy):
    with pytest.raises(UserError, match="nope.csv does not exist"):
        load_cohort(sample_copy, sample_copy / "nope.csv")


def test_without_demographics(sample_copy):
    os.remove(sample_copy / "IXI_demog.csv")
    cohort = load_cohort(sample_copy)
    assert cohort.demographics is None and cohort.demographics_id == ""
    assert cohort.table["age"].isna().all()
    assert cohort.unmatched == [] and cohort.demographics_summary() is None


def test_subjects_without_a_demographics_row_are_named(sample_copy):
    # The shared sample's IXI_demog.csv has no rows for its own two volumes (IXI012, IXI015).
    cohort = load_cohort(sample_copy)
    assert cohort.unmatched == ["IXI012-HH-1211-T1", "IXI015-HH-1258-T1"]
    summary = cohort.demographics_summary()
    assert "IXI_demog.csv matched 0 of 2 subjects" in summary
    assert "IXI012-HH-1211-T1, IXI015-HH-1258-T1" in summary
    # One of the two gets a row: "1 of 2", and only the other is named.
    csv = sample_copy / "IXI_demog.csv"
    csv.write_text(csv.read_text().rstrip("\n") + "\nIXI012-HH-1211-T1,33.5,F\n")
    cohort = load_cohort(sample_copy)
    assert cohort.unmatched == ["IXI015-HH-1258-T1"]
    assert "matched 1 of 2 subjects" in cohort.demographics_summary()
    assert "IXI012" not in cohort.demographics_summary()
    csv.write_text(csv.read_text() + "IXI015-HH-1258-T1,41.0,M\n")
    cohort = load_cohort(sample_copy)
    assert cohort.unmatched == [] and cohort.demographics_summary() is None


def test_dataset_hash_includes_the_demographics(sample_copy, tmp_path):
    spec = SliceSpec("axial", 60, 62, size=32)
    kwargs = dict(fractions=(0.5, 0.5, 0.0), cache_dir=tmp_path / "datasets")
    first = build_cohort_dataset(load_cohort(sample_copy), spec, **kwargs)
    again = build_cohort_dataset(load_cohort(sample_copy), spec, **kwargs)
    assert again.reused and again.path == first.path
    (sample_copy / "IXI_demog.csv").write_text((sample_copy / "IXI_demog.csv").read_text() + "\n")
    changed = build_cohort_dataset(load_cohort(sample_copy), spec, **kwargs)
    assert changed.path != first.path


def test_save_upload_keeps_the_file_by_content(tmp_path):
    folder = save_upload("../weird name.nii.gz", b"abc")
    assert (folder / "weird_name.nii.gz").read_bytes() == b"abc"
    assert save_upload("other.nii.gz", b"abc") == folder
    assert save_upload("x.nii.gz", b"abd") != folder
