"""Fixtures for the evaluation tests: a larger tiny dataset, real-like slices, noise and blanks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest



def make_position_dataset(out_dir, size=32, subjects=(12, 1, 8), slices=8, seed=3):
    """A dataset whose content follows the slice position, like axial brain slices do.

    The head shrinks and the 'ventricles' fade from the first to the last slice of each
    subject; three sites differ in contrast.  Written by the real dataset writer.
    """
    from core.data.dataset import SPLITS, write_dataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    splits, info, number = {}, {}, 0
    for name, count in zip(SPLITS, subjects):
        images, rows, ids = [], [], []
        for _ in range(count):
            number += 1
            site = ("Guys", "HH", "IOP")[number % 3]
            sid = f"E{number:03d}-{site}"
            ids.append(sid)
            info[sid] = {"age": 30.0 + number, "sex": "MF"[number % 2], "site": site}
            scale = rng.uniform(0.9, 1.05)
            for i in range(slices):
                t = i / (slices - 1)
                a, b = scale * (0.85 - 0.35 * t), scale * (0.75 - 0.3 * t)
                head = ((xx / a) ** 2 + (yy / b) ** 2) < 1
                ventricle = ((xx / (0.2 * (1 - t) + 0.01)) ** 2 + (yy / 0.3) ** 2) < 1
                contrast = {"Guys": 0.8, "HH": 0.7, "IOP": 0.9}[site]
                image = contrast * head - 0.5 * ventricle * head + rng.normal(0, 0.02, (size, size))
                images.append(np.clip(image, 0, 1))
                rows.append([sid, 100 + i])
        splits[name] = {"images": np.array(images, np.float32), "subjects": ids, "slices": rows}
    spec = {"axis": "axial", "start": 100, "stop": 100 + slices, "size": size}
    return write_dataset(out_dir, spec, splits, dataset_hash=f"pos{size}-{seed}", extra={"subjects": info})


@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory):
    """A 32-px dataset: 96 train, 8 val and 64 test slices (12 / 1 / 8 subjects, 3 sites)."""
    return make_position_dataset(tmp_path_factory.mktemp("eval_ds") / "ds")


@pytest.fixture(scope="session")
def real_test(eval_dataset):
    from core.data.dataset import load_split_images

    return np.asarray(load_split_images(eval_dataset, "test"))


@pytest.fixture(scope="session")
def real_train(eval_dataset):
    from core.data.dataset import load_split_images

    return np.asarray(load_split_images(eval_dataset, "train"))


@pytest.fixture(scope="session")
def noise(real_test):
    return np.random.default_rng(9).random(real_test.shape).astype(np.float32)


@pytest.fixture(scope="session")
def blank(real_test):
    return np.zeros_like(real_test)


@pytest.fixture(scope="session")
def trained_vae(tmp_path_factory, tiny_vae_run):
    """A finished 2-epoch tiny VAE run on the 32-px tiny dataset (a copy of the session's ``tiny_vae_run``)."""
    return Path(shutil.copytree(tiny_vae_run, tmp_path_factory.mktemp("runs") / "vae-tiny"))


@pytest.fixture(scope="session")
def trained_vqvae(tmp_path_factory, tiny_vqvae_run):
    """A finished tiny VQ-VAE run (2 epochs) with its prior (2 epochs): a copy of ``tiny_vqvae_run``."""
    return Path(shutil.copytree(tiny_vqvae_run, tmp_path_factory.mktemp("runs") / "vq-tiny"))


@pytest.fixture(scope="session")
def demo_dataset_64(tmp_path_factory):
    """The benchmark's demo dataset (``bench.cohorts.demo_dataset``): the 24-subject demo cohort,
    thesis slice range, 64 px, split 70/10/20 with seed 0.  Building the cohort takes about a
    minute on 2 cores, so every test of the session shares this one; read-only."""
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.demo import build_demo_cohort
    from core.data.slices import thesis_spec
    from core.data.volumes import load_volume

    root = tmp_path_factory.mktemp("demo_dataset_64")
    cohort = load_cohort(build_demo_cohort(root / "cohort", n_subjects=24, seed=0))
    spec = thesis_spec(load_volume(cohort.entries[0]), size=64)
    return build_cohort_dataset(cohort, spec, fractions=(0.7, 0.1, 0.2), seed=0, cache_dir=root / "cache").path
