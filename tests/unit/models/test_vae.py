"""Tests for core/models/vae.py: shapes per preset, ELBO terms against NumPy, training, saving."""

import numpy as np
import pytest
import keras

from core.errors import UserError
from core.models import PRESET_NAMES, build_vae, get_preset
from core.models.vae import VAE, active_units, kl_beta_schedule, kl_per_unit

TEST_CASES = [(preset,) for preset in PRESET_NAMES]


@pytest.mark.parametrize("preset", [p for (p,) in TEST_CASES])
def test_preset_shapes(preset):
    config = get_preset("vae", preset)
    model = build_vae(config)
    s, latent = config["image_size"], config["latent_dim"]
    z_mean, z_log_var = model.encode(np.zeros((2, s, s, 1), "float32"))
    assert z_mean.shape == z_log_var.shape == (2, latent)
    images = model.decode(np.zeros((2, latent), "float32"))
    assert images.shape == (2, s, s, 1) and images.dtype == np.float32
    assert model.encoder.input_shape == (None, s, s, 1)


def test_thesis_preset_is_the_seed_architecture():
    model = build_vae(get_preset("vae", "thesis"))
    convs = [l for l in model.encoder.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32, 64, 256, 1024]
    assert {c.kernel_size for c in convs} == {(4, 4)} and {c.strides for c in convs} == {(2, 2)}
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in model.encoder.layers) == 5
    assert model.latent_dim == 1024 and model.image_size == 128


def _deterministic(model):
    """Make the posterior variance ~0 so the sampled z equals z_mean (for NumPy references)."""
    layer = model.encoder.get_layer("z_log_var")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.full_like(bias, -40.0)])
    return model


def _reference_terms(model, x):
    z_mean, z_log_var = (a.astype("float64") for a in model.encode(x))
    logits = np.asarray(model.decoder(z_mean.astype("float32")), "float64")
    kl_units = 0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var)
    return logits, kl_units


@pytest.mark.parametrize(
    "recon_loss, free_bits, beta",
    [("bernoulli", 0.0, 1.0), ("gaussian", 0.0, 0.5), ("gaussian", 10.0, 2.0),
     ("gaussian_optimal", 0.0, 1.0)],
)
def test_elbo_terms_match_numpy(blobs32, tiny_vae_config, recon_loss, free_bits, beta):
    model = _deterministic(
        build_vae({**tiny_vae_config, "recon_loss": recon_loss, "free_bits": free_bits, "beta": beta})
    )
    x = blobs32[:8]
    terms = {k: float(v) for k, v in model.compute_losses(x).items()}
    logits, kl_units = _reference_terms(model, x)
    xd = x.astype("float64")
    if recon_loss == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-logits))
        per_pixel = -(xd * np.log(p) + (1 - xd) * np.log(1 - p))
    elif recon_loss == "gaussian_optimal":  # sigma* = the batch RMSE; per pixel 1/2 + log sigma*
        sq = (xd - 1.0 / (1.0 + np.exp(-logits))) ** 2
        per_pixel = 0.5 * sq / sq.mean() + 0.5 * np.log(sq.mean())
    else:
        per_pixel = 0.5 * (xd - 1.0 / (1.0 + np.exp(-logits))) ** 2 / model.sigma**2
    recon = per_pixel.sum(axis=(1, 2, 3)).mean()
    kl = kl_units.sum(axis=1).mean()
    kl_term = np.maximum(kl_units.mean(axis=0), free_bits).sum() if free_bits else kl
    np.testing.assert_allclose(terms["recon"], recon, rtol=1e-4)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["beta"], beta)
    np.testing.assert_allclose(terms["loss"], recon + beta * kl_term, rtol=1e-4)


def test_thesis_loss_mode_matches_numpy(blobs32, tiny_vae_config):
    model = _deterministic(build_vae({**tiny_vae_config, "loss_mode": "thesis", "beta": 0.0}))
    x = blobs32[:8]
    terms = {k: float(v) for k, v in model.compute_losses(x).items()}
    logits, kl_units = _reference_terms(model, x)
    recon = 1000.0 * np.mean((x - 1.0 / (1.0 + np.exp(-logits))) ** 2)
    np.testing.assert_allclose(terms["recon"], recon, rtol=1e-4)
    assert terms["beta"] == 1.0  # no annealing, beta ignored
    np.testing.assert_allclose(terms["loss"], recon + kl_units.sum(axis=1).mean(), rtol=1e-4)


