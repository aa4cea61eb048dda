"""Test data makers shared by the test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: Networks small enough that an epoch on the 48-image tiny dataset takes well under a second
#: (one definition for every test that trains; copy before changing: ``dict(TINY_VAE)``).
#: The demo presets' adversary (issue 20) switched off in the tiny configs: it would join after
#: epoch 10-15 and cost a discriminator pass per step in every 2-epoch test training; the tests
#: of the adversary (tests/unit/models/test_adversarial.py, training/test_trainer_issue20.py,
#: the Train page's launch) switch it on themselves.
NO_ADVERSARY = {"adversarial_weight": 0.0, "feature_matching_weight": 0.0}
TINY_VAE = {"filters": [8, 16], "latent_dim": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 2, **NO_ADVERSARY}
TINY_VQVAE = {
    "filters": [8, 16], "n_res_blocks": 1, "res_filters": 16, "num_embeddings": 16, "embedding_dim": 8,
    "batch_size": 16, "epochs": 2, "prior_epochs": 2, "prior_filters": 16, "prior_layers": 3,
    "prior_batch_size": 16, **NO_ADVERSARY,
}
#: The same tiny VAE as ``python -m core train`` flags.
TINY_FLAGS = ["--set", "filters=[8,16]", "--latent-dim", "8", "--batch-size", "16", "--epochs", "1",
              "--warmup-epochs", "1", "--set", "adversarial_weight=0"]
#: The tiny VQ-VAE and prior as ``python -m core train --model vqvae`` flags (1 epoch each).
TINY_VQ_FLAGS = ["--set", "filters=[8,16]", "--set", "n_res_blocks=1", "--set", "res_filters=16",
                 "--set", "num_embeddings=16", "--set", "embedding_dim=8", "--set", "prior_filters=16",
                 "--set", "prior_layers=3", "--set", "prior_batch_size=16", "--batch-size", "16",
                 "--epochs", "1", "--prior-epochs", "1", "--set", "adversarial_weight=0",
                 "--set", "feature_matching_weight=0"]


def run_cli(capsys, *args):
    """``python -m core ARGS`` in this process: (exit status, stdout, stderr)."""
    from core.__main__ import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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


def make_tiny_dataset(out_dir: Path, size: int = 32, per_split=(48, 8, 16), seed: int = 0) -> Path:
    """A small dataset folder in the real manifest format, written by the real writer.

    8 slices a subject: 6 training subjects, 1 validation subject and 2 test subjects (the
    evaluation's held-out side needs 2 people to split by subject)."""
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


def make_tiny_conditional_dataset(out_dir: Path, size: int = 32, per_split=(64, 16, 16), seed: int = 0,
                                  demographics: bool = True) -> Path:
    """A small dataset with ages and sexes in its manifest's ``subjects`` and a planted slice
    effect: an image's brightness rises with its slice index (slices 10..17), so a conditional
    model can be checked for obeying the slice it is asked for."""
    from core.data.dataset import SPLITS, write_dataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    start, stop = 10, 18
    splits, info = {}, {}
    subject = 0
    for name, count in zip(SPLITS, per_split):
        images, slices, subjects = [], [], []
        for i in range(count):
            if i % 8 == 0:
                subject += 1
                subjects.append(f"S{subject:03d}")
                info[subjects[-1]] = {"age": float(20 + (subject * 7) % 60), "sex": "FM"[subject % 2]}
            index = start + i % 8
            a, b = rng.uniform(0.55, 0.85, 2)
            head = ((xx / a) ** 2 + (yy / b) ** 2) < 1
            brightness = 0.15 + 0.8 * (index - start) / (stop - 1 - start)
            image = brightness * head + rng.normal(0, 0.02, (size, size))
            images.append(np.clip(image, 0, 1))
            slices.append([subjects[-1], index])
        splits[name] = {"images": np.array(images, np.float32), "subjects": subjects, "slices": slices}
    spec = {"axis": "axial", "start": start, "stop": stop, "size": size}
    extra = {"subjects": info} if demographics else None
    return write_dataset(out_dir, spec, splits, dataset_hash=f"tinycond{size}-{seed}-{int(demographics)}",
                         extra=extra)


# --- Tests that need what a clean checkout may lack (../shared, Chromium) ----------------------

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class MissingResource(pytest.skip.Exception):
    """A skip because something outside the repository is missing (``../shared``, Chromium).

    Locally such a test skips; in CI (``CI=true``) the hook in ``tests/conftest.py`` turns it
    into a failure, so a CI run without the shared data or the browser cannot pass quietly.
    """


def skip_missing(reason: str):
    """Skip the calling test (or fixture) because ``reason`` names something missing; fails in CI."""
    raise MissingResource(reason)


def fail_missing_in_ci(report, call, environ=None) -> None:
    """Make ``report`` a failure when it is a :class:`MissingResource` skip and ``CI=true``."""
    import os

    environ = os.environ if environ is None else environ
    if environ.get("CI", "").lower() != "true" or not report.skipped or call.excinfo is None:
        return
    if isinstance(call.excinfo.value, MissingResource):
        report.outcome = "failed"
        report.longrepr = f"CI=true, and this test needs what is missing: {call.excinfo.value.msg}"
