"""Issue 19's done-means on the 12 real heads in ../shared/data/real_dev: the flat folder with its
participants.csv, a BIDS copy of it, and a folder of links give the same subjects, demographics
and slices."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from core.data.cohort import build_cohort_dataset, load_cohort
from core.data.demographics import subject_key
from core.data.slices import SliceSpec

# 4 axial slices at 32 px: in range for both scanner geometries, quick on 2 cores.
SPEC = SliceSpec(axis="axial", start=60, stop=64, size=32)


@pytest.fixture(scope="module")
def bids_copy(real_dev_dir, tmp_path_factory):
    """real_dev as BIDS: half the heads copied, half linked, some in a session folder, and a
    participants.tsv written the BIDS way (sub- ids, lower-case columns, male/female)."""
    root = tmp_path_factory.mktemp("real_bids") / "bids"
    table = pd.read_csv(real_dev_dir / "participants.csv")
    rows = []
    for n, (subject, age, sex) in enumerate(table[["ID", "Age", "Sex"]].itertuples(index=False)):
        source = real_dev_dir / f"{subject}_T1.nii.gz"
        if n % 3 == 0:  # a session folder
            folder, name = root / f"sub-{subject}" / "ses-01" / "anat", f"sub-{subject}_ses-01_T1w.nii.gz"
        else:
            folder, name = root / f"sub-{subject}" / "anat", f"sub-{subject}_T1w.nii.gz"
        folder.mkdir(parents=True)
        if n % 2:
            (folder / name).symlink_to(source)
        else:
            shutil.copy(source, folder / name)
        rows.append(f"sub-{subject}\t{age}\t{'male' if sex == 'M' else 'female'}")
    (root / "participants.tsv").write_text("participant_id\tage\tsex\n" + "\n".join(rows) + "\n")
    (root / "dataset_description.json").write_text('{"Name": "real_dev as BIDS", "BIDSVersion": "1.9.0"}')
    return root


def _by_subject(cohort, result) -> dict[str, np.ndarray]:
    from core.data.dataset import load_split_images

    images = load_split_images(result.path, "train")
    slices = result.manifest["splits"]["train"]["slices"]
    group = {e.subject_id: e.subject_group for e in cohort.entries}
    out: dict[str, list] = {}
    for image, (subject_id, _) in zip(images, slices):
        out.setdefault(subject_key(group[subject_id]), []).append(np.asarray(image))
    return {k: np.stack(v) for k, v in out.items()}


def _demographics(cohort) -> dict[str, tuple]:
    group = {e.subject_id: e.subject_group for e in cohort.entries}
    return {subject_key(group[r.subject_id]): (r.age, r.sex) for r in cohort.table.itertuples()}


def test_real_dev_matches_its_participants_csv(real_dev_dir):
    cohort = load_cohort(real_dev_dir)
    assert cohort.layout == "flat" and cohort.demographics.name == "participants.csv"
    assert cohort.layout_summary() == "flat folder: 12 volumes · participants.csv: 12 of 12 volumes matched a row"
    assert cohort.demographics_summary() is None and not cohort.problems
    written = pd.read_csv(real_dev_dir / "participants.csv").set_index("ID")
    for row in cohort.table.itertuples():
        subject = row.subject_id.removesuffix("_T1")
        assert row.age == round(written.loc[subject, "Age"], 1) and row.sex == written.loc[subject, "Sex"]


def test_bids_copy_gives_the_same_subjects_demographics_and_slices(real_dev_dir, bids_copy, tmp_path):
    flat, bids = load_cohort(real_dev_dir), load_cohort(bids_copy)
    assert bids.layout == "bids" and bids.demographics == bids_copy / "participants.tsv"
    assert bids.layout_summary().startswith("BIDS dataset: 12 volumes of 12 subjects")
    assert "participants.tsv: 12 of 12 volumes matched a row" in bids.layout_summary()
    assert not bids.problems and bids.demographics_summary() is None
    assert (bids.table["session"] == "01").sum() == 4 and bids.table["link target"].notna().sum() == 6
    assert _demographics(bids) == _demographics(flat)
    flat_result = build_cohort_dataset(flat, SPEC, fractions=(1, 0, 0), cache_dir=tmp_path)
    bids_result = build_cohort_dataset(bids, SPEC, fractions=(1, 0, 0), cache_dir=tmp_path)
    assert not flat_result.skipped and not bids_result.skipped
    flat_images, bids_images = _by_subject(flat, flat_result), _by_subject(bids, bids_result)
    assert sorted(flat_images) == sorted(bids_images) and len(flat_images) == 12
    for key, stack in flat_images.items():
        assert stack.shape == (4, 32, 32)
        np.testing.assert_array_equal(stack, bids_images[key])


def test_a_folder_of_links_builds_the_same_dataset(real_dev_dir, tmp_path):
    links = tmp_path / "picked"
    links.mkdir()
    for path in real_dev_dir.iterdir():
        if path.name.endswith((".nii.gz", ".csv")):
            (links / path.name).symlink_to(path)
    linked = load_cohort(links)
    assert linked.layout_summary() == ("flat folder: 12 volumes (12 through links) · participants.csv: 12 of 12 "
                                       "volumes matched a row")
    assert set(linked.table["link target"]) == {str(p.resolve()) for p in real_dev_dir.glob("*.nii.gz")}
    direct = build_cohort_dataset(load_cohort(real_dev_dir), SPEC, cache_dir=tmp_path / "ds")
    via_links = build_cohort_dataset(linked, SPEC, cache_dir=tmp_path / "ds")
    assert via_links.reused and via_links.path == direct.path
    assert via_links.manifest["hash"] == direct.manifest["hash"]
