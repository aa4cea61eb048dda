"""Memorisation: whether a synthetic sample is a near-copy of one training slice.

The rule is the nearest-neighbour distance **ratio**.  For each sample, ``d1`` is its distance to
the nearest training slice and ``d2`` its distance to the nearest training slice of a
*different subject* than that one; the ratio is ``d1 / d2``.  A copy of a training slice is far
closer to its source than to anyone else (ratio near 0), while a new person, a blur or an
average of people is about as close to several people (ratio near 1).  Slices of the source's
own subject are never in the denominator, so a copy's neighbouring slices cannot hide it.

Distances are root-mean-square pixel differences made invariant to what does not undo copying:
the minimum over shifts of up to ±2 px in each direction and over a left-right mirror (columns
reversed).  Every transform compares the same central ``(H - 4, W - 4)`` window of the training
slice, so no zero fill enters the distance; each transform is one matrix product.  Both sides
are smoothed first (Gaussian, sigma 1 px): a lightly blurred copy differs from its source in
fine detail, another person in anatomy, which the smoothing keeps.  Images larger than 64 px
are compared as block means of about 64 px (128 px: 2x2 blocks), so the cost stays that of
64 px and the shifts, like the anatomy they move, are in pixels of that size.

The threshold comes from real strangers: the same ratio for real slices of subjects never trained
on (``reference``, the held-out subjects) against the training slices, pooled with each training
subject in turn against the *other* training subjects.  A sample is a near-copy when its ratio
is below the lowest stranger's: no real person we measured was that much closer to one
training subject than to every other.  The real baseline is the same rule on the held-out
slices, each subject judged with the threshold of the other strangers.

On the planted cases (:func:`planted_report`, ``bench/near_copies.py``) copies moved 1-2 px or
mirrored score ratios near 0 and light blurs (sigma 0.5-0.7 px) up to about 0.5, while strangers,
blurred strangers and averages of 4 look-alike training slices stay above about 0.65; the
thresholds, 0.52 (demo) and 0.61 (real_dev), fall between.

The plain-RMS rule of earlier versions (:func:`rms_distances`, :func:`nearest_neighbours`,
:func:`copy_threshold`: closer than the closest two training slices of different subjects)
counted blurry samples as copies and missed shifted or mirrored ones; it is kept for the
Review page's nearest-slice grid.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

__all__ = [
    "MAX_SHIFT", "SMOOTH", "MAX_SIZE", "RULE", "rms_distances", "nearest_neighbours", "copy_threshold",
    "invariant_distances", "copy_ratios", "ratio_threshold", "memorisation_report", "PLANTED_COPIES",
    "planted_copies", "planted_report",
]

#: Largest shift (pixels, each direction) under which a copy is still a copy.
MAX_SHIFT = 2
#: Gaussian sigma (pixels) both sides are smoothed with before the distances: a blurred copy
#: differs from its source mostly in fine detail, another person in anatomy, which survives it.
SMOOTH = 1.0
#: Images larger than this (pixels) are compared block-averaged down to about this size.
MAX_SIZE = 64
RULE = ("near-copy = nearest-neighbour distance ratio (nearest training slice / nearest training slice "
        "of another subject; RMS after a 1-px smoothing, minimum over shifts of up to ±2 px and a left-right "
        "mirror) below the "
        "lowest ratio of real strangers (held-out subjects against the training slices, and each training "
        "subject against the other training subjects)")


def _stack(images, name) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise UserError(f"{name} must be (N, H, W) images, got shape {array.shape}")
    return array


def _flat(images, name) -> np.ndarray:
    array = _stack(images, name)
    return array.reshape(len(array), -1)


def rms_distances(a, b, chunk: int = 512) -> np.ndarray:
    """Root-mean-square pixel distance between every image of ``a`` and of ``b``: ``(N, M)``."""
    a, b = _flat(a, "a"), _flat(b, "b")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"image sizes differ: {a.shape[1]} and {b.shape[1]} pixels")
    b2 = (b**2).sum(1)
    out = np.empty((len(a), len(b)), np.float32)
    for s in range(0, len(a), chunk):
        x = a[s:s + chunk]
        d2 = (x**2).sum(1)[:, None] + b2[None, :] - 2 * x @ b.T
        out[s:s + chunk] = np.sqrt(np.maximum(d2, 0) / a.shape[1])
    return out


def nearest_neighbours(samples, train) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``train`` of each sample's nearest slice and its plain RMS distance, both ``(N,)``."""
    d = rms_distances(samples, train)
    index = d.argmin(1)
    return index, d[np.arange(len(d)), index]


