"""Precision, recall, density, coverage and their by-subject real spread (core.evaluation.fidelity)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation import fidelity
from core.evaluation.fidelity import FIGURES, prdc, prdc_against_real

D = 16


def _reference_prdc(real, fake, k):
    """The papers' definitions written plainly, one point at a time (open balls, no scaling)."""
    def radii(x):
        return np.array([np.sort(np.linalg.norm(x - p, axis=1))[k] for p in x])

    r_real, r_fake = radii(real), radii(fake)
    d = np.linalg.norm(real[:, None, :] - fake[None, :, :], axis=2)
    return {"precision": np.mean([any(d[i, j] < r_real[i] for i in range(len(real))) for j in range(len(fake))]),
            "recall": np.mean([any(d[i, j] < r_fake[j] for j in range(len(fake))) for i in range(len(real))]),
            "density": np.mean([sum(d[i, j] < r_real[i] for i in range(len(real))) for j in range(len(fake))]) / k,
            "coverage": np.mean([d[i].min() < r_real[i] for i in range(len(real))])}


def _two_modes(n, rng, only=None):
    """A mixture of two unit Gaussians far apart along the diagonal (every feature moves)."""
    side = rng.integers(0, 2, n) if only is None else np.full(n, only)
    return rng.normal(size=(n, D)) + np.where(side[:, None] == 1, 4.0, -4.0), side


def _heads(n_subjects, rng, slices=20, start=0):
    """Slice features of whole heads: a path over the slice level, a per-person offset, a little noise.

    Slices of one head sit close together (tighter than two people at one level), as in an
    embedding of neighbouring MRI slices.
    """
    level = np.linspace(0, 1, slices)
    path = 0.5 * np.sin(3 * np.outer(level, np.arange(1, D + 1)))
    features = np.concatenate([path + rng.normal(size=D) + rng.normal(scale=0.2, size=(slices, D))
                               for _ in range(n_subjects)])
    return features, np.repeat([f"S{start + i:03d}" for i in range(n_subjects)], slices)


def test_matches_the_papers_definitions_written_plainly():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 5)), rng.normal(0.3, 1.2, size=(45, 5))
    got = prdc(real, fake, k=4, standardise=False)
    want = _reference_prdc(real, fake, 4)
    for name in FIGURES:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    assert (got["k"], got["n_real"], got["n_synthetic"], got["neighbours"]) == (4, 60, 45, "all")


def test_blocked_distances_give_the_same_figures(monkeypatch):
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(70, 6)), rng.normal(size=(50, 6))
    whole = prdc(real, fake, k=3)
    monkeypatch.setattr(fidelity, "_BLOCK_ENTRIES", 64)  # a block of one or two rows
    assert {n: prdc(real, fake, k=3)[n] for n in FIGURES} == {n: whole[n] for n in FIGURES}


def test_collapse_to_one_of_two_modes_is_precise_but_recalls_and_covers_half():
    rng = np.random.default_rng(2)
    real, _ = _two_modes(400, rng)
    collapsed, _ = _two_modes(400, rng, only=1)
    both, _ = _two_modes(400, rng)
    out, fair = prdc(real, collapsed), prdc(real, both)
    assert out["precision"] > 0.8
    # About half: the fringe of the kept mode is missed too, so recall sits a little below.
    assert 0.3 < out["recall"] < 0.6 and 0.4 < out["coverage"] < 0.6
    assert fair["recall"] > 0.8 and fair["coverage"] > 0.9 and 0.8 < fair["density"] < 1.25


def test_a_shifted_cloud_loses_precision_step_by_step():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, D)), rng.normal(size=(300, D))
    precision = [prdc(real, fake + shift / np.sqrt(D))["precision"] for shift in (0, 1, 2, 4, 8)]
    assert precision == sorted(precision, reverse=True)
    assert precision[0] > 0.8 and precision[-1] < 0.1


def test_standardising_makes_a_loud_unit_no_louder():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(100, 8)), rng.normal(0.5, 1, size=(100, 8))
    loud = np.ones(8)
    loud[0] = 1000.0  # one unit on another scale, as ReLU units of a learned embedding can be
    scaled, plain = prdc(real * loud, fake * loud), prdc(real, fake)
    assert {n: scaled[n] for n in FIGURES} == pytest.approx({n: plain[n] for n in FIGURES})
    unscaled = prdc(real * loud, fake * loud, standardise=False)
    assert unscaled["standardise"] is False and unscaled["precision"] != scaled["precision"]


def test_other_subject_radii_see_people_where_the_papers_radii_see_slices():
    """Slices of one head sit closer than two people: the papers' balls are a few slices wide and
    a new person falls in almost none; balls reaching another subject's slices judge people."""
    rng = np.random.default_rng(5)
    real, subjects = _heads(8, rng)
    new_people, _ = _heads(8, rng, start=8)
    plain = prdc(real, new_people)
    by_subject = prdc(real, new_people, real_subjects=subjects)
    assert plain["precision"] < 0.1 and by_subject["precision"] > 0.3
    assert by_subject["neighbours"] == "other_subjects"


