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
