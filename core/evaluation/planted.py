"""Planted cases: the judge's power, measured on differences we put there ourselves.

A two-sample test that passes everything is worthless, and one that fails real against real
is broken.  Both are checked on a dataset's own real slices, at the sizes the evaluation
uses: the real side is the held-out subjects (the test split), as in
:func:`core.evaluation.run.evaluate_run`; the "synthetic" side is slices of *other* real
subjects (the training split, up to the evaluation's sample count), either untouched (the
null case: two disjoint sets of real subjects must score about 0.5) or with one small,
known change a good generator must not make:

- ``blur``: Gaussian blur, sigma 0.7 px (the blurry-decoder failure, in a mild form);
- ``noise``: 3 % Gaussian noise (of the [0, 1] range), clipped back to [0, 1];
- ``shift``: the whole slice moved 2 px to the right (zero fill): mis-centred anatomy;
- ``gamma``: intensities raised to the power 0.85 (a contrast change).

Those are *statistics* a generator can get wrong.  :data:`ANATOMY_PLANTED` holds what a reader
sees at once and per-slice statistics do not: the anatomy in the wrong place or in pieces
(:func:`anatomy_power` runs them in the anatomy-aware space of :mod:`core.evaluation.embedding`):

- ``chimera``: the upper half of one slice joined to the lower half of another person's slice
  at another level;
- ``tiles8`` / ``tiles16``: the 8 px (16 px) tiles inside the head's outline shuffled;
- ``flip_front_back``: the head flipped front to back;
- ``turn_90``: the slice turned by 90 degrees;
- ``wrong_level``: untouched slices *requested* at a level at least a third of the range away
  (what a level-conditioned sampler that ignores its condition produces).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.evaluation.metrics import image_stack

__all__ = ["PLANTED", "ANATOMY_PLANTED", "plant", "plant_anatomy", "planted_power", "anatomy_power",
           "heldout_and_others", "split_arrays", "null_calibration"]


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


def split_arrays(dataset, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, subject ids, slice levels) of one split of a dataset folder; empty when absent."""
    from core.data.dataset import load_manifest, load_split_images

    manifest = load_manifest(dataset)
    size = manifest["spec"]["size"]
    entry = manifest["splits"].get(name) or {}
    if not entry.get("slices"):
        return np.zeros((0, size, size), np.float32), np.zeros(0, str), np.zeros(0)
    slices = entry["slices"]
    return (np.asarray(load_split_images(dataset, name), np.float32), np.array([str(s) for s, _ in slices]),
            np.array([float(level) for _, level in slices]))


def heldout_and_others(dataset) -> tuple[np.ndarray, list, np.ndarray, list]:
    """(held-out images, their subjects, training images, their subjects) of a dataset folder:
    the evaluation's real side (the test split) and the disjoint people to plant changes in; the
    validation subjects (they chose the training's early-stopping epoch) are in neither."""
    from core.data.dataset import load_manifest, load_split_images

    manifest = load_manifest(dataset)
    size = manifest["spec"]["size"]

    def split(name):
        entry = manifest["splits"].get(name) or {}
        if not entry.get("slices"):
            return np.zeros((0, size, size), np.float32), []
        return np.asarray(load_split_images(dataset, name), np.float32), [s for s, _ in entry["slices"]]

    (te, ts), (tr, trs) = split("test"), split("train")
    return te, ts, tr, trs


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


def _chimera(x, rng, subjects, levels):
    """Upper half of each slice, lower half of another subject's slice at another level."""
    out = x.copy()
    h = x.shape[1] // 2
    for i in range(len(x)):
        other = np.flatnonzero((subjects != subjects[i]) & (levels != levels[i]))
        if not len(other):
            other = np.flatnonzero(np.arange(len(x)) != i)
        out[i, h:] = x[int(rng.choice(other)), h:]
    return out, levels


