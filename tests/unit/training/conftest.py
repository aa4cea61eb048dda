"""Fixtures for the training-engine tests: tiny model configs and runs trained once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
def trained_vae(tmp_path_factory, tiny_vae_run):
    """A finished 2-epoch VAE run dir on the 32-px tiny dataset (this directory's copy of the session's
    ``tiny_vae_run``, which is trained once for every directory)."""
    return Path(shutil.copytree(tiny_vae_run, tmp_path_factory.mktemp("runs") / "vae-tiny"))


@pytest.fixture(scope="session")
def trained_vqvae(tmp_path_factory, tiny_vqvae_run):
    """A finished VQ-VAE run dir (2 epochs) with its prior (2 epochs): a copy of ``tiny_vqvae_run``."""
    return Path(shutil.copytree(tiny_vqvae_run, tmp_path_factory.mktemp("runs") / "vq-tiny"))
