"""Tests for core.data.demo: the offline synthetic demo cohort."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import json
import os
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.data import demo
from core.data.demo import build_demo_cohort, demo_is_built
from core.errors import UserError

N_SUBJECTS = 6
SEED = 3
NAME = re.compile(r"^DEMO(\d{3})-(Guys|HH|IOP)-(\d{4})-T1\.nii\.gz$")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A 6-subject cohort built once for the module, with the progress calls it made."""
    calls = []
    folder = build_demo_cohort(tmp_path_factory.mktemp("demo") / "cohort", n_subjects=N_SUBJECTS, seed=SEED,
                               progress=lambda fraction, message: calls.append((fraction, message)))
    return folder, calls


@pytest.fixture(scope="module")
def demographics(cohort):
    with open(cohort[0] / "demographics.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _volume_hashes(folder: Path) -> dict[str, str]:
    """Hash of each volume's voxel array (gzip headers may differ, voxels must not)."""
    return {path.name: hashlib.sha256(np.asarray(nib.load(path).dataobj).tobytes()).hexdigest()
            for path in sorted(folder.glob("DEMO*.nii.gz"))}


def _ventricle_dark_fraction(data: np.ndarray, affine: np.ndarray) -> float:
    """Fraction of CSF-dark voxels in a world-mm box around the lateral ventricles."""
    image = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    volume = np.asarray(image.dataobj, np.float32)
    inverse = np.linalg.inv(image.affine)
    lo = np.floor(inverse[:3, :3] @ [-25, -45, 0] + inverse[:3, 3]).astype(int)
    hi = np.ceil(inverse[:3, :3] @ [25, 25, 35] + inverse[:3, 3]).astype(int)
    box = volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    # CSF is below 0.25 of white matter at every site; grey matter is above 0.5.
    return float(np.mean(box < 0.35 * np.percentile(box, 95)))


def test_files_and_demographics_agree(cohort, demographics):
    folder, _ = cohort
    fields, rows = demographics
    assert fields == ["ID", "Age", "Sex", "Site"]
    volumes = sorted(p.name for p in folder.glob("*.nii.gz"))
    assert len(volumes) == N_SUBJECTS
    assert sorted(f"{row['ID']}.nii.gz" for row in rows) == volumes
    for row in rows:
        match = NAME.match(f"{row['ID']}.nii.gz")
        assert match, row["ID"]
        assert match.group(1) == match.group(3)[1:] and match.group(2) == row["Site"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        volumes + ["demographics.csv", "README.txt", ".complete"])


def test_names_go_through_the_ixi_parser(cohort, demographics):
    from core.data.volumes import parse_subject_name

    for row in demographics[1]:
        assert parse_subject_name(f"{row['ID']}.nii.gz") == (row["ID"], row["Site"])


def test_demographics_are_spread(demographics):
    rows = demographics[1]
    ages = [float(row["Age"]) for row in rows]
    assert all(20.0 <= age <= 86.0 for age in ages)
    assert max(ages) - min(ages) > 40.0
    assert {row["Sex"] for row in rows} == {"M", "F"}
    assert {row["Site"] for row in rows} == {"Guys", "HH", "IOP"}


def test_readme_says_synthetic(cohort):
    text = (cohort[0] / "README.txt").read_text(encoding="utf-8")
    assert "SYNTHETIC" in text and "not real patients".upper() in text.upper()
    assert "IXI" in text


def test_volumes_have_ixi_geometry(cohort):
    for path in sorted(cohort[0].glob("*.nii.gz")):
        image = nib.load(path)
        assert image.shape == demo.SHAPE == (256, 256, 150)
        assert image.get_data_dtype() == np.int16
        assert nib.aff2axcodes(image.affine) == ("P", "S", "R")
        assert np.allclose(image.header.get_zooms(), (0.9375, 0.9375, 1.2))
        assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
        canonical = nib.as_closest_canonical(image)
        assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
        assert canonical.shape == (150, 256, 256)


def test_volumes_look_like_mri(cohort):
    path = sorted(cohort[0].glob("*.nii.gz"))[0]
    data = np.asarray(nib.load(path).dataobj, np.float32)
    corner = data[:20, :20, :20]  # air: Rayleigh noise, low but not zero
    bright = np.percentile(data, 99)
    assert 0.0 < corner.mean() < 0.1 * bright
    assert corner.std() > 0.0
    # The head is roughly centred: its intensity-weighted centre is in the middle third.
    centre = np.array([np.average(np.arange(n), weights=data.sum(axis=tuple(a for a in range(3) if a != k)))
                       for k, n in enumerate(data.shape)])
    assert np.all(np.abs(centre / np.array(data.shape) - 0.5) < 1 / 6), centre


def test_progress_is_reported(cohort):
    calls = cohort[1]
    fractions = [fraction for fraction, _ in calls]
    assert len(calls) == N_SUBJECTS + 1  # start, then one per subject
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(message, str) and message for _, message in calls)