def copy_threshold(train, subjects, max_images: int = 2000, seed: int = 0) -> float:
    """Smallest plain RMS distance between two training slices of different subjects."""
    subjects = np.asarray(subjects)
    if len(set(subjects.tolist())) < 2:
        raise UserError("the near-copy threshold needs training slices of at least 2 subjects")
    train = np.asarray(train)
    if len(train) > max_images:  # keep the pairwise matrix small on big datasets
        keep = np.sort(np.random.default_rng(seed).choice(len(train), max_images, replace=False))
        train, subjects = train[keep], subjects[keep]
    d = rms_distances(train, train)
    d[subjects[:, None] == subjects[None, :]] = np.inf
    return float(d.min())


def _smoothed(images, sigma: float) -> np.ndarray:
    if not sigma:
        return images
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(_stack(images, "images"), (0, sigma, sigma), mode="nearest")


def _transforms(max_shift: int, mirror: bool) -> list[tuple[bool, int, int]]:
    shifts = range(-max_shift, max_shift + 1)
    return [(m, dy, dx) for m in ((False, True) if mirror else (False,)) for dy in shifts for dx in shifts]


def invariant_distances(a, b, max_shift: int = MAX_SHIFT, mirror: bool = True,
                        return_transform: bool = False):
    """RMS distance between every image of ``a`` and of ``b``, minimised over shifts and a mirror.

    For each pair, the central ``(H - 2s, W - 2s)`` window of ``b``'s image (``s = max_shift``) is
    compared with every window of the same size of ``a``'s image, moved by ``dy, dx`` in
    ``[-s, s]``, and of its mirror image (columns reversed) when ``mirror``; the distance is the
    smallest RMS difference.  One matrix product per transform keeps it fast.

    Args:
        a: ``(N, H, W)`` images (e.g. samples); they are the ones moved.
        b: ``(M, H, W)`` images (e.g. training slices).
        max_shift: largest shift in pixels, each direction; 0 for none.
        mirror: also compare ``a``'s images mirrored left-right.
        return_transform: also return, per pair, the index into the transform list
            ``[(mirrored, dy, dx), ...]`` that gave the minimum (see :func:`copy_ratios`).

    Returns:
        ``(N, M)`` float32 distances (and ``(N, M)`` int16 transform indices).

    >>> x = np.zeros((1, 10, 10), np.float32); x[0, 5, 4] = 1.0
    >>> moved = np.roll(x, (2, -1), axis=(1, 2))
    >>> float(invariant_distances(moved, x)[0, 0]), float(invariant_distances(x[:, :, ::-1], x)[0, 0])
    (0.0, 0.0)
    >>> round(float(invariant_distances(moved, x, max_shift=0)[0, 0]), 4)  # plain RMS: 2 of 100 pixels differ
    0.1414
    """
    a, b = _stack(a, "a"), _stack(b, "b")
    if a.shape[1:] != b.shape[1:]:
        raise UserError(f"image sizes differ: {a.shape[1:]} and {b.shape[1:]}")
    s = int(max_shift)
    height, width = a.shape[1:]
    if s < 0 or 2 * s >= min(height, width):
        raise ValueError(f"max_shift must be 0 to {(min(height, width) - 1) // 2} for {height}x{width} images, got {s}")
    core = b[:, s:height - s, s:width - s].reshape(len(b), -1)
    pixels = core.shape[1]
    core2 = np.einsum("ij,ij->i", core, core)
    best = np.full((len(a), len(b)), np.inf, np.float32)
    which = np.zeros((len(a), len(b)), np.int16) if return_transform else None
    for k, (mirrored, dy, dx) in enumerate(_transforms(s, mirror)):
        source = a[:, :, ::-1] if mirrored else a
        window = np.ascontiguousarray(source[:, s + dy:height - s + dy, s + dx:width - s + dx]).reshape(len(a), -1)
        d2 = np.einsum("ij,ij->i", window, window)[:, None] + core2[None, :] - 2 * (window @ core.T)
        if which is not None:
            which[d2 < best] = k
        np.minimum(best, d2, out=best)
    out = np.sqrt(np.maximum(best, 0) / pixels)
    return (out, which) if return_transform else out


