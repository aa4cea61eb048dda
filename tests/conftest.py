"""Shared fixtures: the shared IXI sample, tiny synthetic NIfTI volumes and tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import TINY_VAE, TINY_VQVAE, make_tiny_dataset, smooth_head, write_nifti  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parent.parent
IXI_SAMPLE = REPO.parent / "shared" / "data" / "ixi_sample"

# Keep TensorFlow quiet and on the CPU-friendly path in tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or checkpoints from a test."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(base / "cache"))
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(base / "runs"))
    monkeypatch.delenv("LATENTBRAIN_DATA", raising=False)


@pytest.fixture(scope="session")
def ixi_sample_dir() -> Path:
    """The two real IXI volumes + demographics in ../shared (skips when absent)."""
    if not (IXI_SAMPLE / "IXI_demog.csv").is_file():
        pytest.skip("../shared/data/ixi_sample is not present")
    return IXI_SAMPLE


@pytest.fixture
def tiny_nifti(tmp_path) -> Path:
    return write_nifti(tmp_path / "IXI900-Guys-0001-T1.nii.gz", smooth_head())


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 32-px dataset folder: 48 train, 8 val, 8 test images, subjects disjoint."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset") / "ds")


@pytest.fixture(scope="session")
def tiny_dataset_64(tmp_path_factory) -> Path:
    """A 64-px dataset folder (the `demo` preset's image size)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset64") / "ds", size=64)


# Tiny trained runs, each trained once per session (a tiny VQ-VAE with its prior takes ~30 s on 2 cores).
# Shared by every directory: never write into them; a test that does works on a copy (shutil.copytree).
@pytest.fixture(scope="session")
def tiny_vae_run(tmp_path_factory, tiny_dataset) -> Path:
    """A finished ``vae-tiny`` run (TINY_VAE: 2 epochs) on ``tiny_dataset``; read-only."""
    from core.training import runs, trainer

    run_dir = runs.prepare_run(tmp_path_factory.mktemp("shared_runs") / "vae-tiny", tiny_dataset, "vae", "demo",
                               TINY_VAE)
    trainer.train_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_vqvae_run(tmp_path_factory, tiny_dataset) -> Path:
    """A finished ``vq-tiny`` run (TINY_VQVAE: 2 epochs, prior 2 epochs) on ``tiny_dataset``; read-only."""
    from core.training import runs, trainer

    run_dir = runs.prepare_run(tmp_path_factory.mktemp("shared_runs") / "vq-tiny", tiny_dataset, "vqvae", "demo",
                               TINY_VQVAE)
    trainer.train_run(run_dir)
    return run_dir
