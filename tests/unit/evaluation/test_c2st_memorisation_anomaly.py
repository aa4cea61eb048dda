"""Two-sample test, memorisation and the synthetic-lesion anomaly check on known cases."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.anomaly import insert_lesions, residual_map
from core.evaluation.c2st import classifier_two_sample_test
from core.evaluation.memorisation import copy_threshold, memorisation_report, nearest_neighbours, rms_distances


def _subjects(dataset, split):
    from core.data.dataset import load_manifest

    return [s for s, _ in load_manifest(dataset)["splits"][split]["slices"]]


def test_c2st_spots_noise_and_not_real_vs_real(eval_dataset, real_train, real_test, noise):
    test_subjects, train_subjects = _subjects(eval_dataset, "test"), _subjects(eval_dataset, "train")
    spotted = classifier_two_sample_test(real_test, test_subjects, noise, max_epochs=30)
    assert spotted["accuracy"] >= 0.95 and spotted["ci95"][0] > 0.5 and spotted["p_value"] < 1e-6
    assert spotted["n_scored"] == 2 * min(len(real_test), len(noise)) and spotted["n_real_subjects"] == 8
    assert all(fold["n_val"] > 0 for fold in spotted["folds"])
    # "Synthetic" slices that are really other real subjects (grouped, as a planted null): near chance.
    fooled = classifier_two_sample_test(real_test, test_subjects, real_train, train_subjects, max_epochs=30)
    assert 0.25 <= fooled["accuracy"] <= 0.75, fooled["accuracy"]
    assert fooled["ci95"][0] <= 0.5 <= fooled["ci95"][1] or abs(fooled["accuracy"] - 0.5) < 0.2


def test_c2st_scores_only_subjects_its_classifier_never_saw():
    """Every real subject sits wholly in one fold: no slice of a scored subject was trained on."""
    from core.evaluation.c2st import split_by_group

    groups = np.repeat([f"s{i}" for i in range(7)], [3, 5, 8, 2, 4, 4, 6])
    folds = split_by_group(groups, 2, seed=4)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert abs((folds == 0).sum() - (folds == 1).sum()) <= 2


def test_c2st_needs_enough_images_and_two_subjects(real_train):
    with pytest.raises(UserError, match="two-sample test needs"):
        classifier_two_sample_test(real_train[:5], ["a"] * 5, real_train[:3])
    with pytest.raises(UserError, match="at least 2 subjects"):
        classifier_two_sample_test(real_train[:16], ["a"] * 16, real_train[16:32])


def test_memorisation_gap_needs_separated_intervals():
    from core.evaluation.c2st import memorisation_gap

    assert not memorisation_gap({"accuracy": 0.7, "ci95": [0.6, 0.8]}, {"accuracy": 0.6, "ci95": [0.5, 0.7]})["signal"]
    assert memorisation_gap({"accuracy": 0.9, "ci95": [0.85, 0.95]}, {"accuracy": 0.5, "ci95": [0.4, 0.6]})["gap"] > 0.3


def test_rms_distances_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 8)), rng.random((4, 8, 8))
    ref = np.sqrt(((a[:, None] - b[None]) ** 2).mean(axis=(2, 3)))
    np.testing.assert_allclose(rms_distances(a, b), ref, atol=1e-5)


def test_copies_are_flagged_and_new_images_not(eval_dataset, real_train):
    from core.data.dataset import load_manifest

    subjects = [s[0] for s in load_manifest(eval_dataset)["splits"]["train"]["slices"]]
    threshold = copy_threshold(real_train, subjects)
    assert threshold > 0
    copies = real_train[[5, 40]] + 0.001
    index, distance = nearest_neighbours(copies, real_train)
    assert index.tolist() == [5, 40] and distance.max() < threshold
    report = memorisation_report(np.concatenate([copies, np.full((2, 32, 32), 0.5, np.float32)]), real_train, subjects)
    assert report["near_copies"] == 2 and report["near_copy_fraction"] == 0.5
    with pytest.raises(UserError, match="2 subjects"):
        copy_threshold(real_train[:4], ["a"] * 4)


def test_lesions_change_only_their_mask(real_test):
    lesioned, masks = insert_lesions(real_test[:6], seed=1)
    assert masks.any(axis=(1, 2)).all()
    changed = np.abs(lesioned - real_test[:6]) > 1e-6
    assert changed[masks].mean() > 0.9
    assert (np.abs(lesioned - real_test[:6])[~masks] < 0.35 * 0.5).all()
    # A perfect "normal" reconstruction finds them all: the residual is the blob.
    residual = residual_map(lesioned, real_test[:6])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(masks.ravel(), residual.ravel()) > 0.95
    with pytest.raises(UserError, match="differ in shape"):
        residual_map(real_test[:2], real_test[:3])
