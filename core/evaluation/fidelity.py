"""Precision, recall, density and coverage of samples in a feature space, beside a by-subject real spread.

The four figures come from k-nearest-neighbour balls around feature vectors (``(N, D)`` float
arrays, e.g. the anatomy embedding's penultimate layer, :mod:`core.evaluation.embedding`):

- **precision** (Kynkäänniemi et al. 2019): the fraction of samples inside the real manifold,
  the union of balls around every real point whose radius is its distance to its k-th nearest
  real neighbour.  Low: samples that look like no real slice.
- **recall** (same paper): the fraction of real points inside the samples' manifold, built the
  same way from the samples.  Low: parts of the real distribution the model never draws.
- **density** (Naeem et al. 2020): how many real balls hold a sample, on average, divided by
  ``k``.  About 1 when samples and real points come from one distribution; above 1 when samples
  crowd into dense real regions, below 1 when they sit at the fringes.
- **coverage** (same paper): the fraction of real balls that hold at least one sample.  Unlike
  recall it does not trust the samples' own balls, so a few outlying samples cannot inflate it.

A point is inside a ball when its distance to the centre is below the radius (an open ball, as
in the reference implementation ``prdc`` by clovaai, so a set compared with itself has density
exactly 1), or when it sits on the centre: features of identical images (blank slices) can
give a zero radius, and an exact copy of a real point should still count as inside its ball.

**Slices are not independent.**  Neighbouring slices of one head are nearly identical, so a real
slice's k nearest neighbours are usually slices of the same head and its ball only as wide as
a few slices' step: another person (or a perfect sample, which is a new person) then lands in
almost no real ball, and every figure sinks towards 0 for reasons that have nothing to do with
the model.  Given subject ids, a real ball's radius is instead the distance to the k-th nearest
slice of *another* subject (``real_subjects`` / ``neighbours="other_subjects"``): how close
another person comes, which is the scale a sample is judged on.  Without subject ids the
radii are the papers'.

The figures also depend on the set sizes (radii shrink as sets grow) and on how alike real
people are, so :func:`prdc_against_real` reports them beside real-vs-real draws split **by
subject**, at matched sizes, with the conventions of :mod:`core.evaluation.baselines`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist

from core.errors import UserError
from core.evaluation.baselines import by_subject_draws, spread

__all__ = ["FIGURES", "NEIGHBOURS", "prdc", "prdc_against_real"]

FIGURES = ("precision", "recall", "density", "coverage")
#: How a real ball's radius is found: the k-th nearest slice of another subject, or of any.
NEIGHBOURS = ("other_subjects", "all")

# Pairwise distances are computed in blocks of about this many entries (8 bytes each), so
# tens of thousands of slices stay within a few tens of MB.
_BLOCK_ENTRIES = 4_000_000


def prdc(real_features, synthetic_features, k: int = 5, standardise: bool = True, real_subjects=None,
         synthetic_subjects=None) -> dict:
    """Precision, recall, density and coverage of one synthetic set against one real set.

    Args:
        real_features: ``(N, D)`` float features of real slices, the reference.
        synthetic_features: ``(M, D)`` float features of samples.
        k: the neighbour whose distance is a ball's radius; both sets need more than ``k`` rows.
        standardise: z-score every feature dimension by the real set's mean and standard
            deviation before measuring distances (both sets with the real statistics).  A learned
            embedding's units have very different scales (ReLU units, some nearly dead), and a
            Euclidean ball would otherwise be shaped by the few loudest units; the real set
            alone sets the scale so that the samples cannot move the yardstick.  The price: a
            unit whose spread is mostly *between* clusters is shrunk like any other.  A
            dimension constant in the real set is left unscaled.
        real_subjects: ``(N,)`` subject ids of the real slices, or None.  Given, a real ball
            reaches the k-th nearest slice of another subject (see the module docstring); every
            slice then needs at least ``k`` slices of other subjects.
        synthetic_subjects: ``(M,)`` groups of the samples (planted cases made from real
            subjects), or None for independent samples; used the same way for the samples' balls.

    Returns:
        ``{precision, recall, density, coverage, k, n_real, n_synthetic, standardise, neighbours}``;
        precision, recall and coverage lie in [0, 1], density in [0, N / k] (about 1 for
        two independent samples of one distribution).  ``neighbours`` is ``"other_subjects"``
        when ``real_subjects`` was given, else ``"all"``.

    Raises:
        UserError: a set that is not 2-D, holds non-finite values or has ``k`` rows or fewer,
            feature widths that differ, or subject ids that do not fit.

    Identical sets are fully precise, fully recalled and covered, with density exactly 1;
    far-apart clouds share nothing:

    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> {name: round(value, 3) for name, value in prdc(x, x, k=5).items() if name in FIGURES}
    {'precision': 1.0, 'recall': 1.0, 'density': 1.0, 'coverage': 1.0}
    >>> far = prdc(x, x + 100.0, k=5)
    >>> far["precision"], far["recall"], far["density"], far["coverage"]
    (0.0, 0.0, 0.0, 0.0)
    """
    k = _check_k(k)
    real = _as_features(real_features, "real_features", k)
    synthetic = _as_features(synthetic_features, "synthetic_features", k, width=real.shape[1])
    real_groups = _as_groups(real_subjects, len(real), "real_subjects", k)
    synthetic_groups = _as_groups(synthetic_subjects, len(synthetic), "synthetic_subjects", k)
    if standardise:
        real, synthetic = _standardise(real, synthetic)
    figures = _figures(real, _kth_neighbour_distance(real, k, real_groups), synthetic,
                       _kth_neighbour_distance(synthetic, k, synthetic_groups), k)
    return {**figures, "k": k, "n_real": int(len(real)), "n_synthetic": int(len(synthetic)),
            "standardise": bool(standardise), "neighbours": "all" if real_groups is None else "other_subjects"}


def prdc_against_real(real_features, real_subjects, synthetic_features, k: int = 5, n_draws: int = 20,
                      seed: int = 0, standardise: bool = True, neighbours: str = "other_subjects",
                      synthetic_subjects=None) -> dict:
    """The four figures of samples, each beside the spread of real-vs-real draws split by subject.

    Each draw splits the held-out real slices by subject (``by_subject_draws``: no subject on
    both sides, halves as equal in slices as whole subjects allow) into a reference half ``A``
    and a compared half ``B``, then scores

    - the real stand-in: ``B`` against ``A``, two sets of *different* real people;
    - the samples: as many samples as ``B`` holds, drawn at random, against the same ``A``.

    Both sides so share the reference, its radii and the compared set's size; with fewer
    samples than ``B`` holds, ``B`` is subsampled to the samples' count instead.  With
    ``standardise``, each draw z-scores all three sets by ``A``'s statistics.  Slices of one
    head are nearly identical, so a split by slice would give real figures far too kind: never
    split by slice here.  With ``neighbours="other_subjects"`` the balls of ``A`` and ``B``
    reach the k-th nearest slice of another subject of the same half (each half then needs 2
    subjects, so with fewer than 4 subjects the papers' radii are used and ``note`` says so);
    the samples' balls use ``synthetic_subjects`` when given.

    The samples' figure is the **mean over the draws**, set beside the 5–95 % range of the real
    draws widened by one image's worth of the figure (a proportion over n images cannot tell
    apart values closer than 1/n, and real draws often all sit at exactly 1); ``position`` says
    ``below``, ``within`` or ``above``.  The 5–95 % range rather than min–max, so one lopsided
    split of a few subjects does not widen every range.  A figure is *within the real spread*
    unless it lies on its bad side:

    - precision, recall, coverage: below the range.  Above it is no fault: the samples are
      independent draws, a real half is a few whole heads whose slices cluster, so a good model's
      samples reach more of the reference than a real half does (a model that crowds into the
      commonest anatomy shows as high precision *with* low recall or coverage);
    - density: either side (above: samples crowd into dense real regions; below: at the fringes).

    This is the one-sided reading of ``baselines.distance_against_real`` (a distance is within
    when not above the real 95th percentile) with the two-sided one of MS-SSIM where both
    directions are faults.  With few subjects the draws repeat the same splits:
    ``n_distinct_splits`` counts the different ones drawn and ``n_possible_splits`` how many
    exist, and ``note`` says so when the spread is coarse.

    Args:
        real_features: ``(N, D)`` features of held-out real slices.
        real_subjects: ``(N,)`` their subject ids; at least 2 distinct.
        synthetic_features: ``(M, D)`` features of samples, or None (only the real spread).
        k: the neighbour whose distance is a ball's radius.
        n_draws: by-subject splits to draw.
        seed: seeds the splits and the random subsets.
        standardise: z-score by each draw's reference half (see :func:`prdc`).
        neighbours: ``"other_subjects"`` or ``"all"`` (the papers' radii), see :data:`NEIGHBOURS`.
        synthetic_subjects: ``(M,)`` groups of the samples, or None (independent samples).

    Returns:
        ``{precision, recall, density, coverage, k, standardise, neighbours, n_draws, n_subjects,
        n_distinct_splits, n_possible_splits, n_reference, n_compared, n_synthetic, split, rule}``
        plus ``note`` when few distinct splits exist or the radii fell back.  Each figure is
        ``{real_spread}`` and, with samples, also ``{value, mean, value_spread, tolerance,
        within_real_spread, position}``; ``value`` and ``mean`` are the samples' mean over the
        draws, a spread is ``{median, p05, p95, n, min, max, mean}`` over the draws, ``position``
        one of ``below``, ``within``, ``above``.

    Raises:
        UserError: fewer than 2 subjects, too few images for ``k`` on either side of every
            split or among the samples, an unknown ``neighbours``, or malformed features.

    >>> rng = np.random.default_rng(0)
    >>> subjects = np.repeat(["s1", "s2", "s3", "s4"], 10)
    >>> real = rng.normal(size=(40, 4)) + np.repeat(rng.normal(scale=0.3, size=(4, 4)), 10, axis=0)
    >>> out = prdc_against_real(real, subjects, None, k=3, n_draws=10)
    >>> out["n_subjects"], out["n_possible_splits"], "value" in out["precision"]
    (4, 6, False)
    """
    k = _check_k(k)
    if neighbours not in NEIGHBOURS:
        raise UserError(f"neighbours must be one of {', '.join(NEIGHBOURS)}, got {neighbours!r}")
    real = _as_features(real_features, "real_features", 1)
    groups = _as_groups(real_subjects, len(real), "real_subjects", 0)
    synthetic, synthetic_groups = None, None
    if synthetic_features is not None:
        synthetic = _as_features(synthetic_features, "synthetic_features", k, width=real.shape[1])
        synthetic_groups = _as_groups(synthetic_subjects, len(synthetic), "synthetic_subjects", k)
    n_subjects = int(len(np.unique(groups)))
    notes = []
    if neighbours == "other_subjects" and n_subjects < 4:
        neighbours = "all"
        notes.append(f"{n_subjects} subjects leave a half with 1 subject: real balls reach the k-th nearest "
                     "slice of any subject (the papers' radii)")

    rng = np.random.default_rng(seed)
    real_values = {name: [] for name in FIGURES}
    values = {name: [] for name in FIGURES}
    sizes, splits, short = [], set(), []
    for a, b in by_subject_draws(groups, n_draws, seed):
        if synthetic is not None and len(synthetic) < len(b):
            b = np.sort(rng.choice(b, len(synthetic), replace=False))  # fewer samples than B: match them
        group_a, group_b = (groups[a], groups[b]) if neighbours == "other_subjects" else (None, None)
        if not (_enough(len(a), group_a, k) and _enough(len(b), group_b, k)):
            short.append((len(a), len(b)))
            continue
        reference, compared = real[a], real[b]
        picked, picked_groups = None, None
        if synthetic is not None:
            pick = rng.choice(len(synthetic), len(b), replace=False)
            picked = synthetic[pick]
            picked_groups = None if synthetic_groups is None else synthetic_groups[pick]
            if not _enough(len(pick), picked_groups, k):
                picked_groups = None  # too few sample groups in this subset: plain radii for it
        if standardise:
            reference, compared, *rest = _standardise(reference, compared, *([picked] if picked is not None else []))
            picked = rest[0] if rest else None
        radii = _kth_neighbour_distance(reference, k, group_a)
        for name, value in _figures(reference, radii, compared, _kth_neighbour_distance(compared, k, group_b),
                                    k).items():
            real_values[name].append(value)
        if picked is not None:
            for name, value in _figures(reference, radii, picked, _kth_neighbour_distance(picked, k, picked_groups),
                                        k).items():
                values[name].append(value)
        sizes.append((len(a), len(b)))
        splits.add(tuple(np.unique(groups[a])))
    if not sizes:
        smallest = min(min(s) for s in short)
        rule = (f"at least {k} slices of other subjects for every slice" if neighbours == "other_subjects"
                else f"more than {k} images")
        raise UserError(f"k={k} needs {rule} on each side of a by-subject split, but every split fell short "
                        f"(smallest side: {smallest} slices; {len(real)} real slices of {n_subjects} subjects); "
                        + ("lower k, add held-out subjects, or use neighbours='all'" if neighbours == "other_subjects"
                           else "lower k or add held-out subjects"))

    n_reference = float(np.mean([s[0] for s in sizes]))
    n_compared = float(np.mean([s[1] for s in sizes]))
    out = {name: {"real_spread": _spread(real_values[name])} for name in FIGURES}
    if synthetic is not None:
        # One image's worth of each figure: precision and density count samples, recall and
        # coverage count reference slices (density's counts are further divided by k).
        tolerance = {"precision": 1 / n_compared, "density": 1 / (k * n_compared),
                     "recall": 1 / n_reference, "coverage": 1 / n_reference}
        for name in FIGURES:
            mean = float(np.mean(values[name]))
            position, within = _judge(name, mean, out[name]["real_spread"], tolerance[name])
            out[name].update(value=mean, mean=mean, value_spread=_spread(values[name]), tolerance=tolerance[name],
                             within_real_spread=within, position=position)
    out.update(
        k=k, standardise=bool(standardise), neighbours=neighbours, n_draws=len(sizes), n_subjects=n_subjects,
        n_distinct_splits=len(splits), n_possible_splits=_possible_splits(n_subjects),
        n_reference=n_reference, n_compared=n_compared,
        n_synthetic=None if synthetic is None else int(len(synthetic)),
        split="held-out slices split by subject into a reference half A and a compared half B; "
              "real = B against A, samples = as many samples as B against A"
              + ("; features z-scored by A" if standardise else "")
              + ("; real balls reach the k-th nearest slice of another subject" if neighbours == "other_subjects"
                 else ""),
        rule="samples' mean over the draws against the real draws' 5-95 % range widened by one image's worth: "
             "within unless below it (precision, recall, coverage) or outside it (density)",
    )
    if short:
        notes.append(f"{len(short)} of {len(short) + len(sizes)} draws left a side too small for k={k} "
                     "and were skipped")
    if len(splits) < min(10, len(sizes)):
        notes.append(f"only {len(splits)} distinct by-subject splits among {len(sizes)} draws "
                     f"({n_subjects} subjects, {out['n_possible_splits']} possible): the real spread is coarse")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _judge(name: str, value: float, real_spread: dict, tolerance: float) -> tuple[str, bool]:
    """Where ``value`` lies against the real 5–95 % range widened by ``tolerance``, and whether
    that is within the real spread (only density is faulted for lying above).

    >>> spread_ = {"p05": 0.5, "p95": 0.9}
    >>> _judge("coverage", 0.95, spread_, 0.01), _judge("density", 0.95, spread_, 0.01)
    (('above', True), ('above', False))
    >>> _judge("recall", 0.45, spread_, 0.01), _judge("recall", 0.495, spread_, 0.01)
    (('below', False), ('within', True))
    """
    lo, hi = real_spread["p05"] - tolerance, real_spread["p95"] + tolerance
    position = "below" if value < lo else "above" if value > hi else "within"
    return position, position == "within" or (position == "above" and name != "density")


def _check_k(k) -> int:
    """``k`` as an int of at least 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer, float)) or int(k) != k or k < 1:
        raise UserError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def _as_features(x, name: str, k: int, width: int | None = None) -> np.ndarray:
    """``x`` as a finite ``(N, D)`` float64 array with more than ``k`` rows (a new array)."""
    x = np.array(x, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"{name} must be a 2-D (images, features) array, got shape {x.shape}")
    if width is not None and x.shape[1] != width:
        raise UserError(f"{name} has {x.shape[1]} features per image, the real ones {width}")
    if len(x) <= k:
        raise UserError(f"{name} holds {len(x)} images; k={k} needs more than {k}")
    bad = int((~np.isfinite(x)).any(axis=1).sum())
    if bad:
        raise UserError(f"{name} has {bad} of {len(x)} rows with NaN or infinite values")
    return x


