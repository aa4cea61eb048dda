"""Tests for core/models/vqvae.py and the VectorQuantizer: shapes, codebook maths, training, saving."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from core.errors import UserError
from core.models import PRESET_NAMES, PixelCNNPrior, build_vqvae, get_preset
from core.models.vqvae import VectorQuantizer
from core.models.vqvae import VQVAE

TEST_CASES = [(preset,) for preset in PRESET_NAMES]


@pytest.mark.parametrize("preset", [p for (p,) in TEST_CASES])
def test_preset_shapes(preset):
    config = get_preset("vqvae", preset)
    model = build_vqvae(config)
    s, d = config["image_size"], config["embedding_dim"]
    g = s // 2 ** len(config["filters"])
    assert g >= 16  # fine enough to reconstruct (the thesis had 2x2)
    x = np.zeros((2, s, s, 1), "float32")
    z_e = model.encode(x)
    assert z_e.shape == (2, g, g, d) and z_e.dtype == np.float32
    z_q, indices = model.quantize(z_e)
    assert z_q.shape == z_e.shape and indices.shape == (2, g, g) and indices.dtype == np.int32
    assert model.decode(z_q).shape == (2, s, s, 1)
    np.testing.assert_array_equal(model.code_indices(x), indices)
    images = model.decode_indices(indices)
    assert images.shape == (2, s, s, 1) and images.dtype == np.float32


def _quantizer(codebook, **kwargs):
    codebook = np.asarray(codebook, "float32")
    vq = VectorQuantizer(len(codebook), codebook.shape[1], seed=0, **kwargs)
    vq.build((None, codebook.shape[1]))
    vq.codebook.assign(codebook)
    return vq


def test_code_indices_match_numpy():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(10, 3)).astype("float32")
    flat = rng.normal(size=(50, 3)).astype("float32")
    vq = _quantizer(codebook)
    expected = np.argmin(((flat[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(vq.get_code_indices(flat)), expected)
    z_q, indices = vq(flat.reshape(5, 10, 3))
    np.testing.assert_array_equal(np.asarray(indices).ravel(), expected)
    np.testing.assert_allclose(np.asarray(z_q).reshape(50, 3), codebook[expected], atol=1e-6)


def test_straight_through_gradient():
    vq = _quantizer(np.random.default_rng(0).normal(size=(8, 4)))
    z_e = tf.Variable(np.random.default_rng(1).normal(size=(2, 3, 3, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        z_q, _ = vq(z_e)
        total = tf.reduce_sum(z_q * 3.0)
    np.testing.assert_allclose(tape.gradient(total, z_e).numpy(), 3.0)


def test_ema_update_matches_numpy():
    decay, eps = 0.9, 1e-5
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], "float32")
    flat = np.array([[0.1, 0.0], [0.0, 0.3], [1.2, 0.8], [0.9, 1.0], [1.0, 1.3]], "float32")
    vq = _quantizer(codebook, ema_decay=decay, epsilon=eps, data_init=False, restart_dead_codes=False)
    indices = vq.get_code_indices(flat)
    vq.update(flat, indices)
    one_hot = np.eye(3)[np.asarray(indices)]
    cluster = decay * 1.0 + (1 - decay) * one_hot.sum(0)
    dw = decay * codebook + (1 - decay) * one_hot.T @ flat
    smoothed = (cluster + eps) / (cluster.sum() + 3 * eps) * cluster.sum()
    np.testing.assert_allclose(np.asarray(vq.ema_cluster_size), cluster, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vq.ema_dw), dw, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vq.codebook), dw / smoothed[:, None], rtol=1e-5)
    assert float(vq.initialized) == 1.0


def test_dead_code_restart_reinitialises_from_batch():
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]], "float32")  # code 2 never used
    flat = np.random.default_rng(0).uniform(-0.2, 1.2, size=(40, 2)).astype("float32")
    vq = _quantizer(codebook, ema_decay=0.5, data_init=False, restart_threshold=0.5)
    vq.update(flat, vq.get_code_indices(flat))  # running share of code 2: 1/3 -> 1/6, not yet dead
    np.testing.assert_allclose(np.asarray(vq.codebook)[2], codebook[2], rtol=1e-3)
    vq.update(flat, vq.get_code_indices(flat))  # 1/12 < 0.5 * 1/3: restarted
    new = np.asarray(vq.codebook)
    assert np.abs(new[2]).max() < 2.0
    assert np.isclose(flat, new[2]).all(axis=1).any()  # a vector of the batch
    assert np.asarray(vq.usage)[2] == pytest.approx(1.0 / 3.0)


def test_data_init_takes_codes_from_the_batch():
    flat = np.random.default_rng(0).normal(5.0, 1.0, size=(64, 2)).astype("float32")
    vq = _quantizer(np.zeros((4, 2)), restart_dead_codes=False)
    vq.update(flat, vq.get_code_indices(flat))
    codes = np.asarray(vq.codebook)
    assert np.all(codes > 1.0)  # moved to the data, away from the zero initialisation


def test_training_decreases_loss_and_logs_codebook_metrics(blobs32, tiny_vqvae_config):
    model = build_vqvae(tiny_vqvae_config)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    before = np.asarray(model.quantizer.codebook).copy()
    history = model.fit(blobs32, batch_size=8, epochs=2, verbose=0, validation_data=(blobs32[:16],))
    keys = {"loss", "recon", "vq", "perplexity", "usage"}
    assert set(history.history) == keys | {f"val_{k}" for k in keys}
    assert history.history["loss"][1] < history.history["loss"][0]
    assert 1.0 <= history.history["perplexity"][-1] <= 16.0
    assert 0.0 < history.history["usage"][-1] <= 1.0
    assert not np.allclose(before, np.asarray(model.quantizer.codebook))  # EMA moved the codes


def test_gradient_codebook_variant_trains(blobs32, tiny_vqvae_config):
    model = build_vqvae({**tiny_vqvae_config, "use_ema": False})
    assert model.quantizer.codebook.trainable
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    history = model.fit(blobs32[:32], batch_size=8, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def _tiny_prior(tiny_prior_config):
    prior = PixelCNNPrior(**tiny_prior_config)
    rng = np.random.default_rng(0)
    prior.net.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in prior.net.get_weights()])
    return prior


def test_save_load_round_trip_with_prior(tmp_path, blobs32, tiny_vqvae_config, tiny_prior_config):
    model = build_vqvae(tiny_vqvae_config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(blobs32[:32], batch_size=8, epochs=1, verbose=0)
    model.attach_prior(_tiny_prior(tiny_prior_config))
    path = tmp_path / "vqvae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, VQVAE) and isinstance(loaded.prior, PixelCNNPrior)
    np.testing.assert_array_equal(model.encode(blobs32), loaded.encode(blobs32))
    np.testing.assert_array_equal(model.code_indices(blobs32), loaded.code_indices(blobs32))
    np.testing.assert_array_equal(model.reconstruct(blobs32[:8]), loaded.reconstruct(blobs32[:8]))
    for name in ("codebook", "ema_cluster_size", "ema_dw", "usage", "initialized"):
        np.testing.assert_array_equal(
            np.asarray(getattr(model.quantizer, name)), np.asarray(getattr(loaded.quantizer, name))
        )
    grid = model.code_indices(blobs32[:4])
    np.testing.assert_array_equal(np.asarray(model.prior(grid)), np.asarray(loaded.prior(grid)))
    np.testing.assert_array_equal(model.sample(2, seed=3), loaded.sample(2, seed=3))
    loaded.fit(blobs32[:16], batch_size=8, epochs=1, verbose=0)  # optimizer state restored


def test_sample_needs_a_prior(tiny_vqvae_config, tiny_prior_config):
    model = build_vqvae(tiny_vqvae_config)
    with pytest.raises(UserError, match="prior"):
        model.sample(2)
    prior = _tiny_prior(tiny_prior_config)
    model.attach_prior(prior)
    images = model.sample(3, seed=0)
    assert images.shape == (3, 32, 32, 1) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, model.sample(3, seed=0))
    assert prior.trainable  # attach_prior keeps a frozen copy; the caller's prior is untouched


def test_attach_prior_rejects_a_mismatched_prior(tiny_vqvae_config, tiny_prior_config):
    model = build_vqvae(tiny_vqvae_config)
    with pytest.raises(UserError, match="codes"):
        model.attach_prior(PixelCNNPrior(**{**tiny_prior_config, "num_embeddings": 32}))
    with pytest.raises(UserError, match="code prior"):
        model.attach_prior(object())


def test_decode_indices_rejects_bad_indices(tiny_vqvae_config):
    model = build_vqvae(tiny_vqvae_config)
    with pytest.raises(UserError, match="indices"):
        model.decode_indices(np.full((1, 8, 8), 16))
    with pytest.raises(UserError, match="indices"):
        model.decode_indices(np.zeros((1, 4, 4), "int32"))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"image_size": 34}, "image_size"),
        ({"num_embeddings": 1}, "num_embeddings"),
        ({"commitment_cost": -1.0}, "commitment_cost"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"filters": []}, "filters"),
    ],
)
def test_constructor_rejects_bad_arguments(tiny_vqvae_config, kwargs, name):
    with pytest.raises(UserError, match=name):
        VQVAE(**{**tiny_vqvae_config, **kwargs})


def test_mixed_precision(mixed_precision, blobs32, tiny_vqvae_config):
    model = build_vqvae(tiny_vqvae_config)
    assert model.quantizer.compute_dtype == "float32"
    assert model.quantizer.codebook.dtype == "float32"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = model.fit(blobs32[:16], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.reconstruct(blobs32[:2]).dtype == np.float32
