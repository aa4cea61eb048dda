"""MS-SSIM diversity: the scale setting, known pairs, and collapse scores higher than variety."""

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.diversity import compute_ms_ssim, ms_ssim_setting, pairwise_ms_ssim


@pytest.mark.parametrize("size, scales", [(11, 1), (32, 2), (64, 3), (128, 4), (161, 4), (176, 5), (256, 5)])
def test_scales_fit_the_11px_filter(size, scales):
    setting = ms_ssim_setting(size)
    assert setting["scales"] == scales
    assert size // 2 ** (scales - 1) >= 11
    assert sum(setting["power_factors"]) == pytest.approx(1.0, abs=1e-5)
    assert setting["renormalised"] is (scales < 5)


def test_64px_power_factors_are_the_first_three_renormalised():
    first = np.array([0.0448, 0.2856, 0.3001])
    np.testing.assert_allclose(ms_ssim_setting(64)["power_factors"], first / first.sum(), atol=1e-6)


def test_identical_is_one_and_shifted_is_lower(real_test):
    x = real_test[:8]
    np.testing.assert_allclose(compute_ms_ssim(x, x), 1.0, atol=1e-4)
    shifted = np.roll(x, 3, axis=2)
    assert compute_ms_ssim(x, shifted).mean() < 0.95


def test_collapse_scores_far_above_real_variety(real_test):
    real = pairwise_ms_ssim(real_test, n_pairs=100, seed=0)
    collapsed = pairwise_ms_ssim(np.repeat(real_test[:1], 20, axis=0), n_pairs=100, seed=0)
    assert collapsed["mean"] == pytest.approx(1.0, abs=1e-4)
    assert real["mean"] < collapsed["mean"] - 0.05
    assert real["setting"]["scales"] == 2 and real["n_pairs"] == 100


def test_groups_exclude_same_subject_pairs():
    images = np.stack([np.full((16, 16), v, np.float32) for v in (0.2, 0.2, 0.8, 0.8)])
    images += np.random.default_rng(0).normal(0, 0.01, images.shape).astype(np.float32)
    mixed = pairwise_ms_ssim(images, n_pairs=50, groups=["a", "a", "b", "b"])
    assert mixed["n_pairs"] > 0


def test_bad_inputs():
    with pytest.raises(UserError, match="at least 11 px"):
        ms_ssim_setting(8)
    with pytest.raises(UserError, match="at least 2 images"):
        pairwise_ms_ssim(np.zeros((1, 32, 32)))
    with pytest.raises(UserError, match="square"):
        pairwise_ms_ssim(np.zeros((3, 32, 16)))


def test_matches_tf_image_ssim_multiscale(real_test):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = np.stack([np.kron(real_test[i], np.ones((2, 2))) for i in range(6)]).astype(np.float32)  # 64 px
    y = np.clip(x[::-1] + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    setting = ms_ssim_setting(64)
    reference = tf.image.ssim_multiscale(x[..., None], y[..., None], max_val=1.0,
                                         power_factors=setting["power_factors"], filter_size=11)
    np.testing.assert_allclose(compute_ms_ssim(x, y, setting), np.asarray(reference), atol=1e-4)
