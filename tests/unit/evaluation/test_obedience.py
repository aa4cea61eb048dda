"""Tests for core/evaluation/obedience.py: regressors and agreement on planted attributes."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.obedience import agreement, train_attribute_regressor


def _planted(values, size=32, seed=0):
    """Images whose disk radius grows with ``values`` in [20, 90] (an 'age' a CNN can read)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for v in values:
        r = 4 + 10 * (v - 20) / 70
        cy, cx = size / 2 + rng.uniform(-2, 2, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        out.append(np.clip(0.8 * disk + rng.normal(0, 0.03, (size, size)), 0, 1))
    return np.array(out, np.float32)


@pytest.fixture(scope="module")
def regressor():
    ages = np.random.default_rng(1).uniform(20, 90, 240)
    return train_attribute_regressor(_planted(ages, seed=1), ages, epochs=25)


def test_obedient_generator_scores_near_the_ceiling_and_a_deaf_one_near_zero(regressor):
    rng = np.random.default_rng(2)
    test_ages = rng.uniform(20, 90, 80)
    ceiling = agreement(test_ages, regressor.predict(_planted(test_ages, seed=2)))
    assert ceiling["pearson_r"] > 0.9 and ceiling["mae"] < 8

    requested = rng.uniform(20, 90, 80)
    obedient = agreement(requested, regressor.predict(_planted(requested, seed=3)))
    deaf = agreement(requested, regressor.predict(_planted(rng.uniform(20, 90, 80), seed=4)))
    assert obedient["pearson_r"] > 0.9 and obedient["mae"] < 8
    assert abs(deaf["pearson_r"]) < 0.35 and deaf["mae"] > 12


def test_agreement_reference_values():
    out = agreement([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0])
    assert out["pearson_r"] == pytest.approx(1.0) and out["mae"] == pytest.approx(2.5) and out["n"] == 4
    assert agreement([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])["pearson_r"] == pytest.approx(-1.0)
    assert agreement([5.0, 5.0], [1.0, 2.0])["pearson_r"] is None


def test_bad_inputs():
    with pytest.raises(UserError, match="same length"):
        agreement([1.0, 2.0], [1.0])
    with pytest.raises(UserError, match="regressor"):
        train_attribute_regressor(np.zeros((3, 8, 8)), [1.0, 2.0, 3.0])
    with pytest.raises(UserError, match="images"):
        train_attribute_regressor(np.zeros((8, 8)), [1.0])
