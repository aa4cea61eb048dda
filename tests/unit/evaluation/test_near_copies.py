"""Near-copies by the distance-ratio rule (core.evaluation.memorisation) on known cases.

Fast tests check the rule's parts on small arrays whose answers are known; the slow ones plant
copies in disguise (moved 1-2 px, mirrored, lightly blurred) and non-copies (strangers, blurred
strangers, averages of look-alikes) in the benchmark's two cohorts at 64 px, as
``bench/near_copies.py`` does.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from core.errors import UserError
from core.evaluation.memorisation import (
    PLANTED_COPIES, copy_ratios, invariant_distances, memorisation_report, planted_copies, planted_report,
)


def _people(n_subjects, slices=4, size=32, seed=0):
    """Slices of ``n_subjects`` made-up people: one head outline, each person's own smooth
    intensity pattern, a little slice-to-slice change.  ``(images, subject ids)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    head = (xx**2 / 0.8 + yy**2 / 0.9 < 0.9).astype(np.float32)
    images, ids = [], []
    for s in range(n_subjects):
        own = gaussian_filter(rng.normal(0, 1, (size, size)), 2) * 3
        for k in range(slices):
            change = gaussian_filter(rng.normal(0, 1, (size, size)), 2) * 3
            images.append(np.clip(head * (0.6 + 0.25 * own + 0.05 * change - 0.05 * k), 0, 1))
            ids.append(f"s{s}")
    return np.asarray(images, np.float32), ids


