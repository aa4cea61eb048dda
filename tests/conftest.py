"""Shared fixtures: the shared IXI sample, tiny synthetic NIfTI volumes and tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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


def write_nifti(path: Path, data: np.ndarray, zooms=(1.2, 0.9375, 0.9375)) -> Path:
    """Write ``data`` with a non-identity affine in IXI's native orientation (P, S, R)."""
    import nibabel as nib

    # Columns map voxel axes to world: axis 0 -> -y (P), axis 1 -> +z (S), axis 2 -> +x (R).
    affine = np.array(
        [[0, 0, zooms[2], -80.0], [-zooms[0], 0, 0, 120.0], [0, zooms[1], 0, -100.0], [0, 0, 0, 1]]
    )
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def smooth_head(shape=(40, 48, 32), seed=0) -> np.ndarray:
    """A blurred ellipsoid 'head' with an inner brighter 'brain' and dark 'ventricles'."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    vol = 200.0 * (r < 0.85) + 300.0 * (r < 0.6) - 250.0 * (r < 0.15)
    vol += rng.normal(0, 5, shape)
    return np.clip(vol, 0, None).astype(np.float32)


@pytest.fixture
def tiny_nifti(tmp_path) -> Path:
    return write_nifti(tmp_path / "IXI900-Guys-0001-T1.nii.gz", smooth_head())


def make_tiny_dataset(out_dir: Path, size: int = 32, per_split=(48, 8, 8), seed: int = 0) -> Path:
    """A small dataset folder in the real manifest format, written by the real writer."""
    from core.data.dataset import SPLITS, write_dataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    splits = {}
    subject = 0
    for name, count in zip(SPLITS, per_split):
        images, slices, subjects = [], [], []
        for i in range(count):
            if i % 8 == 0:
                subject += 1
                subjects.append(f"S{subject:03d}")
            a, b = rng.uniform(0.55, 0.85, 2)
            head = ((xx / a) ** 2 + (yy / b) ** 2) < 1
            ventricle = ((xx / (0.15 + 0.1 * rng.random())) ** 2 + (yy / 0.3) ** 2) < 1
            image = 0.8 * head - 0.5 * ventricle * head + rng.normal(0, 0.02, (size, size))
            images.append(np.clip(image, 0, 1))
            slices.append([subjects[-1], i % 8])
        splits[name] = {"images": np.array(images, np.float32), "subjects": subjects, "slices": slices}
    spec = {"axis": "axial", "start": 0, "stop": 8, "size": size}
    return write_dataset(out_dir, spec, splits, dataset_hash=f"tiny{size}-{seed}")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 32-px dataset folder: 48 train, 8 val, 8 test images, subjects disjoint."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset") / "ds")


@pytest.fixture(scope="session")
def tiny_dataset_64(tmp_path_factory) -> Path:
    """A 64-px dataset folder (the `demo` preset's image size)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_dataset64") / "ds", size=64)
