"""Fréchet distance and MMD: closed-form Gaussian cases and the sanity checks of issue 9."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.distances import frechet_distance, mmd_rbf
from core.evaluation.features import handcrafted_features, train_slice_position_net


def test_frechet_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 2))
    b = rng.normal(0, 2, (4000, 2)) + [3, 0]
    # |mu|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) with S1 = I, S2 = 4I: 9 + 2 * (1 + 4 - 4) = 11
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_mmd_is_zero_for_same_and_positive_for_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    assert abs(mmd_rbf(a, b)["mmd2"]) < 0.02
    assert mmd_rbf(a, b + 2)["mmd2"] > 0.3


def test_bad_features_are_user_errors():
    with pytest.raises(UserError, match="feature sizes differ"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(UserError, match="N >= 2"):
        mmd_rbf(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(UserError, match="NaN"):
        frechet_distance(np.full((3, 2), np.nan), np.zeros((3, 2)))


@pytest.fixture(scope="module")
def position_net(eval_dataset, real_train):
    from core.data.dataset import load_manifest

    slices = load_manifest(eval_dataset)["splits"]["train"]["slices"]
    return train_slice_position_net(real_train, [s[1] for s in slices], sites=None, epochs=3)


def _halves(x):
    idx = np.random.default_rng(0).permutation(len(x))
    return x[idx[: len(x) // 2]], x[idx[len(x) // 2:]]


@pytest.mark.parametrize("space", ["slice_position_net", "handcrafted"])
def test_real_halves_near_zero_noise_and_blank_far(space, position_net, real_test, noise, blank):
    if space == "handcrafted":
        features = handcrafted_features
    else:
        features = position_net.features
    real = features(real_test)
    a, b = _halves(real)
    halves = frechet_distance(a, b)
    to_noise = frechet_distance(real, features(noise))
    to_blank = frechet_distance(real, features(blank))
    assert halves < 0.1 * to_noise and halves < 0.1 * to_blank
    ha, hb = _halves(handcrafted_features(real_test))
    assert abs(mmd_rbf(ha, hb)["mmd2"]) < 0.1 * mmd_rbf(handcrafted_features(real_test),
                                                        handcrafted_features(noise))["mmd2"]


def test_handcrafted_features_shape_and_histogram(real_test):
    f = handcrafted_features(real_test[:3])
    assert f.shape == (3, 28)
    np.testing.assert_allclose(f[:, :16].sum(1), 1.0, atol=1e-6)
