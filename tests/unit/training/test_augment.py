"""Training-time augmentation (core.training.augment) and its place in the input pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.training.augment import AUGMENT_DEFAULTS, augment_batch, check_augment

OFF = {key: 0.0 for key in AUGMENT_DEFAULTS}


def heads(n=8, size=32, seed=0):
    """Left-right asymmetric blobs on a black background, values in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size, 1), "float32")
    for i in range(n):
        cy, cx = rng.uniform(10, 22, 2)
        out[i, ..., 0] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0) * (0.5 + 0.5 * xx / size)
    return out


def test_check_augment_reads_switches_and_strengths():
    assert check_augment(None) is None and check_augment(False) is None
    assert check_augment(True) == AUGMENT_DEFAULTS
    assert check_augment({"rotate_deg": 3})["rotate_deg"] == 3
    with pytest.raises(UserError, match="unknown augmentation 'shear'"):
        check_augment({"shear": 1})
    with pytest.raises(UserError, match="probability"):
        check_augment({"flip": 2})
    with pytest.raises(UserError, match=">= 0"):
        check_augment({"gain": -0.1})


def test_all_strengths_zero_is_the_identity():
    x = heads()
    np.testing.assert_allclose(augment_batch(x, OFF).numpy(), x, atol=1e-5)


def test_flip_mirrors_left_and_right_only():
    x = heads()
    flipped = augment_batch(x, {**OFF, "flip": 1.0}).numpy()
    np.testing.assert_allclose(flipped, x[:, :, ::-1], atol=1e-6)  # the second image axis is left-right


def test_geometric_and_intensity_jitter_stay_plausible():
    x = heads(32)
    y = augment_batch(x, AUGMENT_DEFAULTS, seed=3).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert np.abs(y - x).mean() > 1e-3  # it changed them...
    # ...but small rotations/scalings keep each image's mass near where it was.
    mass = lambda a: (a[..., 0].sum(axis=(1, 2)))  # noqa: E731
    np.testing.assert_allclose(mass(y), mass(x), rtol=0.5)


def test_image_dataset_augments_training_batches_anew_each_epoch():
    import keras

    from core.training.trainer import image_dataset

    # Under a global seed (the trainer sets one), plain tf.random ops in a dataset map repeat
    # their draws every time the dataset is iterated: every epoch would see the same copies.
    keras.utils.set_random_seed(0)
    x = heads(16)[..., 0]
    ds = image_dataset(x, 16, shuffle=False, augment=dict(AUGMENT_DEFAULTS))
    first, second = (next(iter(ds)).numpy() for _ in range(2))
    assert first.shape == (16, 32, 32, 1)
    assert not np.allclose(first, second)
    plain = next(iter(image_dataset(x, 16, shuffle=False))).numpy()
    np.testing.assert_array_equal(plain[..., 0], x)