def _working(images, smooth: float, max_size: int) -> np.ndarray:
    """Images smoothed and block-averaged by the largest whole factor that keeps ``max_size`` px."""
    images = _stack(images, "images")
    factor = max(1, min(images.shape[1:]) // int(max_size)) if max_size else 1
    images = _smoothed(images, smooth * factor)
    if factor == 1:
        return images
    n, height, width = images.shape
    x = images[:, :height // factor * factor, :width // factor * factor]
    return x.reshape(n, height // factor, factor, width // factor, factor).mean(axis=(2, 4))


def _working_size(images, max_size: int | None) -> int:
    side = min(np.shape(images)[1:3])
    return side // max(1, side // int(max_size)) if max_size else side


def copy_ratios(samples, train, subjects, max_shift: int = MAX_SHIFT, mirror: bool = True,
                smooth: float = SMOOTH, max_size: int | None = MAX_SIZE, exclude_subjects=None) -> dict:
    """Each sample's nearest training slice, nearest other-subject slice and their distance ratio.

    Args:
        samples: ``(N, H, W)`` images to judge.
        train: ``(M, H, W)`` training slices.
        subjects: ``(M,)`` subject id of each training slice; at least 2 subjects.
        max_shift, mirror: the invariances of :func:`invariant_distances`.
        smooth: Gaussian sigma in pixels that samples and training slices are smoothed with
            first (0 for none).
        max_size: images larger than this are compared block-averaged by the largest whole
            factor that keeps at least ``max_size`` px (128 px: 2x2 blocks), so shifts, sigma
            and distances are in pixels of that size and the cost does not grow with the
            resolution; None compares at full size.
        exclude_subjects: ``(N,)`` subject ids (or None): training slices of sample ``i``'s
            subject are left out for it, so a training slice can be judged as a stranger
            against the other training subjects.

    Returns:
        ``{"ratio", "nearest_index", "nearest_distance", "other_index", "other_distance",
        "transform"}``: ``(N,)`` arrays; ``transform`` is ``(mirrored, dy, dx)`` per sample that
        matched its nearest slice.  A ratio is 1 when both distances are 0 (a sample equal to
        slices of two subjects copies no one in particular).

    >>> x = np.zeros((4, 10, 10), np.float32); x[:, 3:7, 3:7] = 1; x[1:, 4, 4] = 0.5; x[3, 5, 5] = 0.5
    >>> out = copy_ratios(x[3:], x[:3], ["a", "b", "b"], smooth=0)  # nearest: x[1] and x[2], both of b
    >>> out["nearest_index"].tolist(), out["other_index"].tolist(), round(float(out["ratio"][0]), 3)
    ([1], [0], 0.707)
    """
    samples, train = _stack(samples, "samples"), _stack(train, "train")
    subjects = np.asarray([str(s) for s in subjects])
    if len(subjects) != len(train):
        raise UserError(f"{len(subjects)} subject ids for {len(train)} training slices")
    names, codes = np.unique(subjects, return_inverse=True)
    if len(names) < 2:
        raise UserError("the near-copy threshold needs training slices of at least 2 subjects")
    d, which = invariant_distances(_working(samples, smooth, max_size), _working(train, smooth, max_size),
                                   max_shift, mirror, return_transform=True)
    if exclude_subjects is not None:
        exclude = np.asarray([str(s) for s in exclude_subjects])
        if len(exclude) != len(samples):
            raise UserError(f"{len(exclude)} excluded subjects for {len(samples)} samples")
        d[exclude[:, None] == subjects[None, :]] = np.inf
    rows = np.arange(len(samples))
    # Each subject's nearest slice per sample; the two nearest subjects give d1 and d2.
    per_subject = np.stack([d[:, codes == k].min(1) for k in range(len(names))], axis=1)
    order = np.argsort(per_subject, axis=1, kind="stable")
    if not np.isfinite(per_subject[rows, order[:, 1]]).all():
        raise UserError("the near-copy ratio needs training slices of at least 2 subjects besides the sample's own")
    nearest = np.where(codes[None, :] == order[:, :1], d, np.inf).argmin(1)
    other = np.where(codes[None, :] == order[:, 1:2], d, np.inf).argmin(1)
    d1, d2 = d[rows, nearest], d[rows, other]
    ratio = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1), 1.0)
    moves = _transforms(max_shift, mirror)
    return {"ratio": ratio.astype(np.float64), "nearest_index": nearest, "nearest_distance": d1,
            "other_index": other, "other_distance": d2,
            "transform": [moves[k] for k in which[rows, nearest]]}


def ratio_threshold(stranger_ratios) -> float:
    """The near-copy threshold: the lowest ratio of the real strangers (a ratio below it is a copy).

    >>> ratio_threshold([0.8, 0.62, 0.95])
    0.62
    """
    ratios = np.asarray(stranger_ratios, dtype=np.float64)
    if ratios.size == 0:
        raise UserError("the near-copy threshold needs at least one real stranger's slice")
    return float(ratios.min())


def _leave_one_subject_out(ratios, subjects) -> tuple[np.ndarray, dict]:
    """Each stranger judged with the threshold of the *other* strangers: flags and thresholds.

    >>> flags, thresholds = _leave_one_subject_out(np.array([0.5, 0.6, 0.9, 0.95]), ["a", "a", "b", "c"])
    >>> flags.tolist(), thresholds
    ([True, True, False, False], {'a': 0.9, 'b': 0.5, 'c': 0.5})
    """
    subjects = np.asarray([str(s) for s in subjects])
    flags, thresholds = np.zeros(len(ratios), bool), {}
    for name in np.unique(subjects):
        own = subjects == name
        if own.all():
            continue  # one stranger subject: nobody else to set its threshold
        thresholds[str(name)] = ratio_threshold(ratios[~own])
        flags[own] = ratios[own] < thresholds[str(name)]
    return flags, thresholds


class _Strangers:
    """The ratios of real strangers, their subjects and which of them are reference slices.

    Two kinds of real stranger are pooled: reference slices (subjects never trained on) against
    all training slices, and training slices against the training slices of the *other*
    training subjects (each training subject left out in turn; up to ``max_training`` of
    them, drawn at random).  The lowest ratio of a handful of subjects is a noisy estimate of
    how low a real person's ratio goes (demo cohort: 0.60 for its 5 test subjects, 0.52 for its
    17 training subjects; real_dev: 0.84 and 0.61), and a threshold set too high counts averages
    of look-alikes and real strangers as copies; pooling the subjects we have lowers that noise.
    """

    def __init__(self, train, subjects, reference, reference_subjects, max_shift, mirror, smooth,
                 max_training: int = 512, seed: int = 0):
        ratios, ids, is_reference, sources = [], [], [], []
        if reference is not None:
            if reference_subjects is None:
                raise UserError("reference slices need their subject ids (reference_subjects)")
            reference = _stack(reference, "reference")
            reference_subjects = [str(s) for s in reference_subjects]
            if len(reference_subjects) != len(reference):
                raise UserError(f"{len(reference_subjects)} subject ids for {len(reference)} reference slices")
            shared = sorted(set(reference_subjects) & {str(s) for s in subjects})
            if shared:
                raise UserError(f"reference subjects must not be training subjects; shared: {shared[:3]}")
            if len(reference):
                ratios.append(copy_ratios(reference, train, subjects, max_shift, mirror, smooth)["ratio"])
                ids += reference_subjects
                is_reference += [True] * len(reference)
                sources.append("held-out real subjects against the training slices")
        subjects = np.asarray([str(s) for s in subjects])
        if len(np.unique(subjects)) >= 3:  # a left-out subject still leaves two others
            pick = np.arange(len(train))
            if len(pick) > max_training:
                pick = np.sort(np.random.default_rng(seed).choice(len(train), max_training, replace=False))
            ratios.append(copy_ratios(np.asarray(train)[pick], train, subjects, max_shift, mirror,
                                      smooth, exclude_subjects=subjects[pick])["ratio"])
            ids += subjects[pick].tolist()
            is_reference += [False] * len(pick)
            sources.append("training subjects against the other training subjects")
        if not ratios:
            raise UserError("the near-copy threshold needs held-out real slices or training slices of at least "
                            "3 subjects")
        self.ratios, self.subjects = np.concatenate(ratios), ids
        self.is_reference, self.sources = np.asarray(is_reference, bool), sources
        self.threshold = ratio_threshold(self.ratios)
        self.flags, self.thresholds = _leave_one_subject_out(self.ratios, self.subjects)

    def summary(self) -> dict:
        """Quantiles of the pooled ratios; per kind of stranger its lowest ratio and, each subject
        judged with the threshold of the other strangers, its near-copy count and fraction."""
        out = {"n": int(len(self.ratios)), "n_subjects": len(set(self.subjects)), "sources": self.sources,
               "ratio_quantiles": _quantiles(self.ratios),
               "meaning": "real strangers under the same rule, each subject judged with the threshold of the "
                          "other strangers"}
        for key, part in (("reference", self.is_reference), ("training", ~self.is_reference)):
            if part.any():
                out[key] = {"n": int(part.sum()), "n_subjects": len({s for s, p in zip(self.subjects, part) if p}),
                            "ratio_min": round(float(self.ratios[part].min()), 4),
                            "near_copies": int(self.flags[part].sum()),
                            "near_copy_fraction": float(self.flags[part].mean())}
        return out


def _quantiles(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {f"p{q:02d}": round(float(np.percentile(values, q)), 4) for q in (0, 1, 5, 50)}


def memorisation_report(samples, train, subjects, reference=None, reference_subjects=None, *,
                        max_shift: int = MAX_SHIFT, mirror: bool = True, smooth: float = SMOOTH) -> dict:
    """Near-copies of training slices among ``samples`` by the distance-ratio rule.

    Args:
        samples: ``(N, H, W)`` images to judge.
        train, subjects: the training slices and the subject id of each (at least 2 subjects).
        reference, reference_subjects: real slices of subjects never trained on, and their
            subject ids: strangers whose ratios set the threshold, beside each training subject
            against the others (with 3 or more training subjects).
        max_shift, mirror, smooth: the invariances of the distance (:func:`copy_ratios`).

    Returns:
        ``{near_copies, near_copy_fraction, threshold, ratio, nearest_index, nearest_distance,
        other_index, other_distance, nearest_transform, rule, invariances, strangers, ...}``;
        ``strangers`` describes the real strangers and, each stranger subject judged with the
        threshold of the other strangers, how many the rule calls copies (``strangers.reference``
        for the reference slices: the real baseline of ``near_copy_fraction``).
    """
    found = copy_ratios(samples, train, subjects, max_shift, mirror, smooth)
    strangers = _Strangers(train, subjects, reference, reference_subjects, max_shift, mirror, smooth)
    flags = found["ratio"] < strangers.threshold
    distance = found["nearest_distance"]
    return {
        "rule": "nearest_neighbour_distance_ratio",
        "meaning": RULE,
        "invariances": {"max_shift_px": int(max_shift), "mirror_left_right": bool(mirror),
                        "smoothing_sigma_px": float(smooth), "compared_at_px": _working_size(train, MAX_SIZE),
                        "distance": "RMS over the central window after smoothing (and block averaging to "
                                    "compared_at_px), minimum over the transforms; pixels of that size"},
        "threshold": strangers.threshold,
        "near_copies": int(flags.sum()), "near_copy_fraction": float(flags.mean()) if len(flags) else 0.0,
        "near_copy_index": np.flatnonzero(flags).tolist(),
        "ratio": [round(float(r), 4) for r in found["ratio"]],
        "ratio_quantiles": _quantiles(found["ratio"]),
        "nearest_index": found["nearest_index"].tolist(),
        "nearest_distance": [round(float(d), 5) for d in distance],
        "nearest_distance_median": float(np.median(distance)), "nearest_distance_min": float(distance.min()),
        "nearest_transform": [{"mirrored": bool(m), "dy": int(dy), "dx": int(dx)} for m, dy, dx in found["transform"]],
        "other_index": found["other_index"].tolist(),
        "other_distance": [round(float(d), 5) for d in found["other_distance"]],
        "strangers": strangers.summary(),
    }


# ------------------------------------------------------------------------------ planted cases
def _shifted(image, dy, dx):
    out = np.zeros_like(image)
    height, width = image.shape
    out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        image[max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return out


def _blurred(images, sigma):
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(x, sigma, mode="nearest") for x in images]).astype(np.float32)


#: name -> (description, whether the case is a copy of a training slice).
PLANTED_COPIES = {
    "shift1": ("a training slice moved 1 px (random direction, zero fill)", True),
    "shift2": ("a training slice moved 2 px in one or both directions (zero fill)", True),
    "mirror": ("a training slice mirrored left-right", True),
    "blur": ("a training slice blurred, Gaussian sigma 0.5-0.7 px", True),
    "disguised": ("a training slice mirrored, moved 1 px and blurred (sigma 0.5 px)", True),
    "stranger": ("an untouched held-out slice (a subject never trained on)", False),
    "stranger_blur": ("a held-out slice blurred, Gaussian sigma 0.5-0.7 px", False),
    "stranger_heavy_blur": ("a held-out slice blurred, Gaussian sigma 2 px (a blurry VAE's sample)", False),
    "train_mean": ("the mean of a training slice and its 3 nearest slices of 3 other training subjects", False),
}


def planted_copies(train, subjects, heldout, heldout_subjects, n: int = 64, seed: int = 0) -> dict:
    """Planted near-copy cases: copies of training slices in disguise, and strangers that are not.

    Args:
        train, subjects: the training slices ``(M, H, W)`` and their subject ids.
        heldout, heldout_subjects: real slices of subjects never trained on and their ids.
        n: images per case (fewer when there are fewer slices to draw from).
        seed: random choice of slices, directions and blur widths.

    Returns:
        ``{case: {"images": (n, H, W) float32, "copy": bool, "description": str,
        "source_subjects": [id per image]}}`` for each case of :data:`PLANTED_COPIES`; a copy
        case's source subject is a training subject, a stranger case's a held-out one.
    """
    train, heldout = _stack(train, "train"), _stack(heldout, "heldout")
    subjects, heldout_subjects = np.asarray([str(s) for s in subjects]), [str(s) for s in heldout_subjects]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), min(n, len(train)), replace=False))
    strangers = np.sort(rng.choice(len(heldout), min(n, len(heldout)), replace=False))
    sources = train[pick]
    ones = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    twos = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if (dy, dx) != (0, 0)]
    images = {
        "shift1": np.stack([_shifted(x, *ones[rng.integers(len(ones))]) for x in sources]),
        "shift2": np.stack([_shifted(x, *twos[rng.integers(len(twos))]) for x in sources]),
        "mirror": sources[:, :, ::-1],
        "blur": np.stack([_blurred(x[None], rng.uniform(0.5, 0.7))[0] for x in sources]),
        "disguised": _blurred(np.stack([_shifted(x[:, ::-1], *ones[rng.integers(len(ones))]) for x in sources]), 0.5),
        "stranger": heldout[strangers],
        "stranger_blur": np.stack([_blurred(x[None], rng.uniform(0.5, 0.7))[0] for x in heldout[strangers]]),
        "stranger_heavy_blur": _blurred(heldout[strangers], 2.0),
    }
    # A blurry decoder's average of look-alikes: each source with its nearest slice (plain RMS) of
    # each of 3 other subjects.
    d = rms_distances(sources, train)
    means = []
    for row, source_index in zip(d, pick):
        chosen, seen = [source_index], {subjects[source_index]}
        for j in np.argsort(row):
            if subjects[j] not in seen:
                chosen.append(j)
                seen.add(subjects[j])
            if len(chosen) == 4:
                break
        means.append(train[chosen].mean(0))
    images["train_mean"] = np.stack(means)
    source_subjects = {name: subjects[pick].tolist() for name in images}
    for name in ("stranger", "stranger_blur", "stranger_heavy_blur"):
        source_subjects[name] = [heldout_subjects[i] for i in strangers]
    return {name: {"images": np.ascontiguousarray(images[name], dtype=np.float32), "copy": PLANTED_COPIES[name][1],
                   "description": PLANTED_COPIES[name][0], "source_subjects": source_subjects[name]}
            for name in PLANTED_COPIES}