def test_invariant_distance_is_the_minimum_over_shifts_and_the_mirror():
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 9, 11)).astype(np.float32), rng.random((4, 9, 11)).astype(np.float32)
    s = 2
    moves = [(m, dy, dx) for m in (False, True) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    brute = np.empty((3, 4, len(moves)))
    for k, (m, dy, dx) in enumerate(moves):
        source = a[:, :, ::-1] if m else a
        window = source[:, s + dy:9 - s + dy, s + dx:11 - s + dx]
        brute[:, :, k] = np.sqrt(((window[:, None] - b[None, :, s:9 - s, s:11 - s]) ** 2).mean(axis=(2, 3)))
    d, which = invariant_distances(a, b, max_shift=s, return_transform=True)
    np.testing.assert_allclose(d, brute.min(2), atol=1e-5)
    assert (which == brute.argmin(2)).all()
    # Without shifts or mirror it is the plain RMS distance.
    np.testing.assert_allclose(invariant_distances(a, b, max_shift=0, mirror=False),
                               np.sqrt(((a[:, None] - b[None]) ** 2).mean(axis=(2, 3))), atol=1e-5)


def test_moved_and_mirrored_copies_are_at_distance_zero():
    x, _ = _people(1, slices=1)
    for dy, dx in ((2, 0), (-1, 2), (-2, -2)):
        moved = np.roll(x, (dy, dx), axis=(1, 2))  # the outline sits inside the frame: nothing wraps
        assert invariant_distances(moved, x)[0, 0] < 1e-3
        assert invariant_distances(moved, x, max_shift=0, mirror=False)[0, 0] > 0.03
    assert invariant_distances(x[:, :, ::-1], x)[0, 0] < 1e-3
    assert invariant_distances(np.roll(x, 4, axis=2), x)[0, 0] > 0.03  # 4 px is beyond the invariance
    with pytest.raises(ValueError, match="max_shift"):
        invariant_distances(x, x, max_shift=16)


def test_the_ratio_leaves_the_nearest_subjects_other_slices_out():
    """A copy's own subject's next slice is nearly as close as the source; only other people count
    in the denominator, so the copy still scores far below 1."""
    x, ids = _people(3, slices=2)
    ids = np.asarray(ids)
    out = copy_ratios(x[:1] + 0.002, x, ids)
    assert out["nearest_index"].tolist() == [0] and ids[out["other_index"][0]] != "s0"
    assert out["ratio"][0] < 0.05
    d = invariant_distances(gaussian_filter(x[:1] + 0.002, (0, 1, 1), mode="nearest"),
                            gaussian_filter(x, (0, 1, 1), mode="nearest"))[0]
    assert out["ratio"][0] == pytest.approx(d[0] / d[2:].min(), rel=1e-5)
    assert d[1] / d[0] > 2  # ... although the subject's other slice is close too
    assert out["transform"][0] == (False, 0, 0)


def test_copies_are_flagged_and_blurs_strangers_and_averages_are_not():
    x, ids = _people(14)
    train, subjects, heldout, heldout_subjects = x[:40], ids[:40], x[40:], ids[40:]
    rng = np.random.default_rng(2)
    copies = np.concatenate([np.roll(train[:4], (1, -2), axis=(1, 2)), train[4:8, :, ::-1],
                             gaussian_filter(train[8:12], (0, 0.6, 0.6))])
    people = np.stack([rng.choice(10, 4, replace=False) for _ in range(8)])  # 4 different people each
    pick = people * 4 + rng.integers(0, 4, people.shape)
    unlike = np.concatenate([gaussian_filter(heldout[:8], (0, 2, 2)), train[pick].mean(1),
                             np.full((2, 32, 32), 0.5, np.float32)])
    report = memorisation_report(np.concatenate([copies, unlike]), train, subjects, heldout, heldout_subjects)
    flagged = np.zeros(len(copies) + len(unlike), bool)
    flagged[report["near_copy_index"]] = True
    assert flagged[:12].all(), report["ratio"][:12]
    assert not flagged[12:].any(), report["ratio"][12:]
    assert report["near_copies"] == 12 and report["near_copy_fraction"] == pytest.approx(12 / 30)
    assert report["nearest_index"][:4] == [0, 1, 2, 3] and report["nearest_transform"][0] == {
        "mirrored": False, "dy": 1, "dx": -2}
    # Each held-out stranger judged by the other 13 people's lowest ratio: with so few, the lowest
    # person's lowest slices can fall below it (here 2 of 16 slices).
    real = report["strangers"]["reference"]
    assert real["n"] == 16 and real["n_subjects"] == 4 and real["near_copy_fraction"] <= 0.25


def test_larger_images_are_compared_at_64_px():
    """At 128 px the comparison runs on 2x2 block means: the cost of a 64-px comparison, shifts
    of up to 4 px of the original size, and a 1-px move (half a block) is still a copy."""
    x, ids = _people(12, size=128)
    train, subjects, heldout, heldout_subjects = x[:32], ids[:32], x[32:], ids[32:]
    copies = np.concatenate([np.roll(train[:3], (1, 0), axis=(1, 2)), np.roll(train[3:6], (-4, 3), axis=(1, 2))])
    report = memorisation_report(np.concatenate([copies, heldout[:4]]), train, subjects, heldout, heldout_subjects)
    assert report["invariances"]["compared_at_px"] == 64
    assert report["near_copy_index"] == list(range(6)), report["ratio"]
    assert report["nearest_index"][:6] == list(range(6)) and max(report["ratio"][:6]) < 0.5


def test_the_report_describes_its_rule_and_keeps_the_old_keys():
    x, ids = _people(8)
    report = memorisation_report(x[:4], x[4:28], ids[4:28], x[28:], ids[28:])
    for key in ("near_copies", "near_copy_fraction", "threshold", "nearest_index", "nearest_distance",
                "rule", "ratio", "invariances", "strangers"):
        assert key in report, key
    assert report["rule"] == "nearest_neighbour_distance_ratio"
    assert report["invariances"]["max_shift_px"] == 2 and report["invariances"]["mirror_left_right"] is True
    assert len(report["ratio"]) == len(report["nearest_index"]) == 4
    assert 0 < report["threshold"] <= report["strangers"]["ratio_quantiles"]["p01"]
    # Without a reference the training subjects stand in for strangers, each against the others.
    alone = memorisation_report(x[:4], x[4:28], ids[4:28])
    assert "reference" not in alone["strangers"] and alone["strangers"]["training"]["n_subjects"] == 6


def test_the_report_checks_its_inputs():
    x, ids = _people(6)
    with pytest.raises(UserError, match="at least 2 subjects"):
        memorisation_report(x[:2], x[:4], ids[:4])
    with pytest.raises(UserError, match="must not be training subjects"):
        memorisation_report(x[:2], x[:16], ids[:16], x[12:20], ids[12:20])
    with pytest.raises(UserError, match="reference_subjects"):
        memorisation_report(x[:2], x[:16], ids[:16], x[16:])
    with pytest.raises(UserError, match="subject ids"):
        memorisation_report(x[:2], x[:16], ids[:15])
    # Two training subjects and a reference: the threshold comes from the reference alone.
    two = memorisation_report(x[:1], x[:8], ids[:8], x[16:], ids[16:])
    assert two["strangers"]["sources"] == ["held-out real subjects against the training slices"]


def test_planted_copies_are_what_they_say():
    x, ids = _people(10)
    cases = planted_copies(x[:32], ids[:32], x[32:], ids[32:], n=6, seed=3)
    assert list(cases) == list(PLANTED_COPIES)
    train = x[:32]
    for name, case in cases.items():
        assert case["images"].shape == (6, 32, 32) and case["images"].dtype == np.float32
        assert case["copy"] == PLANTED_COPIES[name][1]
    sources = [np.flatnonzero((train[:, :, ::-1] == image).all(axis=(1, 2)))[0] for image in cases["mirror"]["images"]]
    for image, k in zip(cases["shift1"]["images"], sources):  # moved 1 px: a zero row or column appears
        moved = [np.array_equal(image[max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)],
                                train[k, max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)])
                 for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
        assert any(moved)
    assert all(s in ids[32:] for s in cases["stranger"]["source_subjects"])
    assert all(any((x[32:] == image).all(axis=(1, 2))) for image in cases["stranger"]["images"])


