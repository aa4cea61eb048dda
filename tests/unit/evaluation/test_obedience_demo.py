"""The obedience regressors and the demo cohort together: can its real slices be read at all?

The obedience figures (core/evaluation/obedience.py) only mean something when a regressor
trained on real training slices reads the attribute off real slices of unseen subjects,
and when the demo cohort shows age in the slices the models see (the thesis' axial range).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.data.cohort import build_cohort_dataset, load_cohort
from core.data.dataset import load_manifest, load_split_images
from core.data.demo import build_demo_cohort
from core.data.slices import thesis_spec
from core.data.volumes import load_volume
from core.evaluation.obedience import agreement, train_attribute_regressor

N_SUBJECTS = 12  # 4 per site


@pytest.fixture(scope="module")
def demo_slices(tmp_path_factory):
    """The thesis' slice range of a 12-subject demo cohort at 64 px, split by subject."""
    root = tmp_path_factory.mktemp("demo_obedience")
    cohort = load_cohort(build_demo_cohort(root / "cohort", n_subjects=N_SUBJECTS, seed=0))
    spec = thesis_spec(load_volume(cohort.entries[0]), size=64)
    dataset = build_cohort_dataset(cohort, spec, fractions=(0.6, 0.1, 0.3), seed=0, cache_dir=root / "cache").path
    manifest = load_manifest(dataset)
    out = {}
    for split in ("train", "val", "test"):
        slices = manifest["splits"][split]["slices"]
        out[split] = {"images": np.asarray(load_split_images(dataset, split)),
                      "subject": np.array([s for s, _ in slices]),
                      "position": np.array([i for _, i in slices], float)}
    out["subjects"] = manifest["subjects"]
    return out


def test_slice_regressor_beats_a_constant_on_unseen_subjects(demo_slices):
    train, test = demo_slices["train"], demo_slices["test"]
    assert not set(train["subject"]) & set(test["subject"])  # grouped by subject
    regressor = train_attribute_regressor(train["images"], train["position"], epochs=20, seed=1)
    read = agreement(test["position"], regressor.predict(test["images"]))
    constant_mae = float(np.abs(test["position"] - train["position"].mean()).mean())
    # Measured (24-subject cohort, 20 epochs): MAE 3.7 vs 7.5 for the constant, r 0.84.
    assert read["mae"] < 0.75 * constant_mae, (read, constant_mae)
    assert read["pearson_r"] > 0.6, read


def _csf_fraction(image: np.ndarray) -> float:
    """Fraction of CSF-dark pixels inside the skull (head mask eroded past scalp and skull)."""
    inner = ndimage.binary_erosion(ndimage.binary_fill_holes(image > 0.15), iterations=5)
    values = image[inner]
    return float(np.mean(values < 0.45 * np.percentile(values, 90)))


def test_age_is_readable_from_the_thesis_slices(demo_slices):
    # Per subject: the mean CSF fraction of its slices; compared within each site (the
    # sites' contrasts differ, as scanners do), pooled over the sites.
    images = np.concatenate([demo_slices[s]["images"] for s in ("train", "val", "test")])
    subject = np.concatenate([demo_slices[s]["subject"] for s in ("train", "val", "test")])
    info = demo_slices["subjects"]
    names = sorted(set(subject))
    csf = np.array([np.mean([_csf_fraction(x) for x in images[subject == name]]) for name in names])
    age = np.array([info[name]["age"] for name in names])
    site = np.array([info[name]["site"] for name in names])
    for s in set(site):  # remove each site's mean from both sides
        csf[site == s] -= csf[site == s].mean()
        age[site == s] -= age[site == s].mean()
    r = float(np.corrcoef(age, csf)[0, 1])
    # Measured on 24 subjects: 0.9+ within every site (generator version 2; version 1: 0.6-0.8).
    assert r > 0.75, r
