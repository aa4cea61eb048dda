"""Metrics against NumPy references and on real slices (blur lowers them as it should)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from core.errors import UserError
from core.evaluation import compute_psnr, compute_sharpness, compute_ssim, laplacian_variance


@pytest.fixture(scope="module")
def real_slices(ixi_sample_dir):
    from core.data.slices import SliceSpec, extract_slices
    from core.data.volumes import load_volume, scan_source

    volume = load_volume(scan_source(ixi_sample_dir)[0])
    return extract_slices(volume, SliceSpec("axial", 50, 58, 64))


def test_psnr_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.random((3, 16, 16)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    mse = ((x - y) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(compute_psnr(x, y), 10 * np.log10(1 / mse), rtol=1e-4)


def test_laplacian_variance_matches_scipy():
    from scipy.ndimage import laplace

    x = np.random.default_rng(1).random((2, 20, 20)).astype(np.float32)
    reference = np.array([laplace(im)[1:-1, 1:-1].var() for im in x])
    np.testing.assert_allclose(laplacian_variance(x), reference, rtol=1e-4)


def test_blur_lowers_ssim_psnr_and_sharpness_on_real_slices(real_slices):
    blurred = np.stack([gaussian_filter(s, 1.5) for s in real_slices])
    assert compute_ssim(real_slices, real_slices).min() == pytest.approx(1.0)
    assert compute_ssim(real_slices, blurred).mean() < 0.95
    assert compute_psnr(real_slices, blurred).mean() < 40
    assert compute_sharpness(blurred, real_slices) < 0.3
    assert compute_sharpness(real_slices, real_slices) == pytest.approx(1.0)


def test_shape_mismatch_and_constant_reference_are_user_errors():
    with pytest.raises(UserError, match="differ in shape"):
        compute_ssim(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(UserError, match="constant"):
        compute_sharpness(np.ones((2, 8, 8)), np.ones((2, 8, 8)))
    with pytest.raises(UserError, match="shape"):
        compute_psnr(np.zeros(5), np.zeros(5))
