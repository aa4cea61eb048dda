"""Conditioning vectors for conditional generation: age, sex and slice position.

A condition is what a user asks for, ``{"age": 75, "sex": "F", "slice": 170}``; a model sees
it as a float32 vector of :data:`CONDITION_DIM` values:

- ``age / 100`` (years),
- ``1.0`` for ``"F"``, ``0.0`` for ``"M"``,
- the slice index as a fraction of the dataset's slice range ``[start, stop)``:
  ``(slice - start) / (stop - 1 - start)`` (0 at the first slice, 1 at the last).

The slice range travels with the model (its ``slice_range``), so a request is always in
the canonical slice indices the user sees.  This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from core.errors import UserError

__all__ = ["CONDITION_KEYS", "CONDITION_DIM", "condition_array", "dataset_conditions", "decode_conditions",
           "population_conditions", "DEFAULT_AGE_RANGE", "model_slice_range"]

#: Ages drawn when a conditional model is asked for samples without a condition (IXI spans 20–86).
DEFAULT_AGE_RANGE = (20.0, 86.0)

CONDITION_KEYS = ("age", "sex", "slice")
CONDITION_DIM = len(CONDITION_KEYS)
_SEXES = {"F": 1.0, "M": 0.0}


def _check_range(slice_range):
    try:
        start, stop = (int(v) for v in slice_range)
    except (TypeError, ValueError) as exc:
        raise UserError(f"slice_range must be [start, stop], got {slice_range!r}") from exc
    if stop - start < 2:
        raise UserError(f"slice_range must hold at least 2 slices, got [{start}, {stop})")
    return start, stop


def model_slice_range(conditional: bool, slice_range, model_name: str):
    """The ``(start, stop)`` a conditional model keeps, or ``None`` for an unconditional one.

    One check for every model type, so a VAE and a VQ-VAE refuse the same bad ranges alike.

    >>> model_slice_range(True, [160, 190], "VAE"), model_slice_range(False, None, "VAE")
    ((160, 190), None)
    """
    if not conditional:
        return None
    if slice_range is None:
        raise UserError(f"a conditional {model_name} needs slice_range [start, stop) of its dataset")
    start, stop = _check_range(slice_range)
    if start < 0:
        raise UserError(f"slice_range must start at 0 or later, got [{start}, {stop})")
    return start, stop


def _one(condition, slice_range) -> list[float]:
    if not isinstance(condition, dict):
        raise UserError(f"a condition must be a dict with keys {CONDITION_KEYS}, got {condition!r}")
    unknown = set(condition) - set(CONDITION_KEYS)
    missing = set(CONDITION_KEYS) - set(condition)
    if unknown or missing:
        raise UserError(f"a condition needs exactly the keys {CONDITION_KEYS}; "
                        f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    age, sex, index = condition["age"], condition["sex"], condition["slice"]
    if isinstance(age, bool) or not isinstance(age, Real) or not 0 <= float(age) <= 120:
        raise UserError(f"age must be a number of years in [0, 120], got {age!r}")
    if not isinstance(sex, str) or sex.upper() not in _SEXES:
        raise UserError(f"sex must be 'F' or 'M', got {sex!r}")
    start, stop = _check_range(slice_range)
    if isinstance(index, bool) or not isinstance(index, Real) or not start <= float(index) <= stop - 1:
        raise UserError(f"slice must be in the model's slice range [{start}, {stop - 1}], got {index!r}")
    return [float(age) / 100.0, _SEXES[sex.upper()], (float(index) - start) / (stop - 1 - start)]


def condition_array(condition, n, slice_range) -> np.ndarray:
    """``(n, CONDITION_DIM)`` float32 vectors for a request.

    ``condition`` is one dict (repeated ``n`` times), a list of ``n`` dicts, or an already
    encoded ``(n, CONDITION_DIM)`` array.

    >>> [[round(float(v), 3) for v in row] for row in condition_array({"age": 75, "sex": "F", "slice": 170}, 2, (160, 190))]
    [[0.75, 1.0, 0.345], [0.75, 1.0, 0.345]]
    """
    if isinstance(condition, dict):
        return np.tile(np.asarray(_one(condition, slice_range), "float32"), (n, 1))
    if isinstance(condition, (list, tuple)) and condition and isinstance(condition[0], dict):
        if len(condition) != n:
            raise UserError(f"got {len(condition)} conditions for {n} samples")
        return np.asarray([_one(c, slice_range) for c in condition], "float32")
    try:
        array = np.asarray(condition, dtype="float32")
    except (TypeError, ValueError):
        array = np.zeros((0,), "float32")
    if array.shape != (n, CONDITION_DIM) or not np.all(np.isfinite(array)):
        raise UserError(f"condition must be a dict, a list of {n} dicts or a finite ({n}, {CONDITION_DIM}) "
                        f"array, got shape {array.shape}")
    return array


def decode_conditions(vectors, slice_range) -> dict:
    """Inverse of :func:`condition_array`: ``{age, female, slice}`` arrays of length N."""
    v = np.asarray(vectors, dtype="float64").reshape(-1, CONDITION_DIM)
    start, stop = _check_range(slice_range)
    return {"age": v[:, 0] * 100.0, "female": v[:, 1], "slice": start + v[:, 2] * (stop - 1 - start)}


def dataset_conditions(manifest, split) -> np.ndarray:
    """``(N, CONDITION_DIM)`` float32 vectors of a dataset split's slices, in image order.

    ``manifest`` is a dataset manifest (``core.data.dataset.load_manifest``): per-slice
    ``[subject_id, slice_index]`` and ``subjects`` → ``{id: {age, sex, ...}}``.

    Raises:
        UserError: if a slice's subject has no age or sex.
    """
    spec = manifest["spec"]
    slice_range = (spec["start"], spec["stop"])
    subjects = manifest.get("subjects") or {}
    rows = []
    for subject, index in manifest["splits"][split]["slices"]:
        info = subjects.get(subject) or {}
        if info.get("age") is None or info.get("sex") not in _SEXES:
            raise UserError(f"subject {subject} has no age and sex in the dataset's demographics; "
                            "conditional models need both")
        rows.append(_one({"age": info["age"], "sex": info["sex"], "slice": index}, slice_range))
    return np.asarray(rows, "float32").reshape(-1, CONDITION_DIM)


def population_conditions(n, seed, slice_range) -> np.ndarray:
    """``(n, CONDITION_DIM)`` conditions for samples asked for without one: ages uniform in
    :data:`DEFAULT_AGE_RANGE`, sexes balanced, slices uniform over the model's range (seeded).

    Callers that know the real population (evaluation: the test split's own conditions) should
    pass those instead; this keeps ``sample(n, seed)`` working for every model.

    >>> c = population_conditions(4, 0, (160, 190))
    >>> c.shape, bool((c[:, 0] >= 0.2).all() and (c[:, 0] <= 0.86).all()), sorted(set(c[:, 1].tolist())) <= [0.0, 1.0]
    ((4, 3), True, True)
    """
    _check_range(slice_range)
    rng = np.random.default_rng(seed)
    ages = rng.uniform(*DEFAULT_AGE_RANGE, n) / 100.0
    sexes = rng.permutation(np.arange(n) % 2).astype("float32")
    positions = rng.uniform(0.0, 1.0, n)
    return np.stack([ages, sexes, positions], axis=1).astype("float32")
