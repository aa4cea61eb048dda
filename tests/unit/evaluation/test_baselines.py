"""Real-vs-real baselines: by subject, matched in size, with a spread (core.evaluation.baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.baselines import by_subject_draws, distance_against_real, diversity_against_real
from core.evaluation.distances import frechet_distance
from core.evaluation.features import handcrafted_features


def _subjects(dataset, split):
    from core.data.dataset import load_manifest

    return np.array([s for s, _ in load_manifest(dataset)["splits"][split]["slices"]])


def test_draws_never_put_one_subject_on_both_sides():
    groups = np.repeat(["a", "b", "c", "d", "e"], [4, 4, 6, 2, 8])
    for a, b in by_subject_draws(groups, n_draws=10, seed=1):
        assert not set(groups[a]) & set(groups[b])
        assert len(a) + len(b) == len(groups)
    with pytest.raises(UserError, match="at least 2 subjects"):
        by_subject_draws(["a"] * 5)


def test_by_subject_baseline_is_not_the_too_kind_by_slice_one(eval_dataset, real_test):
    """Neighbouring slices of one head are near-identical: halves split by slice (each holding
    every head) look far more alike than two sets of different people, which is the real spread."""
    subjects = _subjects(eval_dataset, "test")
    features = handcrafted_features(real_test)
    figure = distance_against_real(features, subjects, None, frechet_distance, n_draws=20)
    rng = np.random.default_rng(0)
    by_slice = []
    for r in range(20):
        order = rng.permutation(len(features))
        by_slice.append(frechet_distance(features[order[::2]], features[order[1::2]]))
    assert np.median(by_slice) < figure["real_spread"]["median"]
    assert figure["real_spread"]["p05"] <= figure["real_spread"]["median"] <= figure["real_spread"]["p95"]
    assert "value" not in figure


def test_samples_beside_the_spread_copies_inside_noise_outside(eval_dataset, real_test, real_train, noise):
    subjects = _subjects(eval_dataset, "test")
    features = handcrafted_features(real_test)
    other_people = distance_against_real(features, subjects, handcrafted_features(real_train), frechet_distance,
                                         n_draws=20)
    noisy = distance_against_real(features, subjects, handcrafted_features(noise), frechet_distance, n_draws=20)
    assert noisy["within_real_spread"] is False and noisy["value"] > 10 * noisy["real_spread"]["p95"]
    assert other_people["value"] < noisy["value"]
    # Sizes match: as many samples as the compared real half holds.
    assert other_people["n_compared"] == pytest.approx(other_people["n_reference"], rel=0.5)


def test_diversity_of_noise_and_of_collapsed_samples_is_outside_the_real_spread(eval_dataset, real_test, noise):
    subjects = _subjects(eval_dataset, "test")
    collapsed = np.repeat(real_test[:1], 40, axis=0)  # mode collapse: one image over and over
    same = diversity_against_real(real_test, subjects, collapsed, n_pairs=100, n_draws=8)
    assert same["value"] > 0.99 and same["within_real_spread"] is False
    noisy = diversity_against_real(real_test, subjects, noise, n_pairs=100, n_draws=8)
    assert noisy["value"] < noisy["real_spread"]["p05"] and noisy["within_real_spread"] is False
