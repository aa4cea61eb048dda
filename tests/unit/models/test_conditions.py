"""Tests for core/models/conditions.py and the conditional VAE (core/models/vae.py)."""

import numpy as np
import pytest
import keras

from core.errors import UserError
from core.models import build_vae, validate_config
from core.models.conditions import condition_array, dataset_conditions, decode_conditions

RANGE = (160, 190)


def test_condition_vector_and_inverse():
    c = condition_array({"age": 75, "sex": "f", "slice": 189}, 3, RANGE)
    assert c.shape == (3, 3) and c.dtype == np.float32
    np.testing.assert_allclose(c[0], [0.75, 1.0, 1.0])
    back = decode_conditions(condition_array([{"age": 30, "sex": "M", "slice": 160},
                                              {"age": 60.5, "sex": "F", "slice": 175}], 2, RANGE), RANGE)
    np.testing.assert_allclose(back["age"], [30, 60.5], rtol=1e-6)
    np.testing.assert_allclose(back["slice"], [160, 175], rtol=1e-6)
    np.testing.assert_array_equal(back["female"], [0, 1])


@pytest.mark.parametrize(
    "condition, match",
    [({"age": 75, "sex": "F"}, "keys"), ({"age": 75, "sex": "F", "slice": 170, "site": "HH"}, "keys"),
     ({"age": -1, "sex": "F", "slice": 170}, "age"), ({"age": "old", "sex": "F", "slice": 170}, "age"),
     ({"age": 75, "sex": "X", "slice": 170}, "sex"), ({"age": 75, "sex": "F", "slice": 190}, "slice"),
     ([{"age": 75, "sex": "F", "slice": 170}], "conditions"), (np.zeros((2, 2)), "array"), ("F", "condition")],
)
def test_bad_conditions_are_user_errors(condition, match):
    with pytest.raises(UserError, match=match):
        condition_array(condition, 2, RANGE)


def test_dataset_conditions_follow_the_manifest(tmp_path):
    from core.data.dataset import load_manifest
    from helpers import make_tiny_dataset

    manifest = load_manifest(make_tiny_dataset(tmp_path / "ds", size=32))
    with pytest.raises(UserError, match="age and sex"):  # the tiny dataset has no demographics
        dataset_conditions(manifest, "train")
    manifest["subjects"] = {s: {"age": 40.0 + i, "sex": "MF"[i % 2]}
                            for i, s in enumerate(sorted({s for s, _ in manifest["splits"]["train"]["slices"]}))}
    c = dataset_conditions(manifest, "train")
    assert c.shape == (48, 3)
    first = manifest["splits"]["train"]["slices"][0]
    np.testing.assert_allclose(c[0], [manifest["subjects"][first[0]]["age"] / 100, 0.0, first[1] / 7])


def test_conditional_vae_obeys_a_planted_condition(tmp_path):
    """Train on images whose brightness is the 'slice' condition: samples must follow the request."""
    rng = np.random.default_rng(0)
    n, size = 96, 16
    slices = rng.integers(160, 190, n)
    conds = condition_array([{"age": 50, "sex": "F", "slice": int(s)} for s in slices], n, RANGE)
    images = np.broadcast_to(((slices - 160) / 29 * 0.8 + 0.1)[:, None, None, None], (n, size, size, 1))
    images = (images + rng.normal(0, 0.01, images.shape)).clip(0, 1).astype("float32")
    config = {"image_size": size, "filters": [8, 16], "latent_dim": 4, "conditional": True,
              "slice_range": list(RANGE), "recon_loss": "bernoulli", "seed": 0}
    keras.utils.set_random_seed(0)
    vae = build_vae(validate_config({"model_type": "vae", **config}))
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    vae.fit(images, conds, batch_size=16, epochs=40, verbose=0)
    low = vae.sample(8, seed=0, condition={"age": 50, "sex": "F", "slice": 162}).mean()
    high = vae.sample(8, seed=0, condition={"age": 50, "sex": "F", "slice": 187}).mean()
    assert high - low > 0.4  # planted gap: 0.8 * 25 / 29 = 0.69

    path = tmp_path / "cvae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.conditional and loaded.slice_range == RANGE
    request = {"age": 70, "sex": "M", "slice": 175}
    np.testing.assert_array_equal(loaded.sample(3, seed=2, condition=request), vae.sample(3, seed=2, condition=request))
    # Without a condition it draws a seeded population spread (CLI sample, reader study).
    unasked = vae.sample(6, seed=3)
    assert unasked.shape == (6, size, size, 1)
    np.testing.assert_array_equal(unasked, vae.sample(6, seed=3))
    with pytest.raises(UserError, match="slice"):
        vae.sample(2, condition={"age": 70, "sex": "M", "slice": 10})