@pytest.mark.parametrize("loss_mode", ["elbo", "thesis"])
def test_training_decreases_loss(blobs32, tiny_vae_config, loss_mode):
    model = build_vae({**tiny_vae_config, "loss_mode": loss_mode})
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    history = model.fit(blobs32, batch_size=8, epochs=2, verbose=0, validation_data=(blobs32[:16],))
    assert set(history.history) == {"loss", "recon", "kl", "beta"} | {
        f"val_{k}" for k in ("loss", "recon", "kl", "beta")
    }
    assert history.history["loss"][1] < history.history["loss"][0]
    assert all(np.isfinite(v).all() for v in history.history.values())


def test_optimal_sigma_tracks_the_reconstruction_rmse(tmp_path, blobs32, tiny_vae_config):
    model = build_vae({**tiny_vae_config, "recon_loss": "gaussian_optimal", "sigma": 0.5})
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    history = model.fit(blobs32, batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    sigma = float(np.exp(float(model.log_sigma)))
    assert sigma != 0.5  # the training step stores the analytic sigma of its last batch
    # The stored sigma is the RMSE of the last step's (sampled-z) reconstruction: close to the
    # deterministic reconstruction's RMSE, far below the 0.5 it started from.
    rmse = float(np.sqrt(np.mean((model.reconstruct(blobs32) - blobs32) ** 2)))
    assert 0.5 * rmse < sigma < 2.0 * rmse
    model.save(tmp_path / "opt.keras")
    loaded = keras.saving.load_model(tmp_path / "opt.keras", safe_mode=True)
    assert loaded.recon_loss == "gaussian_optimal" and float(loaded.log_sigma) == float(model.log_sigma)


def test_learn_sigma_needs_the_gaussian_loss(tiny_vae_config):
    with pytest.raises(UserError, match="learn_sigma"):
        build_vae({**tiny_vae_config, "recon_loss": "gaussian_optimal", "learn_sigma": True})


def test_beta_variable_drives_the_loss(blobs32, tiny_vae_config):
    model = _deterministic(build_vae(tiny_vae_config))
    model.beta.assign(0.0)
    t0 = {k: float(v) for k, v in model.compute_losses(blobs32[:4]).items()}
    model.beta.assign(3.0)
    t3 = {k: float(v) for k, v in model.compute_losses(blobs32[:4]).items()}
    assert t0["beta"] == 0.0 and t3["beta"] == 3.0
    np.testing.assert_allclose(t0["loss"], t0["recon"], rtol=1e-5)
    np.testing.assert_allclose(t3["loss"], t3["recon"] + 3.0 * t3["kl"], rtol=1e-4)
    assert not model.beta.trainable


def test_save_load_round_trip(tmp_path, blobs32, tiny_vae_config):
    model = build_vae({**tiny_vae_config, "learn_sigma": True, "recon_loss": "gaussian"})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(blobs32[:16], batch_size=8, epochs=1, verbose=0)
    model.beta.assign(0.25)
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, VAE)
    for a, b in zip(model.encode(blobs32), loaded.encode(blobs32)):
        np.testing.assert_array_equal(a, b)
    z = np.random.default_rng(1).standard_normal((5, 8)).astype("float32")
    np.testing.assert_array_equal(model.decode(z), loaded.decode(z))
    np.testing.assert_array_equal(model.sample(3, seed=4), loaded.sample(3, seed=4))
    assert float(loaded.beta) == 0.25
    assert float(loaded.log_sigma) == float(model.log_sigma)
    loaded.fit(blobs32[:16], batch_size=8, epochs=1, verbose=0)  # optimizer state restored


