"""Device setup on this machine (CPU, or a GPU when present)."""

from __future__ import annotations

import keras
import pytest

from core.training.device import list_gpus, setup_device


@pytest.fixture
def restore_policy():
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


def test_setup_describes_the_device(restore_policy):
    setup = setup_device(mixed_precision=False)
    assert setup.mixed_precision is False
    if list_gpus():
        assert setup.description.startswith(("GPU", "2 GPUs", "3 GPUs", "4 GPUs")) or "GPUs" in setup.description
    else:
        assert setup.description == "CPU" and setup.n_gpus == 0
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_precision_needs_a_gpu(restore_policy):
    setup = setup_device(mixed_precision=True)
    if list_gpus():
        assert setup.mixed_precision and keras.config.dtype_policy().name == "mixed_float16"
    else:
        assert not setup.mixed_precision and "needs a GPU" in setup.notes[0]
        assert keras.config.dtype_policy().name == "float32"