def planted_report(train, subjects, heldout, heldout_subjects, n: int = 64, seed: int = 0,
                   max_shift: int = MAX_SHIFT, mirror: bool = True, smooth: float = SMOOTH) -> dict:
    """The near-copy rule on :func:`planted_copies`: the fraction flagged per case.

    The strangers are those of :func:`memorisation_report` with the held-out slices as its
    reference.  A case made from a held-out slice is judged with the threshold of the strangers
    *other* than its subject, as the evaluation's real baseline is: no stranger sets its own
    threshold.

    Returns:
        ``{"threshold", "cases": {case: {"flagged_fraction", "n", "copy", "description",
        "ratio_median", "ratio_max"}}, "strangers": {...}}``.
    """
    train = _stack(train, "train")
    cases = planted_copies(train, subjects, heldout, heldout_subjects, n=n, seed=seed)
    strangers = _Strangers(train, subjects, heldout, heldout_subjects, max_shift, mirror, smooth, seed=seed)
    everything = np.concatenate([case["images"] for case in cases.values()])
    ratios = copy_ratios(everything, train, subjects, max_shift, mirror, smooth)["ratio"]
    out, start = {}, 0
    for name, case in cases.items():
        r = ratios[start:start + len(case["images"])]
        start += len(case["images"])
        if name.startswith("stranger"):
            limits = np.array([strangers.thresholds.get(s, strangers.threshold) for s in case["source_subjects"]])
        else:
            limits = np.full(len(r), strangers.threshold)
        flags = r < limits
        out[name] = {"flagged_fraction": float(flags.mean()), "n": int(len(r)), "copy": case["copy"],
                     "description": case["description"], "ratio_median": round(float(np.median(r)), 4),
                     "ratio_min": round(float(r.min()), 4), "ratio_max": round(float(r.max()), 4)}
    return {"threshold": strangers.threshold, "cases": out, "strangers": strangers.summary()}