def test_sample_shape_range_and_seed(tiny_vae_config):
    model = build_vae(tiny_vae_config)
    a = model.sample(5, seed=0)
    assert a.shape == (5, 32, 32, 1) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, model.sample(5, seed=0))
    assert not np.array_equal(a, model.sample(5, seed=1))
    flat = model.sample(2, seed=0, temperature=0.0)
    np.testing.assert_allclose(flat[0], flat[1])  # temperature 0: the decoded prior mean


def test_reconstruct_and_input_forms(blobs32, tiny_vae_config):
    model = build_vae(tiny_vae_config)
    r4 = model.reconstruct(blobs32[:3])
    r3 = model.reconstruct(blobs32[:3, :, :, 0])
    assert r4.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(r3, r4)
    with pytest.raises(UserError, match="images must be"):
        model.encode(np.zeros((2, 32, 32, 3), "float32"))


class _StubEncoder:
    """Stands in for a model whose posterior parameters are known exactly."""

    def __init__(self, z_mean, z_log_var):
        self.z_mean, self.z_log_var = np.asarray(z_mean, "float32"), np.asarray(z_log_var, "float32")

    def encode(self, images, batch_size=64):
        return self.z_mean[: len(images)], self.z_log_var[: len(images)]


def test_kl_per_unit_and_active_units_on_known_posteriors():
    stub = _StubEncoder([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, np.log(4.0), 0.0]])
    kl = kl_per_unit(stub, np.zeros((2, 4, 4, 1)))
    expected_unit1 = 0.5 * (0.0 + 0.5 * (4.0 - 1.0 - np.log(4.0)))
    np.testing.assert_allclose(kl, [0.5, expected_unit1, 0.0], rtol=1e-6)
    assert active_units(stub, np.zeros((2, 4, 4, 1))) == 2
    assert active_units(stub, np.zeros((2, 4, 4, 1)), threshold=0.45) == 1


def test_active_units_on_a_model(blobs32, tiny_vae_config):
    model = build_vae(tiny_vae_config)
    kl = kl_per_unit(model, blobs32, batch_size=16)
    assert kl.shape == (8,) and (kl >= 0).all()
    assert active_units(model, blobs32) == int((kl > 0.01).sum())


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("none", [0.8] * 6),
        ("linear", [0.2, 0.4, 0.6, 0.8, 0.8, 0.8]),
        ("cyclical", [0.4, 0.8, 0.8, 0.8, 0.4, 0.8]),
    ],
)
def test_kl_beta_schedule(kind, expected):
    got = [kl_beta_schedule(e, kind, warmup_epochs=4, beta_max=0.8, cycle_epochs=4) for e in range(6)]
    np.testing.assert_allclose(got, expected)


def test_kl_beta_schedule_no_warmup():
    assert kl_beta_schedule(0, "linear", warmup_epochs=0, beta_max=1.0) == 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"kind": "exponential"}, "kl_schedule"),
        ({"beta_max": -1.0}, "beta"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"cycle_epochs": 0}, "cycle_epochs"),
        ({"epoch": -1}, "epoch"),
    ],
)
def test_kl_beta_schedule_rejects_bad_arguments(kwargs, name):
    args = {"epoch": 0, "kind": "linear", "warmup_epochs": 2, "beta_max": 1.0, "cycle_epochs": 4}
    with pytest.raises(UserError, match=name):
        kl_beta_schedule(**{**args, **kwargs})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"image_size": 30}, "image_size"),
        ({"beta": -0.1}, "beta"),
        ({"recon_loss": "laplace"}, "recon_loss"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"free_bits": -1.0}, "free_bits"),
        ({"sigma": 0.0}, "sigma"),
        ({"loss_mode": "mse"}, "loss_mode"),
    ],
)
def test_constructor_rejects_bad_arguments(tiny_vae_config, kwargs, name):
    with pytest.raises(UserError, match=name):
        VAE(**{**tiny_vae_config, **kwargs})


def test_mixed_precision(mixed_precision, blobs32, tiny_vae_config):
    model = build_vae(tiny_vae_config)
    assert model.encoder.get_layer("enc0_conv").compute_dtype == "float16"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = model.fit(blobs32[:16], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.decode(np.zeros((1, 8), "float32")).dtype == np.float32
    assert model.encode(blobs32[:2])[0].dtype == np.float32
