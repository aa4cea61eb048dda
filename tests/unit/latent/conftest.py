"""Tiny trained runs for the latent tests (same tiny networks as the training tests)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from helpers import TINY_VQVAE


def _train(base, dataset, model_type, overrides, name):
    from core.training import runs, trainer

    run_dir = runs.prepare_run(base / name, dataset, model_type, "demo", overrides)
    trainer.train_run(run_dir)
    return run_dir


# The session's shared tiny runs (tests/conftest.py), not trainings of their own: the latent
# tests only read them (a test that changes a run works on a copy).
@pytest.fixture(scope="session")
def vae_run(tiny_vae_run):
    """A finished 2-epoch VAE run on the 32-px tiny dataset; read-only."""
    return tiny_vae_run


@pytest.fixture(scope="session")
def vq_run(tiny_vqvae_run):
    """A finished VQ-VAE run with its trained prior; read-only."""
    return tiny_vqvae_run


@pytest.fixture(scope="session")
def vq_run_no_prior(tmp_path_factory, tiny_dataset):
    """A VQ-VAE run whose prior was never trained (``prior_epochs=0``)."""
    overrides = {**TINY_VQVAE, "epochs": 1, "prior_epochs": 0}
    return _train(tmp_path_factory.mktemp("latent_runs"), tiny_dataset, "vqvae", overrides, "vq-noprior")


@pytest.fixture(scope="session")
def vae_explorer(vae_run):
    from core.latent import Explorer, encode_run
    from core.training.checkpoints import load_run_model

    model = load_run_model(vae_run)
    return Explorer(model, encode_run(vae_run, model))


@pytest.fixture(scope="session")
def vq_explorer(vq_run):
    from core.latent import Explorer, encode_run
    from core.training.checkpoints import load_run_model

    model = load_run_model(vq_run)
    return Explorer(model, encode_run(vq_run, model))
