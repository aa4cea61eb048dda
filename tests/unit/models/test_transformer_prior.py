"""The causal transformer prior (issue 20): causal, its cached sampler agrees with its full pass,
it learns a planted structure a raster-order model must carry across the whole grid, it saves
with the VQ-VAE, and bad configs are refused by name (the engine: tests/unit/training/test_trainer_issue20.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import UserError
from core.models import build_model, build_prior, validate_config
from core.models.transformer_prior import TransformerPrior


def small(condition_dim=0, **kwargs):
    keras.utils.set_random_seed(0)
    return TransformerPrior(num_embeddings=8, grid_size=4, width=16, n_layers=2, n_heads=2, dropout=0.0,
                            condition_dim=condition_dim, **kwargs)


@pytest.mark.parametrize("condition_dim", [0, 3])
def test_the_cached_sampler_draws_what_the_full_pass_predicts(condition_dim):
    prior = small(condition_dim)
    condition = np.random.default_rng(1).normal(size=(6, 3)).astype("float32") if condition_dim else None
    # temperature 0: each code is the argmax given the codes before it, so the full (teacher-forced)
    # pass over the drawn grids must pick the very same codes at every position
    codes = prior.sample(6, seed=0, temperature=0.0, condition=condition)
    logits = np.asarray(prior((codes, condition)) if condition_dim else prior(codes))
    assert codes.shape == (6, 4, 4) and codes.dtype == np.int32
    np.testing.assert_array_equal(logits.argmax(-1), codes)
    assert (prior.sample(6, seed=1, condition=condition) >= 0).all()


def test_a_position_never_sees_itself_or_what_follows():
    prior = small()
    codes = np.random.default_rng(0).integers(0, 8, size=(2, 4, 4)).astype("int32")
    before = np.asarray(prior(codes)).reshape(2, 16, 8)
    changed = codes.copy().reshape(2, 16)
    changed[:, 9] = (changed[:, 9] + 1) % 8
    after = np.asarray(prior(changed.reshape(2, 4, 4))).reshape(2, 16, 8)
    np.testing.assert_allclose(after[:, :10], before[:, :10], atol=1e-6)  # positions 0-9 read codes < their own
    assert np.abs(after[:, 10:] - before[:, 10:]).max() > 1e-4


def test_it_learns_a_grid_wide_rule_that_a_short_reach_misses():
    """Planted: every grid is one code repeated, so the last position (15 steps after the first)
    is fixed by the first.  After training, the NLL is far below uniform and samples keep the rule."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    grids = np.repeat(rng.integers(0, 8, size=(256, 1, 1)), 16, axis=1).reshape(256, 4, 4).astype("int32")
    prior = TransformerPrior(num_embeddings=8, grid_size=4, width=32, n_layers=2, n_heads=2, dropout=0.0)
    prior.compile(optimizer=keras.optimizers.Adam(3e-3))
    prior.fit(grids, batch_size=32, epochs=15, verbose=0)
    nll = prior.log_likelihood(grids)
    # uniform is ln 8 = 2.08 nats per code; the rule costs ln 8 / 16 = 0.13 (only the first code is free)
    assert nll < 0.4, nll
    samples = prior.sample(64, seed=0).reshape(64, 16)
    constant = (samples == samples[:, :1]).all(axis=1).mean()
    assert constant > 0.9, constant


def test_a_vqvae_keeps_its_transformer_prior_through_save_and_load(tmp_path):
    config = {"model_type": "vqvae", "image_size": 32, "filters": [8, 16], "num_embeddings": 16,
              "embedding_dim": 4, "n_res_blocks": 0, "res_filters": 8, "prior_type": "transformer",
              "transformer_width": 16, "transformer_layers": 1, "transformer_heads": 2}
    model = build_model(config)
    prior = build_prior(config)
    assert isinstance(prior, TransformerPrior) and prior.grid_size == 8 and prior.num_embeddings == 16
    model.attach_prior(prior)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.prior, TransformerPrior)
    np.testing.assert_array_equal(loaded.sample_codes(3, seed=0), model.sample_codes(3, seed=0))
    assert loaded.sample(2, seed=0).shape == (2, 32, 32, 1)


@pytest.mark.parametrize(("key", "value", "named"), [
    ("prior_type", "gan", "prior_type"),
    ("transformer_heads", 3, "transformer_heads"),  # 128 is not a multiple of 3
    ("transformer_dropout", 1.0, "transformer_dropout"),
    ("transformer_layers", 0, "transformer_layers"),
])
def test_bad_transformer_settings_are_refused_by_name(key, value, named):
    with pytest.raises(UserError, match=named):
        validate_config({"model_type": "vqvae", key: value})
