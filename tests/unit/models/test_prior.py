"""Tests for core/models/prior.py: causal masking, no blind spot, training, sampling, saving,
and the conditional prior (a conditioning vector projected into every gate)."""

from pathlib import Path

import numpy as np
import pytest
import keras

from core.errors import UserError
from core.models import PRESET_NAMES, PixelCNNPrior, build_prior, get_preset
from core.models.prior import MaskedConv2D, causal_mask, raster_reach


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


@pytest.mark.parametrize("condition_dim", [0, 3])
def test_greedy_sample_matches_full_network(tiny_prior_config, condition_dim):
    """The fast sampler (vertical stack once per row) equals step-by-step full-network decoding,
    for a conditional prior too (each of the two grids with its own condition)."""
    prior = _random_prior({**tiny_prior_config, "condition_dim": condition_dim})
    c = np.array([[0.3, 1.0, 0.1], [0.8, 0.0, 0.9]], "float32")[:, :condition_dim] if condition_dim else None
    fast = prior.sample(2, seed=5, temperature=0.0, condition=c)
    np.testing.assert_array_equal(fast, prior.sample(2, seed=9, temperature=0.0, condition=c))
    slow = np.zeros((2, 8, 8), "int32")
    for i in range(8):
        for j in range(8):
            logits = prior(slow if c is None else (slow, c))
            slow[:, i, j] = np.argmax(np.asarray(logits)[:, i, j], axis=-1)
    np.testing.assert_array_equal(fast, slow)
    if condition_dim:  # the two conditions lead to different grids (the condition is used)
        assert not np.array_equal(fast[0], fast[1])


@pytest.mark.parametrize("position", [(0, 0), (3, 4), (7, 6)])
def test_conditional_logits_stay_causal_and_see_the_condition(tiny_prior_config, position):
    prior = _random_prior({**tiny_prior_config, "condition_dim": 3})
    grid = np.random.default_rng(4).integers(0, 16, (1, 8, 8)).astype("int32")
    c = np.array([[0.5, 1.0, 0.25]], "float32")
    base = np.asarray(prior((grid, c)))[0]
    other = grid.copy()
    other[(0, *position)] = (grid[(0, *position)] + 3) % 16
    diff = np.abs(np.asarray(prior((other, c)))[0] - base).max(axis=-1).ravel()
    p = position[0] * 8 + position[1]
    np.testing.assert_array_equal(diff[: p + 1], 0.0)
    # the condition reaches every position, the first one included
    moved = np.abs(np.asarray(prior((grid, c + np.float32(0.2))))[0] - base).max(axis=-1)
    assert (moved > 0).all()


def test_conditional_prior_round_trip_and_condition_checks(tmp_path, tiny_prior_config):
    prior = _random_prior({**tiny_prior_config, "condition_dim": 3})
    assert prior.get_config()["condition_dim"] == 3
    grids = _structured_grids(16)
    c = np.random.default_rng(0).uniform(0, 1, (16, 3)).astype("float32")
    prior.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = prior.fit(grids, c, batch_size=8, epochs=1, verbose=0, validation_data=(grids[:8], c[:8]))
    assert set(history.history) == {"loss", "val_loss"}
    assert prior.log_likelihood(grids[:8], condition=c[:8]) == pytest.approx(history.history["val_loss"][-1], rel=1e-4)
    path = tmp_path / "cprior.keras"
    prior.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, PixelCNNPrior) and loaded.condition_dim == 3
    np.testing.assert_array_equal(np.asarray(prior((grids[:4], c[:4]))), np.asarray(loaded((grids[:4], c[:4]))))
    np.testing.assert_array_equal(prior.sample(2, seed=1, condition=c[:2]), loaded.sample(2, seed=1, condition=c[:2]))
    with pytest.raises(UserError, match="conditional"):
        prior.sample(2)
    with pytest.raises(UserError, match=r"\(2, 3\)"):
        prior.sample(2, condition=c[:3])
    with pytest.raises(UserError, match="finite"):
        prior.sample(1, condition=np.full((1, 3), np.nan, "float32"))
    with pytest.raises(UserError, match="not conditional"):
        PixelCNNPrior(**tiny_prior_config).sample(2, condition=c[:2])
    with pytest.raises(UserError, match="condition_dim"):
        PixelCNNPrior(**tiny_prior_config, condition_dim=-1)


def test_a_prior_saved_before_conditioning_still_loads():
    """``data/prior_v1.keras`` was saved by the code of commit 7cab3ac (before conditional priors,
    see data/README.md); it must load with safe_mode and compute exactly what it did then."""
    data = Path(__file__).parent / "data"
    prior = keras.saving.load_model(data / "prior_v1.keras", safe_mode=True)
    expected = np.load(data / "prior_v1.npz")
    assert isinstance(prior, PixelCNNPrior) and prior.condition_dim == 0
    assert "condition_dim" not in prior.get_config()  # saved again, it reads as it did
    np.testing.assert_allclose(np.asarray(prior(expected["grid"])), expected["logits"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(prior.sample(3, seed=1), expected["codes"])


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


def _positions_unseen_by_last(prior, seed=0):
    """Earlier positions whose code does not change the logits of the grid's last position."""
    rng = np.random.default_rng(seed)
    for w in prior.net.weights:  # non-trivial random weights, biases too
        w.assign(w.numpy() + rng.normal(0, 0.1, w.shape).astype(w.dtype))
    g, k = prior.grid_size, prior.num_embeddings
    grid = rng.integers(0, k, (g, g)).astype("int32")
    batch = np.repeat(grid[None], g * g - 1, axis=0)
    for p in range(g * g - 1):  # one earlier position changed per grid
        batch[p, p // g, p % g] = (grid[p // g, p % g] + 1 + p % (k - 1)) % k
    base = np.asarray(prior(grid[None]))[0, -1, -1]
    diff = np.abs(np.asarray(prior(batch))[:, -1, -1] - base).max(axis=-1)
    return [divmod(p, g) for p in np.flatnonzero(diff == 0)]


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_preset_prior_sees_the_whole_grid(preset):
    """Issue 10: the last code of a preset's grid depends on every earlier one, the top rows
    included (a short vertical reach left the lower rows blind to the top and they drifted)."""
    config = {**get_preset("vqvae", preset), "prior_filters": 8}  # the reach does not depend on width
    prior = build_prior(config)
    assert raster_reach(config["prior_layers"], config["prior_kernel_size"]) >= prior.grid_size - 1
    assert _positions_unseen_by_last(prior) == []


def test_old_demo_prior_was_blind_to_the_top_rows():
    """The check above can fail: the old demo prior (8 layers, 3x3) on its 16x16 grid."""
    config = {**get_preset("vqvae", "demo"), "prior_filters": 8, "prior_layers": 8, "prior_kernel_size": 3}
    prior = build_prior(config)
    assert prior.grid_size == 16 and raster_reach(8, 3) == 9
    unseen = _positions_unseen_by_last(prior)
    assert {(r, c) for r in range(6) for c in range(16)} <= set(unseen)  # rows 0-5: over 9 rows up
    assert all(r < 6 or c < 15 - 8 for r, c in unseen)  # nearer: only beyond the cone's sides