def test_unconditional_vae_refuses_a_condition_and_keeps_its_config():
    vae = build_vae({"image_size": 16, "filters": [8, 16], "latent_dim": 4})
    assert "conditional" not in vae.get_config()  # old .keras files and new ones read alike
    with pytest.raises(UserError, match="not conditional"):
        vae.sample(2, condition={"age": 70, "sex": "M", "slice": 175})


@pytest.mark.parametrize(
    "override, match",
    [({"conditional": "yes"}, "conditional"), ({"conditional": True, "slice_range": [5]}, "slice_range"),
     ({"conditional": True, "slice_range": [5, 6]}, "slice_range")],
)
def test_invalid_conditional_config(override, match):
    with pytest.raises(UserError, match=match):
        validate_config({"model_type": "vae", **override})


def test_conditional_vae_needs_its_slice_range():
    with pytest.raises(UserError, match="slice_range"):
        build_vae({"image_size": 16, "filters": [8, 16], "latent_dim": 4, "conditional": True})


# ---------------------------------------------------------------- conditional PixelCNN / VQ-VAE
def _planted_codes(slices):
    """8x8 code grids filled with one code set by the slice: 2, 5, 8 or 11 for the four quarters
    of the range (the planted effect a conditional prior must learn; age and sex are noise)."""
    level = np.minimum((np.asarray(slices) - RANGE[0]) * 4 // (RANGE[1] - RANGE[0]), 3)
    return np.broadcast_to((2 + 3 * level)[:, None, None], (len(level), 8, 8)).astype("int32")


def test_conditional_prior_obeys_a_planted_condition():
    """Code grids whose codes are the 'slice' condition: samples must follow the request."""
    from core.models import PixelCNNPrior
    from core.evaluation.obedience import agreement

    rng = np.random.default_rng(0)
    n = 128
    slices = rng.integers(*RANGE, n)
    requests = [{"age": float(a), "sex": "FM"[i % 2], "slice": int(s)}
                for i, (a, s) in enumerate(zip(rng.uniform(20, 86, n), slices))]
    conds = condition_array(requests, n, RANGE)
    keras.utils.set_random_seed(0)
    prior = PixelCNNPrior(num_embeddings=16, grid_size=8, filters=16, n_layers=3, condition_dim=3)
    prior.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    # measured: all requested codes right (greedy and T = 1) from epoch 20 on; half at epoch 5
    prior.fit(_planted_codes(slices), conds, batch_size=16, epochs=25, verbose=0)

    asked = np.array([163, 170, 178, 186] * 4)  # one slice in each quarter, 4 grids each
    c = condition_array([{"age": 50, "sex": "F", "slice": int(s)} for s in asked], len(asked), RANGE)
    for temperature in (0.0, 1.0):
        grids = prior.sample(len(asked), seed=0, temperature=temperature, condition=c)
        share = float((grids == _planted_codes(asked)).mean())
        print(f"planted prior, T={temperature}: share of codes as asked {share:.3f}")
        # an unconditional prior would match one request in four (0.25)
        assert share > (0.95 if temperature == 0 else 0.8)
    # the obedience figure of the evaluation (MAE of the slice read off the code) on this planted case
    read = RANGE[0] + (np.median(grids.reshape(len(asked), -1), axis=1) - 2) / 3 * 7.5 + 3.75
    assert agreement(asked, read)["mae"] < 5.0


def _tiny_cvqvae(conditional=True):
    from core.models import build_prior, build_vqvae

    config = validate_config({"model_type": "vqvae", "image_size": 32, "filters": [8, 16], "n_res_blocks": 1,
                              "res_filters": 16, "num_embeddings": 16, "embedding_dim": 8, "prior_filters": 16,
                              "prior_layers": 2, "seed": 0, "conditional": conditional,
                              **({"slice_range": list(RANGE)} if conditional else {})})
    vq = build_vqvae(config)
    prior = build_prior(config)
    rng = np.random.default_rng(0)
    prior.net.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in prior.net.get_weights()])
    return vq.attach_prior(prior), prior


