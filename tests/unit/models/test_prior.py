"""Tests for core/models/prior.py: causal masking, no blind spot, training, sampling, saving."""

import numpy as np
import pytest
import keras

from core.errors import UserError
from core.models import PRESET_NAMES, PixelCNNPrior, build_prior, get_preset
from core.models.prior import MaskedConv2D, causal_mask


def _random_prior(config, seed=0):
    """A prior with non-trivial random weights (biases too), so every dependency shows."""
    prior = PixelCNNPrior(**config)
    rng = np.random.default_rng(seed)
    prior.net.set_weights(
        [w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in prior.net.get_weights()]
    )
    return prior


def _logits(prior, grid):
    return np.asarray(prior(grid[None]))[0]


@pytest.mark.parametrize("position", [(0, 0), (0, 5), (3, 0), (4, 4), (7, 7)])
def test_logits_never_depend_on_current_or_later_positions(tiny_prior_config, position):
    prior = _random_prior(tiny_prior_config)
    rng = np.random.default_rng(1)
    grid = rng.integers(0, 16, (8, 8)).astype("int32")
    base = _logits(prior, grid)
    i, j = position
    changed_later = False
    for new_code in (grid[i, j] + 1) % 16, (grid[i, j] + 7) % 16:
        other = grid.copy()
        other[i, j] = new_code
        diff = np.abs(_logits(prior, other) - base).max(axis=-1).ravel()  # per position, raster order
        p = i * 8 + j
        np.testing.assert_array_equal(diff[: p + 1], 0.0)  # earlier positions and p itself
        changed_later |= bool((diff[p + 1 :] > 0).any())
    assert changed_later or position == (7, 7)


def test_gradient_of_a_position_ignores_the_future(tiny_prior_config):
    import tensorflow as tf

    prior = _random_prior(tiny_prior_config)
    rng = np.random.default_rng(2)
    p = 3 * 8 + 4  # position (3, 4)
    flat = np.concatenate([rng.integers(0, 8, p), rng.integers(8, 16, 64 - p)])  # past 0-7, rest 8-15
    grid = flat.reshape(1, 8, 8).astype("int32")
    table = prior.net.get_layer("embed").embeddings
    with tf.GradientTape() as tape:
        logits = prior(grid)
        target = tf.reduce_sum(logits[0, 3, 4] * tf.range(16, dtype="float32"))
    grad = np.abs(np.asarray(tf.convert_to_tensor(tape.gradient(target, table.value)))).sum(axis=1)
    assert (grad[8:] == 0).all()  # codes only at the position itself or later
    assert (grad[:8] > 0).any()


@pytest.mark.parametrize("source", [(5, 3), (5, 1), (4, 7), (4, 1), (1, 4), (2, 7)])
def test_no_blind_spot(tiny_prior_config, source):
    """Earlier positions up and to the right of (5, 4) reach it (a plain PixelCNN misses them)."""
    prior = _random_prior(tiny_prior_config)
    grid = np.random.default_rng(3).integers(0, 16, (8, 8)).astype("int32")
    other = grid.copy()
    other[source] = (grid[source] + 5) % 16
    assert np.abs(_logits(prior, other)[5, 4] - _logits(prior, grid)[5, 4]).max() > 0