def _tiles(tile):
    def shuffle(x, rng, subjects, levels):
        """The tiles inside the head's outline (tile mean above a tenth of the slice's peak) permuted."""
        out = x.copy()
        n_rows, n_cols = x.shape[1] // tile, x.shape[2] // tile
        for i, image in enumerate(x):
            grid = image[:n_rows * tile, :n_cols * tile].reshape(n_rows, tile, n_cols, tile).transpose(0, 2, 1, 3)
            inside = np.argwhere(grid.mean(axis=(2, 3)) > 0.1 * max(float(image.max()), 1e-6))
            if len(inside) < 2:
                continue
            order = rng.permutation(len(inside))
            if np.all(order == np.arange(len(inside))):
                order = np.roll(order, 1)
            tiles = grid[inside[:, 0], inside[:, 1]].copy()
            for (r, c), t in zip(inside, tiles[order]):
                out[i, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = t
        return out, levels
    return shuffle


def _wrong_level(x, rng, subjects, levels):
    """The slices unchanged, their requested level moved at least a third of the range away."""
    low, high = float(levels.min()), float(levels.max())
    span = high - low
    wrong = levels.astype(np.float64).copy()
    for i, level in enumerate(levels):
        choices = [v for v in np.unique(levels) if abs(v - level) >= span / 3]
        wrong[i] = float(rng.choice(choices)) if choices else level
    return x, wrong


#: name -> (description, transform(x, rng, subjects, levels) -> (x, requested levels)).
ANATOMY_PLANTED: dict[str, tuple[str, Callable]] = {
    "none": ("untouched slices of other real subjects (null: must score about 0.5)",
             lambda x, rng, subjects, levels: (x, levels)),
    "chimera": ("upper half of one slice joined to the lower half of another subject's slice at another level",
                _chimera),
    "tiles8": ("8 px tiles inside the head's outline shuffled", _tiles(8)),
    "tiles16": ("16 px tiles inside the head's outline shuffled", _tiles(16)),
    "flip_front_back": ("head flipped front to back", lambda x, rng, s, levels: (x[:, ::-1, :].copy(), levels)),
    "turn_90": ("slice turned by 90 degrees", lambda x, rng, s, levels: (np.rot90(x, 1, axes=(1, 2)).copy(), levels)),
    "wrong_level": ("untouched slices requested at a level at least a third of the range away", _wrong_level),
}


def plant_anatomy(images, subjects, levels, name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images, requested levels)`` with the planted anatomy case ``name`` of :data:`ANATOMY_PLANTED`.

    >>> x = np.zeros((2, 4, 4), np.float32); x[:, 0] = 1.0
    >>> bool(plant_anatomy(x, ["a", "b"], [0, 1], "flip_front_back")[0][0, -1].all())
    True
    """
    if name not in ANATOMY_PLANTED:
        raise KeyError(f"unknown planted case {name!r}; one of {', '.join(ANATOMY_PLANTED)}")
    x = image_stack(images).astype(np.float32)
    out, requested = ANATOMY_PLANTED[name][1](x, np.random.default_rng(seed), np.asarray([str(v) for v in subjects]),
                                              np.asarray(levels, np.float64))
    return np.ascontiguousarray(out, np.float32), np.asarray(requested, np.float64)


def anatomy_power(embedding, heldout, heldout_subjects, heldout_levels, others, other_subjects, other_levels,
                  cases=None, n_samples: int = 256, seed: int = 0, conditioned: tuple = ("wrong_level",),
                  progress: Callable[[str], None] | None = None) -> dict:
    """The anatomy-aware two-sample test on every planted anatomy case, without per-slice statistics.

    Args:
        embedding: a trained :class:`core.evaluation.embedding.AnatomyEmbedding` (trained on
            the training split, as the evaluation's).
        heldout, heldout_subjects, heldout_levels: the evaluation's real side.
        others, other_subjects, other_levels: slices of disjoint real subjects (the training
            split); up to ``n_samples`` of them, drawn at random, stand in for the samples.
        conditioned: the cases judged with the requested level beside the features (as a
            level-conditioned model's samples are).

    Returns:
        ``{case: {description, accuracy, ci95, auc, ...}}`` from
        :func:`core.evaluation.c2st.embedding_two_sample_test`.
    """
    from core.evaluation.c2st import embedding_two_sample_test
    from core.evaluation.embedding import level_features

    others, other_subjects = image_stack(others), np.asarray([str(v) for v in other_subjects])
    other_levels = np.asarray(other_levels, np.float64)
    if len(others) > n_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(others), n_samples, replace=False))
        others, other_subjects, other_levels = others[keep], other_subjects[keep], other_levels[keep]
    overlap = set(map(str, heldout_subjects)) & set(other_subjects.tolist())
    if overlap:
        raise ValueError(f"the planted cases need disjoint subjects; shared: {sorted(overlap)[:3]}")
    real_features = embedding.features(heldout)
    out = {}
    for name in cases or list(ANATOMY_PLANTED):
        if progress:
            progress(name)
        x, requested = plant_anatomy(others, other_subjects, other_levels, name, seed)
        syn_features = embedding.features(x)
        real_f, syn_f = real_features, syn_features
        if name in conditioned:
            real_f = level_features(embedding, real_features, heldout_levels)
            syn_f = level_features(embedding, syn_features, requested)
        result = embedding_two_sample_test(real_f, heldout_subjects, syn_f, other_subjects, seed=seed)
        out[name] = {"description": ANATOMY_PLANTED[name][0], "conditioned": name in conditioned,
                     **{k: v for k, v in result.items() if k != "meaning"}}
    return out


def null_calibration(features, subjects, n_splits: int = 20, seed: int = 0, max_slices: int | None = None) -> dict:
    """How often real-vs-real splits are called different: the calibration of the interval.

    ``n_splits`` times, the subjects are split at random into two disjoint halves (by subject)
    and :func:`core.evaluation.c2st.embedding_two_sample_test` compares them, the second half as
    grouped "synthetic" slices.  Nothing differs but the people, so a 95 % interval that holds
    lies wholly above chance in few of them (the goal: at most 10 %).

    Args:
        features: ``(N, D)`` features of real slices (e.g. every subject of a cohort).
        subjects: subject of every slice (at least 4 subjects).
        max_slices: when set, the "synthetic" half is subsampled to at most this many slices
            (the evaluation's sample count).
    """
    from core.evaluation.c2st import embedding_two_sample_test

    features, subjects = np.asarray(features, np.float64), np.asarray([str(s) for s in subjects])
    names = np.unique(subjects)
    if len(names) < 4:
        raise ValueError(f"a real-vs-real calibration needs at least 4 subjects, got {len(names)}")
    rng = np.random.default_rng(seed)
    rows = []
    for split in range(n_splits):
        half = set(rng.choice(names, len(names) // 2, replace=False).tolist())
        side = np.array([s in half for s in subjects])
        other = np.flatnonzero(~side)
        if max_slices is not None and len(other) > max_slices:
            other = np.sort(rng.choice(other, max_slices, replace=False))
        result = embedding_two_sample_test(features[side], subjects[side], features[other], subjects[other],
                                           seed=seed + split)
        rows.append({"accuracy": result["accuracy"], "ci95": result["ci95"],
                     "beyond_chance": bool(result["ci95"][0] > 0.5)})
    accuracies = np.array([r["accuracy"] for r in rows])
    return {"n_splits": n_splits, "n_subjects": int(len(names)),
            "fraction_beyond_chance": float(np.mean([r["beyond_chance"] for r in rows])),
            "accuracy_median": float(np.median(accuracies)), "accuracy_p95": float(np.percentile(accuracies, 95)),
            "accuracy_max": float(accuracies.max()), "accuracy_min": float(accuracies.min()), "splits": rows,
            "meaning": "random by-subject halves of real subjects compared; the fraction whose 95 % interval lies "
                       "wholly above chance (should be <= 0.10)"}
