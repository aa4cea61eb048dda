"""PCA directions, KL ranking and attribute directions on synthetic latents with planted effects."""

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.latent.directions import (age_direction, attribute_directions, class_directions, fit_pca,
                                    kl_ranked_units, pca_directions)


@pytest.mark.parametrize("n, d", [(500, 16), (200, 3000)])  # covariance path, randomized-SVD path
def test_pca_directions_are_orthonormal_and_sigma_is_the_spread(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)) * np.linspace(5, 0.1, d) + 3.0
    pca = fit_pca(x, k=6)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(6), atol=1e-4)
    scores = pca.transform(x)
    np.testing.assert_allclose(scores.std(axis=0, ddof=1), pca.sigma, rtol=1e-3)
    assert np.all(np.diff(pca.sigma) <= 1e-6)  # largest first
    assert pca.explained.sum() <= 1 + 1e-6
    directions = pca_directions(pca=pca, k=4)
    assert [d.key for d in directions] == ["pc1", "pc2", "pc3", "pc4"]
    assert all(d.unit == "σ" for d in directions)
    # one slider unit moves the projection by exactly one sigma
    z = x[0]
    moved = directions[0].move(z, 1.0)
    assert (pca.transform(moved[None]) - pca.transform(z[None]))[0, 0] == pytest.approx(pca.sigma[0], rel=1e-4)


def test_pca_is_deterministic_and_recovers_the_main_axis():
    rng = np.random.default_rng(1)
    axis = np.array([3.0, 4.0, 0.0]) / 5
    x = rng.normal(size=(400, 1)) * 10 * axis + rng.normal(size=(400, 3)) * 0.1
    a, b = fit_pca(x, 2), fit_pca(x.copy(), 2)
    np.testing.assert_array_equal(a.components, b.components)
    assert abs(a.components[0] @ axis) > 0.999


def test_kl_ranking_puts_the_informative_unit_first():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(300, 6)) * np.array([0.01, 2.0, 0.01, 0.5, 0.01, 0.01])
    log_var = np.zeros_like(mu)
    log_var[:, 1] = -4.0
    ranked = kl_ranked_units(mu, log_var, k=3)
    assert [d.key for d in ranked[:2]] == ["unit1", "unit3"]
    assert ranked[0].score > ranked[1].score > ranked[2].score
    assert ranked[0].vector[1] == 1.0 and ranked[0].vector.sum() == 1.0


def _planted(n_subjects=60, per=5, d=12, seed=3):
    rng = np.random.default_rng(seed)
    ages = rng.uniform(20, 85, n_subjects)
    sexes = rng.choice(["F", "M"], n_subjects)
    effect = rng.normal(size=d)
    effect /= np.linalg.norm(effect)
    sex_axis = np.zeros(d)
    sex_axis[0] = 1.0
    rows = []
    x = []
    for s in range(n_subjects):
        for k in range(per):
            x.append(0.05 * (ages[s] - 50) * effect + 2.0 * (sexes[s] == "M") * sex_axis
                     + rng.normal(size=d) * 0.3)
            rows.append({"subject": f"S{s}", "age": ages[s], "sex": sexes[s], "site": "A",
                         "split": "train" if s < 45 else "test"})
    return np.array(x), pd.DataFrame(rows), effect


def test_age_direction_recovers_a_planted_linear_effect():
    x, meta, effect = _planted()
    male = (meta["sex"] == "M").to_numpy(float)
    direction = age_direction(x, meta["age"], (meta["split"] == "train").to_numpy(), meta["subject"],
                              covariates=male)
    assert direction.unit == "years"
    assert direction.vector @ effect > 0.98  # the right way round: older = +effect
    assert direction.scale == pytest.approx(0.05, rel=0.1)  # latent change per year
    assert direction.score > 0.8  # held-out R²


def test_age_direction_through_attribute_directions_holds_sex_fixed():
    x, meta, effect = _planted()
    age = next(d for d in attribute_directions(x, meta) if d.key == "age")
    assert age.vector @ effect > 0.98


def test_age_direction_without_ages_is_none():
    x, meta, _ = _planted()
    assert age_direction(x, np.full(len(x), np.nan)) is None


def test_sex_direction_and_held_out_accuracy():
    x, meta, _ = _planted()
    (direction,) = class_directions(x, meta["sex"], "sex", (meta["split"] == "train").to_numpy(), meta["subject"])
    assert direction.key == "sex:M"
    assert direction.vector[0] > 0.9
    assert direction.score > 0.9


def test_attribute_directions_skip_constant_attributes():
    x, meta, _ = _planted()
    keys = [d.key for d in attribute_directions(x, meta)]
    assert keys == ["age", "sex:M"]  # one site only: no site direction


def test_nan_latents_are_a_user_error():
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[3, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        fit_pca(x)
    with pytest.raises(UserError, match="NaN"):
        kl_ranked_units(x, np.zeros_like(x))
