"""Planted cases: the judge's power, measured on differences we put there ourselves.

A two-sample test that passes everything is worthless, and one that fails real against real
is broken.  Both are checked on a dataset's own real slices, at the sizes the evaluation
uses: the real side is the held-out subjects (validation + test), as in
:func:`core.evaluation.run.evaluate_run`; the "synthetic" side is slices of *other* real
subjects (the training split, up to the evaluation's sample count), either untouched (the
null case: two disjoint sets of real subjects must score about 0.5) or with one small,
known change a good generator must not make:

- ``blur``: Gaussian blur, sigma 0.7 px (the blurry-decoder failure, in a mild form);
- ``noise``: 3 % Gaussian noise (of the [0, 1] range), clipped back to [0, 1];
- ``shift``: the whole slice moved 2 px to the right (zero fill): mis-centred anatomy;
- ``gamma``: intensities raised to the power 0.85 (a contrast change).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.evaluation.metrics import image_stack

__all__ = ["PLANTED", "plant", "planted_power", "heldout_and_others"]


def _blur(x, rng):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, 0.7, 0.7), mode="nearest")


def _noise(x, rng):
    return np.clip(x + rng.normal(0.0, 0.03, x.shape), 0.0, 1.0)


def _shift(x, rng):
    out = np.zeros_like(x)
    out[:, :, 2:] = x[:, :, :-2]
    return out


def _gamma(x, rng):
    return np.clip(x, 0.0, 1.0) ** 0.85


#: name -> (description, transform of an (N, H, W) stack in [0, 1]).
PLANTED: dict[str, tuple[str, Callable]] = {
    "none": ("untouched slices of other real subjects (null: must score about 0.5)", lambda x, rng: x),
    "blur": ("Gaussian blur, sigma 0.7 px", _blur),
    "noise": ("3 % Gaussian noise, clipped to [0, 1]", _noise),
    "shift": ("shifted 2 px to the right, zero fill", _shift),
    "gamma": ("gamma 0.85", _gamma),
}


def plant(images, name: str, seed: int = 0) -> np.ndarray:
    """``images`` with the planted change ``name`` (a key of :data:`PLANTED`), float32.

    >>> x = np.full((1, 8, 8), 0.5, np.float32)
    >>> round(float(plant(x, "gamma")[0, 0, 0]), 4)
    0.5548
    >>> plant(x, "shift")[0, 0, :3].tolist()
    [0.0, 0.0, 0.5]
    """
    if name not in PLANTED:
        raise KeyError(f"unknown planted case {name!r}; one of {', '.join(PLANTED)}")
    x = image_stack(images).astype(np.float64)
    return PLANTED[name][1](x, np.random.default_rng(seed)).astype(np.float32)


def heldout_and_others(dataset) -> tuple[np.ndarray, list, np.ndarray, list]:
    """(held-out images, their subjects, training images, their subjects) of a dataset folder:
    the evaluation's real side (validation + test) and the disjoint people to plant changes in."""
    from core.data.dataset import load_manifest, load_split_images

    manifest = load_manifest(dataset)
    size = manifest["spec"]["size"]

    def split(name):
        entry = manifest["splits"].get(name) or {}
        if not entry.get("slices"):
            return np.zeros((0, size, size), np.float32), []
        return np.asarray(load_split_images(dataset, name), np.float32), [s for s, _ in entry["slices"]]

    (va, vs), (te, ts), (tr, trs) = split("val"), split("test"), split("train")
    return np.concatenate([va, te]), vs + ts, tr, trs


def planted_power(heldout, heldout_subjects, others, other_subjects, cases=None, n_samples: int = 256,
                  seed: int = 0, progress: Callable[[str], None] | None = None, **c2st_options) -> dict:
    """The two-sample test on every planted case: ``{case: {accuracy, ci95, n_scored, ...}}``.

    Args:
        heldout, heldout_subjects: the evaluation's real side (held-out subjects' slices).
        others, other_subjects: slices of disjoint real subjects (e.g. the training split);
            up to ``n_samples`` of them, drawn at random, stand in for the samples.
    """
    from core.evaluation.c2st import classifier_two_sample_test

    others, other_subjects = image_stack(others), np.asarray(other_subjects)
    if len(others) > n_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(others), n_samples, replace=False))
        others, other_subjects = others[keep], other_subjects[keep]
    overlap = set(map(str, heldout_subjects)) & set(map(str, other_subjects))
    if overlap:
        raise ValueError(f"the planted cases need disjoint subjects; shared: {sorted(overlap)[:3]}")
    out = {}
    for name in cases or list(PLANTED):
        if progress:
            progress(name)
        result = classifier_two_sample_test(heldout, heldout_subjects, plant(others, name, seed), other_subjects,
                                            seed=seed, **c2st_options)
        out[name] = {"description": PLANTED[name][0], **{k: v for k, v in result.items() if k != "meaning"}}
    return out