def test_real_against_real_by_subject_stays_within_its_own_spread():
    rng = np.random.default_rng(6)
    held_out, subjects = _heads(8, rng)
    other_people, groups = _heads(4, rng, start=100)  # like a compared half: 4 whole heads
    out = prdc_against_real(held_out, subjects, other_people, synthetic_subjects=groups, n_draws=20)
    for name in FIGURES:
        figure = out[name]
        assert figure["within_real_spread"] is True, (name, figure)
        assert figure["real_spread"]["min"] <= figure["real_spread"]["p05"] <= figure["real_spread"]["p95"]
    assert out["n_compared"] == len(other_people) == out["n_synthetic"]
    assert (out["n_subjects"], out["n_possible_splits"], out["neighbours"]) == (8, 70, "other_subjects")
    assert 1 < out["n_distinct_splits"] <= 20 and out["n_draws"] == 20


def test_independent_samples_of_many_people_are_within_the_spread_only_with_other_subject_radii():
    """A perfect sampler draws a new person each time: with the papers' radii its recall is far
    above that of a real half (whose balls are one head wide), with other-subject radii it is not."""
    rng = np.random.default_rng(7)
    held_out, subjects = _heads(8, rng)
    many, _ = _heads(120, rng, start=100)
    samples = many[rng.choice(len(many), 200, replace=False)]
    fair = prdc_against_real(held_out, subjects, samples, n_draws=20)
    papers = prdc_against_real(held_out, subjects, samples, n_draws=20, neighbours="all")
    assert all(fair[name]["within_real_spread"] for name in FIGURES), {n: fair[n]["position"] for n in FIGURES}
    assert papers["recall"]["position"] == "above"


def test_collapsed_and_far_samples_fall_outside_the_real_spread():
    rng = np.random.default_rng(8)
    held_out, subjects = _heads(8, rng)
    collapsed = held_out[:3].mean(axis=0) + rng.normal(scale=0.05, size=(160, D))  # one slice, over and over
    far = rng.normal(size=(160, D)) + 10.0
    low = prdc_against_real(held_out, subjects, collapsed, n_draws=10)
    assert low["recall"]["position"] == "below" and low["recall"]["within_real_spread"] is False
    assert low["recall"]["value"] == 0.0  # samples' balls are as narrow as their jitter
    assert low["coverage"]["value"] < low["coverage"]["real_spread"]["median"]
    away = prdc_against_real(held_out, subjects, far, n_draws=10)
    assert all(away[name]["position"] == "below" for name in FIGURES)
    assert away["precision"]["value"] == 0.0 and away["precision"]["value_spread"]["max"] == 0.0


def test_only_the_real_spread_without_samples_and_a_note_with_few_subjects():
    rng = np.random.default_rng(9)
    real, subjects = _heads(4, rng)
    out = prdc_against_real(real, subjects, None, n_draws=20)
    assert out["n_synthetic"] is None and out["n_possible_splits"] == 6
    assert out["n_distinct_splits"] <= 6 and "coarse" in out["note"]
    for name in FIGURES:
        assert set(out[name]) == {"real_spread"}
        assert {"median", "p05", "p95", "min", "max", "mean", "n"} <= set(out[name]["real_spread"])
    three = prdc_against_real(real[:60], subjects[:60], None, n_draws=5)
    assert three["neighbours"] == "all" and "papers' radii" in three["note"]


def test_fewer_samples_than_a_real_half_shrink_the_half_to_match():
    rng = np.random.default_rng(10)
    real, subjects = _heads(6, rng)
    out = prdc_against_real(real, subjects, rng.normal(size=(30, D)), n_draws=5)
    assert out["n_compared"] == 30 and out["n_reference"] == 60


@pytest.mark.parametrize("call, message", [
    (lambda r, s: prdc_against_real(r, ["a"] * len(r), r), "at least 2 subjects"),
    (lambda r, s: prdc_against_real(r[np.r_[0:4, 20:24]], s[np.r_[0:4, 20:24]], None, k=5), "k=5 needs"),
    (lambda r, s: prdc_against_real(r, s, r[:4]), "synthetic_features holds 4 images"),
    (lambda r, s: prdc_against_real(r, s[:-1], None), "ids for"),
    (lambda r, s: prdc_against_real(r, s, None, neighbours="nearest"), "neighbours must be"),
    (lambda r, s: prdc(r, r[:, :3]), "features per image"),
    (lambda r, s: prdc(r[0], r), "2-D"),
    (lambda r, s: prdc(r, np.where(np.eye(len(r), D) > 0, np.nan, r)), "NaN"),
    (lambda r, s: prdc(r, r, k=0), "k must be"),
    (lambda r, s: prdc(r, r, k=60), "k=60 needs"),
])
def test_user_errors_are_readable(call, message):
    rng = np.random.default_rng(11)
    real, subjects = _heads(3, rng)  # 60 slices of 3 heads
    with pytest.raises(UserError, match=message):
        call(real, subjects)
