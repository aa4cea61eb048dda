"""Fixtures for the training-engine tests: tiny model configs and runs trained once per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from helpers import TINY_VAE, TINY_VQVAE

@pytest.fixture
def tiny_vae():
    """Overrides of the ``demo`` VAE preset for a tiny, fast network (a fresh copy)."""
    return dict(TINY_VAE)


@pytest.fixture
def tiny_vqvae():
    """Overrides of the ``demo`` VQ-VAE preset for a tiny network and prior (a fresh copy)."""
    return dict(TINY_VQVAE)


@pytest.fixture(scope="session")
def trained_vae(tmp_path_factory, tiny_dataset):
    """A finished 2-epoch VAE run dir on the 32-px tiny dataset."""
    from core.training import runs, trainer

    run_dir = runs.prepare_run(tmp_path_factory.mktemp("runs") / "vae-tiny", tiny_dataset, "vae", "demo", TINY_VAE)
    trainer.train_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def trained_vqvae(tmp_path_factory, tiny_dataset):
    """A finished VQ-VAE run dir (2 epochs) with its prior (2 epochs)."""
    from core.training import runs, trainer

    run_dir = runs.prepare_run(tmp_path_factory.mktemp("runs") / "vq-tiny", tiny_dataset, "vqvae", "demo",
                               TINY_VQVAE)
    trainer.train_run(run_dir)
    return run_dir
