"""The adversarial option (core.models.discriminator) and the VQ-VAE's L1 pixel loss.

The planted test: on a toy set of sharp-edged discs, a VAE decoder trained with the
adversarial term is measurably sharper than the same decoder trained without it for the same
steps from the same seed (measured here: Laplacian variance 0.07 -> 0.18 of real).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from core.errors import UserError  # noqa: E402
from core.evaluation.metrics import compute_sharpness  # noqa: E402
from core.models import build_model, validate_config  # noqa: E402
from core.models.discriminator import (  # noqa: E402
    adaptive_weight,
    build_patch_discriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from core.models.vae import VAE  # noqa: E402
from core.models.vqvae import VQVAE  # noqa: E402
from core.training.callbacks import AdversarialWarmup  # noqa: E402


def discs(n, seed, size=32):
    """Images of three sharp-edged discs of random grey levels: blur is easy to measure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size), "float32")
    for i in range(n):
        for _ in range(3):
            cy, cx = rng.uniform(6, size - 6, 2)
            radius = rng.uniform(3, 8)
            out[i][(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.uniform(0.4, 1.0)
    return out


def test_hinge_losses_have_their_textbook_values():
    ones, zeros = np.ones((2, 4, 4, 1), "float32"), np.zeros((2, 4, 4, 1), "float32")
    assert float(hinge_discriminator_loss(zeros, zeros)) == pytest.approx(1.0)  # chance
    assert float(hinge_discriminator_loss(ones * 2, -ones * 2)) == pytest.approx(0.0)  # told apart
    assert float(hinge_generator_loss(ones * 3)) == pytest.approx(-3.0)
    assert float(feature_matching_loss([ones], [zeros])) == pytest.approx(1.0)


def test_adaptive_weight_balances_gradient_norms():
    rec, adv = np.full((3, 3), 2.0, "float32"), np.full((3, 3), 0.5, "float32")
    assert float(adaptive_weight(rec, adv)) == pytest.approx(4.0, rel=1e-3)
    assert float(adaptive_weight(rec, np.zeros((3, 3), "float32"), max_weight=10.0)) == 10.0


def test_patch_discriminator_scores_patches_and_returns_features():
    disc = build_patch_discriminator(32, (8, 16, 32))
    logits, *features = disc(np.zeros((2, 32, 32, 1), "float32"))
    assert tuple(logits.shape) == (2, 8, 8, 1)  # two stride-2 blocks, then stride 1
    assert [f.shape[-1] for f in features] == [8, 16, 32]
    assert all(v.dtype == "float32" for v in disc.weights)


@pytest.mark.parametrize("kind", ["vae", "vqvae"])
def test_adversarial_training_logs_saves_and_loads(kind, tmp_path):
    keras.utils.set_random_seed(0)
    x = discs(32, 0, 16)[..., None]
    common = dict(image_size=16, filters=(8, 16), adversarial_weight=0.5, feature_matching_weight=1.0,
                  disc_filters=(8, 16))
    if kind == "vae":
        model = VAE(latent_dim=4, recon_loss="bernoulli", **common)
    else:
        model = VQVAE(num_embeddings=8, embedding_dim=4, n_res_blocks=1, res_filters=8, recon_loss="l1", **common)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    disc_before = [w.copy() for w in model.discriminator.get_weights()]
    history = model.fit(x, batch_size=8, epochs=2, verbose=0, validation_data=(x,),
                        callbacks=[AdversarialWarmup(start_epoch=1)])
    for key in ("adversarial", "feature_matching", "adaptive_weight", "disc_loss", "val_disc_loss"):
        assert key in history.history, key
    # Warm-up: the terms are off in epoch 0, on in epoch 1.
    assert history.history["adaptive_weight"][0] == 0.0
    assert history.history["adaptive_weight"][1] > 0.0
    assert any(not np.allclose(a, b) for a, b in zip(disc_before, model.discriminator.get_weights()))

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_config()["adversarial_weight"] == 0.5
    np.testing.assert_allclose(loaded.reconstruct(x[:4]), model.reconstruct(x[:4]), atol=1e-5)
    # The loaded model's own optimizer holds its state for the autoencoder only (resume).
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)


def test_the_generator_optimizer_never_trains_the_discriminator():
    model = VAE(image_size=16, filters=(8, 16), latent_dim=4, adversarial_weight=1.0, disc_filters=(8,))
    theirs = {id(v) for v in model.discriminator.trainable_variables}
    assert theirs and not theirs & {id(v) for v in model.generator_variables()}


def test_models_without_the_option_save_as_before():
    config = VQVAE(image_size=16, filters=(8, 16), num_embeddings=8, embedding_dim=4).get_config()
    assert "adversarial_weight" not in config and "recon_loss" not in config
    assert not hasattr(VAE(image_size=16, filters=(8, 16), latent_dim=4), "discriminator")


def test_config_checks_the_new_keys():
    c = validate_config({"model_type": "vqvae", "recon_loss": "l1", "adversarial_weight": 0.1,
                         "adversarial_start_epoch": 5})
    assert build_model(c).recon_loss == "l1"
    with pytest.raises(UserError, match="recon_loss"):
        validate_config({"model_type": "vqvae", "recon_loss": "bernoulli"})
    with pytest.raises(UserError, match="adversarial_weight"):
        validate_config({"model_type": "vae", "adversarial_weight": -1})
    with pytest.raises(UserError, match="thesis"):
        build_model({"model_type": "vae", "loss_mode": "thesis", "adversarial_weight": 0.1})


def test_planted_the_adversarial_term_makes_a_decoder_sharper():
    """Same VAE, data, seed and steps; only the adversarial term differs."""
    train, test = discs(384, 0), discs(64, 1)

    def reconstruction_sharpness(weight):
        keras.utils.set_random_seed(0)
        model = VAE(image_size=32, filters=(16, 32), latent_dim=16, recon_loss="bernoulli",
                    adversarial_weight=weight, disc_filters=(16, 32))
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
        callbacks = [AdversarialWarmup(start_epoch=4)] if weight else []
        model.fit(train[..., None], batch_size=32, epochs=12, verbose=0, callbacks=callbacks)
        recon = model.reconstruct(test)[..., 0]
        return compute_sharpness(recon, test), float(np.mean((recon - test) ** 2))

    plain_sharpness, plain_mse = reconstruction_sharpness(0.0)
    sharp_sharpness, sharp_mse = reconstruction_sharpness(1.0)
    assert sharp_sharpness > 1.5 * plain_sharpness, (plain_sharpness, sharp_sharpness)
    # Sharper, not noise: the reconstruction stays close (the perception-distortion trade-off
    # costs some squared error: 0.022 -> 0.037 here; an image of noise or of blank field
    # would be ~0.1 away).
    assert sharp_mse < 2.5 * plain_mse and sharp_mse < 0.05, (plain_mse, sharp_mse)
