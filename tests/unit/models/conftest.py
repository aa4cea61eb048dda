"""Fixtures for the model tests: tiny synthetic images and tiny model configs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import keras


def make_blobs(n, size, seed=0):
    """``(n, size, size, 1)`` float32 in [0, 1]: one or two soft-edged ellipses per image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    images = np.zeros((n, size, size), "float32")
    for k in range(n):
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.uniform(0.3, 0.7, 2)
            ry, rx = rng.uniform(0.12, 0.3, 2)
            r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            images[k] += rng.uniform(0.4, 0.9) / (1.0 + np.exp((r - 1.0) * 6.0))
    return np.clip(images, 0.0, 1.0)[..., None]


@pytest.fixture(scope="session")
def blobs32():
    """64 images ``(64, 32, 32, 1)``."""
    return make_blobs(64, 32, seed=0)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def mixed_precision():
    """Run a test under the ``mixed_float16`` policy and restore the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture
def blob_maker():
    """The :func:`make_blobs` factory."""
    return make_blobs


@pytest.fixture
def tiny_vae_config():
    """A VAE small enough to train in seconds on 32x32 images."""
    return {"image_size": 32, "filters": [8, 16], "latent_dim": 8, "seed": 0}


@pytest.fixture
def tiny_vqvae_config():
    """A VQ-VAE on 32x32 images with an 8x8 grid of 16 codes."""
    return {
        "image_size": 32,
        "filters": [8, 16],
        "n_res_blocks": 1,
        "res_filters": 16,
        "num_embeddings": 16,
        "embedding_dim": 8,
        "seed": 0,
    }


@pytest.fixture
def tiny_prior_config():
    """A PixelCNN prior for the tiny VQ-VAE's 8x8 grid of 16 codes."""
    return {"num_embeddings": 16, "grid_size": 8, "filters": 16, "n_layers": 3}