def _as_groups(groups, n: int, name: str, k: int) -> np.ndarray | None:
    """Group ids as strings, one per row; with ``k``, every row needs ``k`` rows of other groups."""
    if groups is None:
        return None
    groups = np.asarray([str(g) for g in np.asarray(groups, dtype=object).ravel()])
    if len(groups) != n:
        raise UserError(f"{name} holds {len(groups)} ids for {n} feature rows")
    if k and not _enough(n, groups, k):
        raise UserError(f"{name}: with k={k} every slice needs at least {k} slices of other subjects; "
                        f"the {n} slices are of {len(np.unique(groups))} subjects")
    return groups


def _enough(n: int, groups: np.ndarray | None, k: int) -> bool:
    """Whether every row has at least ``k`` other rows, of other groups when groups are given."""
    if groups is None:
        return n > k
    _, counts = np.unique(groups, return_counts=True)
    return len(counts) >= 2 and n - counts.max() >= k


def _standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``reference`` and ``others`` z-scored by the reference's per-dimension mean and sd."""
    mean, sd = reference.mean(axis=0), reference.std(axis=0)
    # A (near-)constant real dimension keeps its raw scale: dividing by a rounding-error sd
    # would turn any sample's tiny difference there into a huge distance.
    sd = np.where(sd > 1e-12 * (1.0 + np.abs(mean)), sd, 1.0)
    return [(x - mean) / sd for x in (reference, *others)]


