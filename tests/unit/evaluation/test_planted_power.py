"""The judge's power on planted cases, on the demo cohort and on real heads (core.evaluation.planted).

The two-sample test must spot real held-out slices changed in small, known ways (blur sigma
0.7 px, 3 % noise, a 2 px shift, gamma 0.85) and must not spot two disjoint sets of real
subjects.  The sizes are the evaluation's: the held-out subjects' slices against up to 256
slices of other subjects.  ``bench/judge_power.py`` measures the same at full training length
on the benchmark datasets (docs/results.md); here the CNN is capped at 30 epochs to keep
the suite short, which the bounds allow for.  Intervals resample whole subjects: blur and noise
must lie beyond the null's interval (the rule the evaluation's verdict applies to samples), the
milder shift and gamma beyond chance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.data.cohort import build_cohort_dataset, load_cohort
from core.evaluation.c2st import beyond_real
from core.evaluation.planted import PLANTED, heldout_and_others, planted_power

REAL_DEV = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real_dev"
CASES = ["none", "blur", "noise", "shift", "gamma"]


def _check_power(result):
    null = result["none"]
    # Two disjoint sets of real people: never told apart (interval reaches 0.5 or below).  With a
    # handful of subjects a side the figure sits somewhat *below* 0.5 (what a classifier learns
    # about a few people is reversed on the next few), which the bench reports; far below would
    # mean a broken split, far above a leak between the classifier's training and scoring parts.
    assert 0.3 <= null["accuracy"] <= 0.65 and null["ci95"][0] < 0.5, f"real vs real: {null}"
    for case in CASES[1:]:
        row = result[case]
        assert row["accuracy"] >= 0.6 and row["ci95"][0] > 0.5, f"{case}: {row['accuracy']:.3f} {row['ci95']}"
    # Blur and noise are what blurry decoders and noisy samplers do: spotted nearly always, and
    # beyond the real baseline's interval.  The milder shift and gamma are beyond chance, but with
    # 4-5 held-out people the subject-bootstrap intervals are wide enough that they may overlap
    # the baseline's (demo, gamma 0.85: [0.51, 0.91] against [0.18, 0.53]).
    for case in ("blur", "noise"):
        row = result[case]
        assert row["accuracy"] >= 0.9 and beyond_real(row, null), f"{case}: {row['ci95']} vs null {null['ci95']}"


@pytest.mark.slow
def test_planted_cases_on_the_demo_cohort(demo_dataset_64):
    # The benchmark's dataset (24 subjects, 70/10/20; shared with the other slow tests).  A
    # 12-subject cohort split 60/10/30 put the three sites unevenly on the two sides and the null
    # measured the sites (0.70), not the judge.
    result = planted_power(*heldout_and_others(demo_dataset_64), cases=CASES, max_epochs=30)
    assert result["none"]["n_scored"] >= 200
    _check_power(result)


@pytest.mark.slow
def test_planted_cases_on_real_heads(tmp_path_factory):
    if not REAL_DEV.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REAL_DEV} is absent in CI")
        pytest.skip(f"{REAL_DEV} is not present")
    from core.data.slices import SliceSpec

    root = tmp_path_factory.mktemp("planted_real")
    # Split seed 1 puts a head of each scanner geometry on both sides (see bench/judge_power.py).
    dataset = build_cohort_dataset(load_cohort(REAL_DEV), SliceSpec("axial", 58, 82, 64), fractions=(0.6, 0.1, 0.3),
                                   seed=1, cache_dir=root / "cache").path
    result = planted_power(*heldout_and_others(dataset), cases=CASES, max_epochs=30)
    assert result["none"]["n_real_subjects"] == 4 and result["none"]["n_scored"] == 192  # the 4 test subjects
    _check_power(result)


def test_planted_changes_are_what_they_say():
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.5, 0.2, (4, 32, 32)), 0, 1).astype(np.float32)
    from core.evaluation.planted import plant

    assert set(PLANTED) == set(CASES)
    np.testing.assert_array_equal(plant(x, "none"), x)
    assert np.abs(np.diff(plant(x, "blur"), axis=2)).mean() < 0.6 * np.abs(np.diff(x, axis=2)).mean()
    assert 0.015 < np.abs(plant(x, "noise") - x).mean() < 0.03
    np.testing.assert_array_equal(plant(x, "shift")[:, :, 2:], x[:, :, :-2])
    np.testing.assert_allclose(plant(x, "gamma"), x ** 0.85, rtol=1e-5)
    with pytest.raises(ValueError, match="disjoint"):
        planted_power(x, ["a", "a", "b", "b"], x, ["a", "c", "c", "d"])