def test_second_call_returns_at_once(cohort):
    folder = cohort[0]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    calls = []
    start = time.perf_counter()
    again = build_demo_cohort(folder, n_subjects=N_SUBJECTS, seed=SEED,
                              progress=lambda fraction, message: calls.append(fraction))
    assert time.perf_counter() - start < 0.5
    assert again == folder and calls == [1.0]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert demo_is_built(folder)


def test_older_subjects_have_more_csf(cohort, demographics):
    # Ages are stratified and sites cycle over age, so the three oldest and the three
    # youngest each hold one subject per site: the comparison is not a site effect.
    folder = cohort[0]
    rows = sorted(demographics[1], key=lambda row: float(row["Age"]))
    dark = []
    for row in rows:
        image = nib.load(folder / f"{row['ID']}.nii.gz")
        dark.append(_ventricle_dark_fraction(np.asarray(image.dataobj), image.affine))
    assert {row["Site"] for row in rows[:3]} == {row["Site"] for row in rows[3:]} == set(demo.SITES)
    assert np.mean(dark[3:]) > np.mean(dark[:3]) + 0.01, dark


def test_age_alone_widens_csf():
    # The same simulated person (pose, site, noise) at 20 and at 86 years.
    fractions = []
    for age in (20.0, 86.0):
        data, affine = demo._synthesise_subject(demo._Subject(index=1, age=age, sex="F", site="Guys"), SEED)
        fractions.append(_ventricle_dark_fraction(data, affine))
    assert fractions[1] > 1.2 * fractions[0], fractions


def test_rebuild_is_deterministic_replaces_old_cohort_and_tolerates_races(cohort, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    # An outdated cohort of this generator (old version) and a killed build's leftovers.
    (out / "DEMO999-IOP-0999-T1.nii.gz").write_bytes(b"old")
    (out / ".complete").write_text(json.dumps({"kind": "latentbrain-demo-cohort", "version": 0,
                                               "n_subjects": 1, "seed": 0, "files": []}))
    stale = tmp_path / ".again.partial-1-dead"
    stale.mkdir()
    (stale / "DEMO001-Guys-0001-T1.nii.gz").write_bytes(b"half")
    assert not demo_is_built(out) and not demo_is_built(stale)

    # Two concurrent calls: one builds, the other waits and reuses the result.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = [f.result() for f in [pool.submit(build_demo_cohort, out, N_SUBJECTS, SEED)
                                        for _ in range(2)]]
    assert results == [out, out]
    assert demo_is_built(out)
    assert not (out / "DEMO999-IOP-0999-T1.nii.gz").exists() and not stale.exists()
    assert not list(tmp_path.glob(".again.partial-*")) and not list(tmp_path.glob(".again.old-*"))
    assert _volume_hashes(out) == _volume_hashes(cohort[0])
    assert (out / "demographics.csv").read_bytes() == (cohort[0] / "demographics.csv").read_bytes()


def test_other_seed_gives_other_volumes():
    subject = demo._Subject(index=1, age=40.0, sex="M", site="HH")
    first, _ = demo._synthesise_subject(subject, 0)
    second, _ = demo._synthesise_subject(subject, 1)
    assert not np.array_equal(first, second)


def test_incomplete_folders_are_not_built(cohort, tmp_path):
    assert not demo_is_built(tmp_path / "missing")
    partial = tmp_path / ".cohort.partial-123-abcd"
    partial.mkdir()
    for path in sorted(cohort[0].glob("*.nii.gz"))[:2]:
        os.link(path, partial / path.name)
    assert not demo_is_built(partial)
    # A marker whose files are not all there does not count either.
    (partial / ".complete").write_bytes((cohort[0] / ".complete").read_bytes())
    assert not demo_is_built(partial)


def test_default_folder_comes_from_settings(monkeypatch, tmp_path):
    from core import settings

    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path))
    assert settings.demo_dir() == tmp_path / "demo_cohort"
    assert not demo_is_built()


@pytest.mark.parametrize("kwargs", [
    {"n_subjects": 5}, {"n_subjects": 1000}, {"n_subjects": 6.0}, {"n_subjects": True},
    {"seed": -1}, {"seed": "0"},
])
def test_bad_arguments_raise_user_error(tmp_path, kwargs):
    with pytest.raises(UserError, match=next(iter(kwargs))):
        build_demo_cohort(tmp_path / "cohort", **kwargs)
    assert not (tmp_path / "cohort").exists()


def test_out_dir_that_is_a_file_raises_user_error(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(UserError, match="file.txt"):
        build_demo_cohort(path)
    with pytest.raises(UserError, match="file.txt"):
        build_demo_cohort(path / "cohort")


def test_foreign_folder_is_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a demo cohort"):
        build_demo_cohort(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(demo.fcntl is None, reason="the build lock needs fcntl (POSIX)")
def test_a_stuck_build_elsewhere_gives_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "_LOCK_TIMEOUT_S", 0.3)
    with open(tmp_path / ".cohort.lock", "a+b") as held:
        demo.fcntl.flock(held.fileno(), demo.fcntl.LOCK_EX)  # another builder holds the lock
        with pytest.raises(UserError, match="another process"):
            build_demo_cohort(tmp_path / "cohort")
    assert not (tmp_path / "cohort").exists()
