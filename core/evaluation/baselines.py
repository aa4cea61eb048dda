"""Real-vs-real baselines that mean something: split by subject, matched in size, with a spread.

A sample figure (a Fréchet distance, an MMD, a mean MS-SSIM) says little alone: it depends on
the sample sizes and on how alike real people are.  Each figure here is measured on many random
**by-subject** splits of the held-out real slices into a reference part ``A`` and a compared
part ``B``:

- the real baseline is ``d(A, B)``: two sets of *different* real people;
- the model's figure is ``d(A, S)`` with ``S`` as many samples as ``B`` holds,

so both sides of the comparison use the same reference, the same sizes and the same estimator
bias.  Neighbouring slices of one head are nearly identical, so a split by slice (both halves
holding every head) gives a baseline far too low: never split real slices by slice here.

Over the draws we report the median and the 5–95 % range of both; a figure is *within the real
spread* when its median does not exceed the real baseline's 95th percentile (for MS-SSIM,
which is a similarity, when its median lies inside the real 5–95 % range).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.errors import UserError

__all__ = ["by_subject_draws", "distance_against_real", "diversity_against_real", "spread"]


def spread(values) -> dict:
    """``{median, p05, p95, n}`` of finite values.

    >>> spread([1, 2, 3, 4, 5])["median"]
    3.0
    """
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(values) == 0:
        return {"median": None, "p05": None, "p95": None, "n": 0}
    return {"median": float(np.median(values)), "p05": float(np.percentile(values, 5)),
            "p95": float(np.percentile(values, 95)), "n": int(len(values))}


def by_subject_draws(groups, n_draws: int = 40, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_draws`` random splits of the items into two halves with no subject in both.

    Each is ``(index_a, index_b)``; halves are as equal in slices as whole subjects allow.

    >>> a, b = by_subject_draws(["s1", "s1", "s2", "s2", "s3", "s4"], n_draws=1)[0]
    >>> sorted({"s1", "s1", "s2", "s2", "s3", "s4"}), len(a) + len(b)
    (['s1', 's2', 's3', 's4'], 6)
    """
    from core.evaluation.c2st import split_by_group

    groups = np.asarray([str(g) for g in groups])
    if len(np.unique(groups)) < 2:
        raise UserError("a by-subject real baseline needs real slices of at least 2 subjects, got "
                        f"{len(np.unique(groups))}")
    draws = []
    for r in range(int(n_draws)):
        fold = split_by_group(groups, 2, seed + r)
        draws.append((np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)))
    return draws


def distance_against_real(real_features, real_groups, synthetic_features, distance: Callable,
                          n_draws: int = 40, seed: int = 0) -> dict:
    """A set distance (Fréchet, MMD ...) of samples beside the real-vs-real spread.

    Args:
        real_features: ``(N, D)`` features of held-out real slices.
        real_groups: their subject ids.
        synthetic_features: ``(M, D)`` features of samples, or None (only the baseline).
        distance: ``distance(reference, compared) -> float``.

    Returns:
        ``{value, value_spread, real_spread, within_real_spread, n_reference, n_compared, n_draws}``
        where ``value`` is the median of ``d(A, S)`` and ``real_spread`` that of ``d(A, B)``.
    """
    real_features = np.asarray(real_features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    baseline, values, sizes = [], [], []
    for a, b in by_subject_draws(real_groups, n_draws, seed):
        if synthetic_features is not None and len(synthetic_features) < len(b):
            b = np.sort(rng.choice(b, len(synthetic_features), replace=False))  # fewer samples than B: match them
        if len(a) < 2 or len(b) < 2:
            continue
        baseline.append(distance(real_features[a], real_features[b]))
        sizes.append((len(a), len(b)))
        if synthetic_features is not None:
            pick = rng.choice(len(synthetic_features), len(b), replace=False)
            values.append(distance(real_features[a], np.asarray(synthetic_features)[pick]))
    if not baseline:
        raise UserError("every by-subject split left fewer than 2 slices on one side")
    out = {"real_spread": spread(baseline), "n_draws": len(baseline),
           "n_reference": float(np.mean([s[0] for s in sizes])), "n_compared": float(np.mean([s[1] for s in sizes])),
           "split": "held-out slices split by subject into a reference half A and a compared half B; "
                    "real = d(A, B), samples = d(A, as many samples as B)"}
    if values:
        out["value_spread"] = spread(values)
        out["value"] = out["value_spread"]["median"]
        out["within_real_spread"] = bool(out["value"] <= out["real_spread"]["p95"])
    return out


def diversity_against_real(real, real_groups, synthetic, n_pairs: int = 300, n_draws: int = 20,
                           seed: int = 0) -> dict:
    """Mean pairwise MS-SSIM of samples beside the real spread, at the same set size.

    Real pairs are always of different subjects.  Each draw takes a by-subject half ``B`` of
    the held-out slices and as many samples; both get ``n_pairs`` random pairs.
    """
    from core.evaluation.diversity import pairwise_ms_ssim

    rng = np.random.default_rng(seed)
    real = np.asarray(real)
    groups = np.asarray([str(g) for g in real_groups])
    baseline, values = [], []
    for r, (a, b) in enumerate(by_subject_draws(groups, n_draws, seed)):
        half = b if len(np.unique(groups[b])) >= 2 else np.concatenate([a, b])
        baseline.append(pairwise_ms_ssim(real[half], n_pairs=n_pairs, seed=seed + r, groups=groups[half])["mean"])
        if synthetic is not None:
            m = min(len(half), len(synthetic))
            pick = rng.choice(len(synthetic), m, replace=False)
            values.append(pairwise_ms_ssim(np.asarray(synthetic)[pick], n_pairs=n_pairs, seed=seed + r)["mean"])
    out = {"real_spread": spread(baseline), "n_draws": len(baseline), "n_pairs": int(n_pairs),
           "split": "each draw: a by-subject half of the held-out slices (pairs of different subjects) "
                    "and as many samples"}
    if values:
        out["value_spread"] = spread(values)
        out["value"] = out["value_spread"]["median"]
        lo, hi = out["real_spread"]["p05"], out["real_spread"]["p95"]
        out["within_real_spread"] = bool(lo <= out["value"] <= hi)
    return out
