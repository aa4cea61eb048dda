"""Two-sample test, memorisation and the synthetic-lesion anomaly check on known cases."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.anomaly import insert_lesions, residual_map
from core.evaluation.c2st import classifier_two_sample_test
from core.evaluation.memorisation import copy_threshold, memorisation_report, nearest_neighbours, rms_distances


def test_c2st_spots_noise_and_not_real_vs_real(real_train, real_test, noise):
    spotted = classifier_two_sample_test(real_train, noise, real_test, epochs=4)
    assert spotted["accuracy"] >= 0.95 and spotted["ci95"][0] > 0.5
    # "Synthetic" that are really held-out real slices of the same distribution: near chance.
    fooled = classifier_two_sample_test(real_train[:48], real_train[48:], real_test, epochs=4)
    assert 0.2 <= fooled["accuracy"] <= 0.8
    assert 0 <= fooled["accuracy"] <= 1 and fooled["n_test"] == 2 * min(24, len(real_test))


def test_c2st_needs_enough_images(real_train):
    with pytest.raises(UserError, match="two-sample test needs"):
        classifier_two_sample_test(real_train, real_train[:3], real_train[:5])


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