def _blocks(n_rows: int, n_columns: int):
    """Slices over ``n_rows`` so that a block times ``n_columns`` stays near ``_BLOCK_ENTRIES``."""
    step = max(1, _BLOCK_ENTRIES // max(1, n_columns))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _kth_neighbour_distance(x: np.ndarray, k: int, groups: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` distance of every row to its k-th nearest other row (of another group, given groups)."""
    radii = np.empty(len(x))
    for block in _blocks(len(x), len(x)):
        d = cdist(x[block], x)
        if groups is None:
            # Each row's own zero distance is the smallest, so the k-th other row is at index k.
            radii[block] = np.partition(d, k, axis=1)[:, k]
        else:
            d[groups[block][:, None] == groups[None, :]] = np.inf  # the row itself goes with its group
            radii[block] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def _inside(distances: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether points lie in open balls, a point on a centre counting even for a zero radius."""
    return (distances < radii) | (distances == 0.0)


def _figures(real: np.ndarray, real_radii: np.ndarray, synthetic: np.ndarray, synthetic_radii: np.ndarray,
             k: int) -> dict:
    """The four figures of ``synthetic`` against ``real``, both sets' ball radii given."""
    in_real_balls = np.zeros(len(synthetic), int)  # per sample: how many real balls hold it
    recalled = np.zeros(len(real), bool)  # per real point: inside some sample's ball
    covered = np.zeros(len(real), bool)  # per real ball: holds some sample
    for block in _blocks(len(synthetic), len(real)):
        d = cdist(real, synthetic[block])  # (N, block)
        inside_real = _inside(d, real_radii[:, None])
        in_real_balls[block] = inside_real.sum(axis=0)
        covered |= inside_real.any(axis=1)
        recalled |= _inside(d, synthetic_radii[block][None, :]).any(axis=1)
    return {"precision": float(np.mean(in_real_balls > 0)), "recall": float(np.mean(recalled)),
            "density": float(np.mean(in_real_balls) / k), "coverage": float(np.mean(covered))}


def _spread(values) -> dict:
    """``baselines.spread`` plus min, max and mean, for figures drawn over a few splits."""
    out = spread(values)
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()))
    return out


def _possible_splits(n_subjects: int) -> int:
    """Ways to choose the reference half: ⌈n/2⌉ of ``n_subjects`` subjects.

    Exact when subjects hold equal slice counts (``split_by_group`` then gives the reference
    half the extra subject of an odd count); it balances slices, so with unequal counts it
    reaches a different, usually smaller, set of halvings.

    >>> _possible_splits(4), _possible_splits(5), _possible_splits(12)
    (6, 10, 924)
    """
    return math.comb(n_subjects, n_subjects // 2)
