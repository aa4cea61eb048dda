"""Shared fixtures: the shared IXI sample, tiny synthetic NIfTI volumes and tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import (  # noqa: F401  (re-exported)
    SHARED_DATA, TINY_VAE, TINY_VQVAE, fail_missing_in_ci, make_tiny_dataset, skip_missing, smooth_head, write_nifti,
)

REPO = Path(__file__).resolve().parent.parent
IXI_SAMPLE = SHARED_DATA / "ixi_sample"
REAL_DEV = SHARED_DATA / "real_dev"

# Keep TensorFlow quiet and on the CPU-friendly path in tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ``CI=true`` a test skipped for want of ``../shared`` or Chromium (``skip_missing``) fails."""
    outcome = yield
    fail_missing_in_ci(outcome.get_result(), call)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or checkpoints from a test."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(base / "cache"))
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(base / "runs"))
    monkeypatch.delenv("LATENTBRAIN_DATA", raising=False)
    # Evaluating a tiny run trains the anatomy embedding of its dataset: a few steps are enough
    # to exercise the path (the bench and the slow planted-case tests train it fully).
    monkeypatch.setenv("LATENTBRAIN_EMBEDDING_STEPS", "60")


@pytest.fixture(scope="session")
def ixi_sample_dir() -> Path:
    """The two real IXI volumes + demographics in ../shared (skips when absent; fails in CI)."""
    if not (IXI_SAMPLE / "IXI_demog.csv").is_file():
        skip_missing("../shared/data/ixi_sample is not present")
    return IXI_SAMPLE


@pytest.fixture(scope="session")
def real_dev_dir() -> Path:
    """The 12 real heads + participants.csv in ../shared (skips when absent; fails in CI)."""
    if not (REAL_DEV / "participants.csv").is_file() or len(list(REAL_DEV.glob("*.nii.gz"))) < 12:
        skip_missing("../shared/data/real_dev (12 real heads) is not present")
    return REAL_DEV


@pytest.fixture
def tiny_nifti(tmp_path) -> Path:
    return write_nifti(tmp_path / "IXI900-Guys-0001-T1.nii.gz", smooth_head())


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 32-px dataset folder: 48 train, 8 val, 16 test images, subjects disjoint."""
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


@pytest.fixture(scope="session")
def tiny_cvae_run(tmp_path_factory) -> Path:
    """A finished conditional ``cvae-tiny`` run (TINY_VAE with ``conditional``) on a tiny conditional
    dataset (32 px, slices 10..17); read-only."""
    from helpers import make_tiny_conditional_dataset
    from core.training import runs, trainer

    dataset = make_tiny_conditional_dataset(tmp_path_factory.mktemp("tiny_cond_ds") / "ds")
    run_dir = runs.prepare_run(tmp_path_factory.mktemp("shared_runs") / "cvae-tiny", dataset, "vae", "demo",
                               {**TINY_VAE, "conditional": True})
    trainer.train_run(run_dir)
    return run_dir
