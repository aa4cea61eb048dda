"""Tests for core/models/aggregate.py: mixture fit on planted clusters, npz round trip, VAE sampling."""

import json

import numpy as np
import pytest
import keras

from core.errors import UserError
from core.models import build_vae
from core.models.aggregate import (
    AGGREGATE,
    AggregatePosterior,
    fit_aggregate_posterior,
    fit_model_aggregate,
)


def _two_clusters(n=400, d=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.stack([np.full(d, -3.0), np.full(d, 3.0)])
    labels = rng.random(n) < 0.25  # 25 % in the second cluster
    return centres[labels.astype(int)] + 0.5 * rng.standard_normal((n, d)), labels


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_recovers_planted_clusters(covariance_type):
    z, labels = _two_clusters()
    g = fit_aggregate_posterior(z, n_components=2, covariance_type=covariance_type, reg_covar=1e-6)
    order = np.argsort(g.means[:, 0])
    np.testing.assert_allclose(g.weights[order], [0.75, 0.25], atol=0.05)
    np.testing.assert_allclose(g.means[order], [[-3.0] * 4, [3.0] * 4], atol=0.15)
    draws = g.sample(4000, seed=1)
    assert draws.dtype == np.float32 and draws.shape == (4000, 4)
    # Draws reproduce the clusters (N(0, I) would put almost nothing near +-3).
    assert abs(np.mean(draws[:, 0] > 0) - 0.25) < 0.03
    np.testing.assert_allclose(draws[draws[:, 0] > 0].std(0), 0.5, atol=0.05)
    # Higher likelihood for the data than for standard normal draws.
    assert g.log_likelihood(z) > g.log_likelihood(np.random.default_rng(2).standard_normal((400, 4)))


def test_sample_seed_and_temperature():
    g = fit_aggregate_posterior(_two_clusters()[0], n_components=2)
    np.testing.assert_array_equal(g.sample(5, seed=3), g.sample(5, seed=3))
    assert not np.array_equal(g.sample(5, seed=3), g.sample(5, seed=4))
    cold = g.sample(50, seed=0, temperature=0.0)
    assert len(np.unique(cold.round(6), axis=0)) <= 2  # only the component means
    with pytest.raises(UserError, match="temperature"):
        g.sample(2, temperature=-1.0)


def test_components_capped_by_the_data():
    g = fit_aggregate_posterior(np.random.default_rng(0).standard_normal((6, 3)), n_components=10)
    assert g.n_components == 3


def test_npz_round_trip_without_pickle(tmp_path):
    g = fit_aggregate_posterior(_two_clusters()[0], n_components=2)
    path = g.save(tmp_path / AGGREGATE)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert set(data.files) == {"weights", "means", "covariances", "header"}
    h = AggregatePosterior.load(path)
    np.testing.assert_array_equal(h.means, g.means)
    np.testing.assert_array_equal(h.sample(7, seed=2), g.sample(7, seed=2))
    assert h.info["n_components"] == 2 and h.covariance_type == "full"


def test_pickled_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "pickled.npz"
    np.savez(bad, weights=np.array([{"a": 1}], dtype=object), means=np.zeros((1, 2)),
             covariances=np.ones((1, 2)), header=np.array("{}"))
    with pytest.raises(UserError, match="cannot read"):
        AggregatePosterior.load(bad)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError):
        AggregatePosterior.load(tmp_path / "text.npz")
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(1), means=np.zeros((1, 2)), covariances=np.ones((1, 2)),
             header=np.array(json.dumps({"format": 99})))
    with pytest.raises(UserError, match="format"):
        AggregatePosterior.load(other)
    with pytest.raises(UserError, match="does not exist"):
        AggregatePosterior.load(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "args",
    [
        ([1.0], np.zeros((1, 2)), np.ones((1, 3))),  # covariance shape
        ([1.0, 1.0], np.zeros((1, 2)), np.ones((1, 2))),  # weights shape
        ([-1.0], np.zeros((1, 2)), np.ones((1, 2))),  # negative weight
        ([1.0], np.full((1, 2), np.nan), np.ones((1, 2))),  # not finite
        ([1.0], np.zeros((1, 2)), -np.ones((1, 2, 2))),  # not positive definite
    ],
)
def test_bad_mixtures_are_user_errors(args):
    with pytest.raises(UserError):
        AggregatePosterior(*args)


def test_vae_samples_from_the_attached_mixture(tiny_vae_config):
    vae = build_vae(tiny_vae_config)
    with pytest.raises(UserError, match="aggregate posterior"):
        vae.sample(2, source="aggregate")
    with pytest.raises(UserError, match="source"):
        vae.sample(2, source="posterior")
    with pytest.raises(UserError, match="latent dimensions"):
        vae.attach_aggregate(fit_aggregate_posterior(_two_clusters(d=3)[0], 2))
    g = fit_aggregate_posterior(_two_clusters(d=8)[0], 2)
    vae.attach_aggregate(g)
    out = vae.sample(4, seed=5, source="aggregate")
    np.testing.assert_array_equal(out, vae.decode(g.sample(4, seed=5)))
    assert not np.array_equal(out, vae.sample(4, seed=5))  # the default is still N(0, I)


def test_fit_model_aggregate_encodes_fits_and_survives_a_reload(tmp_path, tiny_vae_config, blobs32):
    # Reading a run's images and keeping the file beside its model: tests/unit/training/test_run_data.py.
    vae = build_vae(tiny_vae_config)
    g = fit_model_aggregate(vae, blobs32[..., 0], n_components=3, seed=0)
    assert g.info["n_fitted"] == 64 and g.n_components == 3 and g.latent_dim == 8
    vae.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.aggregate is None  # the mixture is not inside the .keras file
    vae.attach_aggregate(g)
    loaded.attach_aggregate(AggregatePosterior.load(g.save(tmp_path / AGGREGATE)))
    np.testing.assert_array_equal(loaded.sample(3, seed=1, source="aggregate"),
                                  vae.sample(3, seed=1, source="aggregate"))
