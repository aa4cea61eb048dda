"""The latent diffusion prior (issue 20): it learns a planted grid-wide rule on code vectors, its
DDIM sampler is reproducible, it saves with the VQ-VAE, and bad settings are refused by name
(the training engine: tests/unit/training/test_trainer_issue20.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import UserError
from core.models import build_model, prior_for, validate_config
from core.models.diffusion_prior import DiffusionPrior, cosine_alpha_bar


def constant_grids(n, codes=8, side=4, seed=0):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.integers(0, codes, size=(n, 1, 1)), side * side, axis=1).reshape(n, side, side).astype("int32")


def test_the_noise_schedule_runs_from_signal_to_noise():
    alpha_bar = cosine_alpha_bar(1000)
    assert alpha_bar.shape == (1000,) and alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-3
    assert (np.diff(alpha_bar) <= 0).all() and alpha_bar[500] < 0.6  # never rises; half-way about half


@pytest.mark.parametrize("condition_dim", [0, 3])
def test_it_learns_a_grid_wide_rule(condition_dim):
    """Planted: each grid repeats one code.  Drawn independently per position (what an untrained
    prior does) 16 equal codes of 8 happen with probability 8^-15; after training most grids obey."""
    keras.utils.set_random_seed(0)
    grids = constant_grids(256)
    prior = DiffusionPrior(num_embeddings=8, grid_size=4, embedding_dim=2, width=16, diffusion_steps=100,
                           sample_steps=20, condition_dim=condition_dim)
    prior.set_codebook(np.random.default_rng(0).normal(size=(8, 2)))
    conditions = np.random.default_rng(1).normal(size=(256, 3)).astype("float32") if condition_dim else None
    untrained = prior.sample(64, seed=0, condition=None if conditions is None else conditions[:64]).reshape(64, 16)
    prior.compile(optimizer=keras.optimizers.Adam(2e-3))
    if conditions is None:
        prior.fit(grids, batch_size=32, epochs=30, verbose=0)
    else:
        prior.fit(grids, conditions, batch_size=32, epochs=30, verbose=0)
    samples = prior.sample(64, seed=0, condition=None if conditions is None else conditions[:64])
    assert samples.shape == (64, 4, 4) and samples.dtype == np.int32 and samples.max() < 8
    flat = samples.reshape(64, 16)
    obey = (flat == flat[:, :1]).mean()
    assert obey > 0.7 and obey > (untrained == untrained[:, :1]).mean() + 0.2, obey
    assert (flat == flat[:, :1]).all(axis=1).mean() > 0.3
    assert prior.log_likelihood(grids) is None  # no likelihood per code to compare
    np.testing.assert_array_equal(samples, prior.sample(64, seed=0, condition=None if conditions is None
                                                        else conditions[:64]))


def test_it_refuses_to_sample_without_a_codebook():
    prior = DiffusionPrior(num_embeddings=8, grid_size=4, embedding_dim=2, width=8, sample_steps=2)
    with pytest.raises(UserError, match="codebook"):
        prior.sample(2)
    with pytest.raises(UserError, match="codebook"):
        prior.set_codebook(np.zeros((7, 2)))


def test_a_vqvae_keeps_its_diffusion_prior_through_save_and_load(tmp_path):
    config = {"model_type": "vqvae", "image_size": 32, "filters": [8, 16], "num_embeddings": 16,
              "embedding_dim": 4, "n_res_blocks": 0, "res_filters": 8, "prior_type": "diffusion",
              "diffusion_width": 8, "diffusion_steps": 20, "diffusion_sample_steps": 4}
    model = build_model(config)
    prior = prior_for(config, model)  # takes the VQ-VAE's codebook
    assert isinstance(prior, DiffusionPrior) and prior.grid_size == 8 and prior.embedding_dim == 4
    model.attach_prior(prior)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.prior, DiffusionPrior)
    np.testing.assert_array_equal(loaded.sample_codes(3, seed=0), model.sample_codes(3, seed=0))
    assert loaded.sample(2, seed=0).shape == (2, 32, 32, 1)


@pytest.mark.parametrize(("key", "value"), [
    ("diffusion_width", 12),  # not a multiple of 8
    ("diffusion_steps", 1),
    ("diffusion_sample_steps", 2000),  # more than diffusion_steps
])
def test_bad_diffusion_settings_are_refused_by_name(key, value):
    with pytest.raises(UserError, match=key):
        validate_config({"model_type": "vqvae", "prior_type": "diffusion", key: value})