def test_causal_masks():
    np.testing.assert_array_equal(causal_mask((3, 3), "A"), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask((3, 3), "B"), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask((1, 5), "A"), [[1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(causal_mask((3, 3), "V"), [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


def test_mask_survives_optimizer_steps():
    """The mask multiplies the kernel in call(): training cannot open masked taps."""
    layer = MaskedConv2D(2, 3, "A")
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 1)).astype("float32")
    model = keras.Sequential([keras.Input((5, 5, 1)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=False)
    model.fit(x, np.ones((4, 5, 5, 2), "float32"), epochs=2, verbose=0)
    y = np.asarray(model(x))
    x2 = x.copy()
    x2[:, 2, 2] += 10.0  # the centre pixel and everything after it must not matter at (2, 2)
    x2[:, 3:] += 10.0
    x2[:, 2, 3:] += 10.0
    np.testing.assert_allclose(np.asarray(model(x2))[:, 2, 2], y[:, 2, 2], atol=1e-5)


def _structured_grids(n, seed=0):
    """Code grids with structure a prior can learn: a constant code per row pair."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4, (n, 4)).repeat(2, axis=1)
    return np.repeat(rows[:, :, None], 8, axis=2).astype("int32")


def test_training_decreases_loss(tiny_prior_config):
    prior = PixelCNNPrior(**tiny_prior_config)
    prior.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    grids = _structured_grids(64)
    history = prior.fit(grids, batch_size=16, epochs=2, verbose=0, validation_data=(grids[:16],))
    assert set(history.history) == {"loss", "val_loss"}
    assert history.history["loss"][0] == pytest.approx(np.log(16), rel=0.2)  # nats per code
    assert history.history["loss"][1] < history.history["loss"][0]
    assert prior.log_likelihood(grids) == pytest.approx(history.history["val_loss"][-1], rel=0.05)


def test_sample_shape_range_and_seed(tiny_prior_config):
    prior = _random_prior(tiny_prior_config)
    grids = prior.sample(3, seed=0)
    assert grids.shape == (3, 8, 8) and grids.dtype == np.int32
    assert grids.min() >= 0 and grids.max() < 16
    np.testing.assert_array_equal(grids, prior.sample(3, seed=0))
    assert not np.array_equal(grids, prior.sample(3, seed=1))
    assert prior.sample(0).shape == (0, 8, 8)


def test_greedy_sample_matches_full_network(tiny_prior_config):
    """The fast sampler (vertical stack once per row) equals step-by-step full-network decoding."""
    prior = _random_prior(tiny_prior_config)
    fast = prior.sample(2, seed=5, temperature=0.0)
    np.testing.assert_array_equal(fast, prior.sample(2, seed=9, temperature=0.0))
    slow = np.zeros((2, 8, 8), "int32")
    for i in range(8):
        for j in range(8):
            slow[:, i, j] = np.argmax(np.asarray(prior(slow))[:, i, j], axis=-1)
    np.testing.assert_array_equal(fast, slow)


def test_save_load_round_trip(tmp_path, tiny_prior_config):
    prior = _random_prior(tiny_prior_config)
    prior.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    prior.fit(_structured_grids(16), batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "prior.keras"
    prior.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, PixelCNNPrior)
    grids = _structured_grids(4, seed=1)
    np.testing.assert_array_equal(np.asarray(prior(grids)), np.asarray(loaded(grids)))
    np.testing.assert_array_equal(prior.sample(2, seed=1), loaded.sample(2, seed=1))


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_preset_priors_build(preset):
    config = get_preset("vqvae", preset)
    prior = build_prior(config)
    g = config["image_size"] // 2 ** len(config["filters"])
    assert prior.grid_size == g and prior.num_embeddings == config["num_embeddings"]
    logits = prior(np.zeros((1, g, g), "int32"))
    assert tuple(logits.shape) == (1, g, g, config["num_embeddings"])


@pytest.mark.parametrize(
    "kwargs, name",
    [({"kernel_size": 4}, "prior_kernel_size"), ({"n_layers": 0}, "prior_layers"), ({"num_embeddings": 1}, "num_embeddings")],
)
def test_constructor_rejects_bad_arguments(tiny_prior_config, kwargs, name):
    with pytest.raises(UserError, match=name):
        PixelCNNPrior(**{**tiny_prior_config, **kwargs})


def test_mixed_precision(mixed_precision, tiny_prior_config):
    prior = PixelCNNPrior(**tiny_prior_config)
    prior.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = prior.fit(_structured_grids(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert prior(np.zeros((1, 8, 8), "int32")).dtype == "float32"
    assert prior.sample(1).shape == (1, 8, 8)


@pytest.mark.parametrize("kernel_size", [2, (3, 4)])
def test_masked_conv_even_kernel_is_a_user_error(kernel_size):
    with pytest.raises(UserError, match="kernel_size"):
        MaskedConv2D(2, kernel_size, "B")