def test_conditional_vqvae_samples_on_request_and_round_trips(tmp_path):
    vq, prior = _tiny_cvqvae()
    assert vq.conditional and vq.slice_range == RANGE and vq.prior.condition_dim == 3
    request = {"age": 75, "sex": "F", "slice": 170}
    codes = vq.sample_codes(4, seed=1, condition=request)
    np.testing.assert_array_equal(codes, prior.sample(4, seed=1, condition=condition_array(request, 4, RANGE)))
    listed = [request, {"age": 30, "sex": "M", "slice": 189}]
    np.testing.assert_array_equal(vq.sample_codes(2, seed=1, condition=listed),
                                  vq.sample_codes(2, seed=1, condition=condition_array(listed, 2, RANGE)))
    images = vq.sample(4, seed=1, condition=request)
    assert images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(images, vq.decode_indices(codes))
    # without a condition: a seeded population of requests (CLI sample, a reader study, evaluation)
    np.testing.assert_array_equal(vq.sample(3, seed=2), vq.sample(3, seed=2))
    with pytest.raises(UserError, match="slice"):
        vq.sample(2, condition={"age": 70, "sex": "M", "slice": 10})
    # encoder and decoder are not conditioned: a condition is accepted and changes nothing
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    c = condition_array(listed, 2, RANGE)
    np.testing.assert_array_equal(vq.reconstruct(x, condition=c), vq.reconstruct(x))
    np.testing.assert_array_equal(vq.encode(x, condition=c), vq.encode(x))

    path = tmp_path / "cvq.keras"
    vq.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.conditional and loaded.slice_range == RANGE and loaded.prior.condition_dim == 3
    np.testing.assert_array_equal(loaded.sample(3, seed=4, condition=request), vq.sample(3, seed=4, condition=request))


def test_unconditional_vqvae_keeps_its_config_and_refuses_conditions():
    vq, _ = _tiny_cvqvae(conditional=False)
    config = vq.get_config()
    assert "conditional" not in config and "condition_dim" not in config["prior_config"]
    request = {"age": 70, "sex": "M", "slice": 175}
    with pytest.raises(UserError, match="not conditional"):
        vq.sample(2, condition=request)
    with pytest.raises(UserError, match="not conditional"):
        vq.reconstruct(np.zeros((1, 32, 32, 1), "float32"), condition=np.zeros((1, 3), "float32"))
    # a conditional prior does not fit an unconditional VQ-VAE, nor the other way round
    cvq, cprior = _tiny_cvqvae()
    with pytest.raises(UserError, match="conditional"):
        vq.attach_prior(cprior)
    with pytest.raises(UserError, match="conditional"):
        cvq.attach_prior(vq.prior)


@pytest.mark.parametrize(
    "override, match",
    [({"conditional": "yes"}, "conditional"), ({"conditional": True, "slice_range": [5]}, "slice_range"),
     ({"conditional": True, "slice_range": [5, 6]}, "slice_range")],
)
def test_invalid_conditional_vqvae_config(override, match):
    with pytest.raises(UserError, match=match):
        validate_config({"model_type": "vqvae", **override})


def test_conditional_vqvae_needs_its_slice_range():
    from core.models import build_vqvae

    with pytest.raises(UserError, match="slice_range"):
        build_vqvae({"image_size": 32, "filters": [8, 16], "conditional": True})