# ------------------------------------------------------------------------------ the two cohorts
COPY_CASES = [name for name, (_, copy) in PLANTED_COPIES.items() if copy]


def _check_planted(result):
    cases = result["cases"]
    for name in COPY_CASES:
        assert cases[name]["flagged_fraction"] >= 0.9, (name, cases[name])
    # A blurry decoder's samples and new people are not copies.
    for name in ("stranger", "stranger_blur", "stranger_heavy_blur", "train_mean"):
        assert cases[name]["flagged_fraction"] <= 0.1, (name, cases[name])
    assert result["strangers"]["reference"]["near_copy_fraction"] <= 0.1
    assert 0.3 < result["threshold"] < 0.9


@pytest.mark.slow
def test_planted_near_copies_on_the_demo_cohort(demo_dataset_64):
    from core.evaluation.planted import heldout_and_others

    heldout, heldout_subjects, train, subjects = heldout_and_others(demo_dataset_64)
    result = planted_report(train, subjects, heldout, heldout_subjects, n=32)
    # The strangers: the held-out subjects and each of the training subjects against the others.
    assert result["strangers"]["n_subjects"] == result["strangers"]["reference"]["n_subjects"] + len(set(subjects))
    _check_planted(result)


@pytest.mark.slow
def test_planted_near_copies_on_real_heads(real_dev_dir, tmp_path):
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.slices import SliceSpec
    from core.evaluation.planted import heldout_and_others

    # bench.cohorts.REAL_DEV_SPEC: axial 58-82, 64 px, split 60/10/30 with seed 1.
    dataset = build_cohort_dataset(load_cohort(real_dev_dir), SliceSpec("axial", 58, 82, 64),
                                   fractions=(0.6, 0.1, 0.3), seed=1, cache_dir=tmp_path / "cache").path
    heldout, heldout_subjects, train, subjects = heldout_and_others(dataset)
    result = planted_report(train, subjects, heldout, heldout_subjects, n=32)
    assert result["strangers"]["n_subjects"] == result["strangers"]["reference"]["n_subjects"] + len(set(subjects))
    _check_planted(result)
