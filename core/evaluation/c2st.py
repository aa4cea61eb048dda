"""Classifier two-sample test: can a small CNN tell real slices from synthetic ones?

The real side is slices of subjects the classifier's scoring part never trained on: the real
slices are split **by subject** into k folds (up to 5), the synthetic samples (independent
draws) at random, or by group when they have one (planted cases made from real subjects).  Two
classifiers, a small CNN and a logistic regression on per-slice statistics, are trained on k-1
folds of each side and score the last, for every fold in turn (cross-fitting), so every image
is scored once by classifiers that never saw its subject; the headline is the better of the two.

Each training runs to convergence: early stopping on the classifier's own validation part
(again split by subject), best weights restored, so a figure of 0.5 means "not told apart by a
trained classifier", not "the classifier had no time to learn".  The scored set is balanced
(the larger side subsampled), so chance is exactly 0.5 and the accuracy is a proportion with
a Wilson interval.

Why not the model's training slices as the real side: a model that reproduces its training
slices would then score 0.5 by construction.  :func:`memorisation_gap` runs the same test
against training slices beside the held-out one; a held-out accuracy well above the
training-slice accuracy is a memorisation signal.
"""

from __future__ import annotations

import warnings

import numpy as np

from core.errors import UserError
from core.evaluation.metrics import image_stack

__all__ = ["classifier_two_sample_test", "embedding_two_sample_test", "subject_bootstrap_interval", "split_by_group",
           "memorisation_gap", "beyond_real", "fit_group_logistic", "C2ST_MEANING", "EMBEDDING_C2ST_MEANING"]

EMBEDDING_C2ST_MEANING = ("balanced accuracy of a linear classifier (shrinkage LDA) telling real from synthetic in the anatomy-aware "
                          "feature space (core.evaluation.embedding), scored on subjects it never trained on: "
                          "0.5 = indistinguishable anatomy, 1.0 = every synthetic slice spotted")
C2ST_MEANING = ("accuracy of a CNN trained to convergence at telling real from synthetic, scored on subjects "
                "it never trained on: 0.5 = indistinguishable, 1.0 = every synthetic slice spotted")


def split_by_group(groups, n_folds: int = 2, seed: int = 0) -> np.ndarray:
    """Fold number of every item, whole groups kept together, folds as equal in items as possible.

    Groups are shuffled with ``seed`` and each goes to the fold that holds the fewest items
    so far (largest groups first), so two folds of 12 subjects differ by at most one
    subject's slices.

    >>> split_by_group(["a", "a", "b", "b", "c", "d"], seed=0).tolist().count(0)
    3
    >>> folds = split_by_group(["a", "a", "b", "b", "c", "d"], seed=0)
    >>> bool(folds[0] == folds[1] and folds[2] == folds[3])
    True
    """
    groups = np.asarray([str(g) for g in groups])
    names = np.unique(groups)
    if len(names) < n_folds:
        raise UserError(f"splitting by subject into {n_folds} parts needs at least {n_folds} subjects, "
                        f"got {len(names)}")
    rng = np.random.default_rng(seed)
    names = names[rng.permutation(len(names))]
    sizes = {name: int((groups == name).sum()) for name in names}
    # Stable sort by size keeps the shuffled order among equal sizes.
    names = sorted(names, key=lambda name: -sizes[name])
    load = np.zeros(n_folds, int)
    fold_of = {}
    for name in names:
        fold = int(np.argmin(load))
        fold_of[name] = fold
        load[fold] += sizes[name]
    return np.array([fold_of[g] for g in groups], int)


def slice_statistics(images) -> np.ndarray:
    """``(N, 24)`` per-slice statistics that low-level generator failures move, float32.

    - foreground intensity quantiles (5 … 95 %): contrast and gamma;
    - mean absolute Laplacian of the foreground at full and half resolution, and the ratio
      of the two: sharpness and blur;
    - the noise floor: mean absolute Laplacian and mean intensity of the 4-px border band;
    - foreground fraction, intensity centroid (row, column), and the first and last rows and
      columns whose mean exceeds a tenth of the slice's brightest: position and size.
    """
    from scipy import ndimage

    x = np.clip(image_stack(images), 0.0, 1.0).astype(np.float64)
    n, h, w = x.shape
    lap = np.abs(ndimage.laplace(x, mode="nearest") if n == 0 else
                 np.stack([ndimage.laplace(im, mode="nearest") for im in x]))
    half = 0.25 * (x[:, 0:h - h % 2:2, 0:w - w % 2:2] + x[:, 1::2, 0:w - w % 2:2][:, : h // 2]
                   + x[:, 0:h - h % 2:2, 1::2][:, :, : w // 2] + x[:, 1::2, 1::2][:, : h // 2, : w // 2])
    lap_half = np.abs(np.stack([ndimage.laplace(im, mode="nearest") for im in half]))
    border = np.zeros((h, w), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    rows, cols = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    out = np.zeros((n, 24), np.float64)
    for i in range(n):
        im = x[i]
        fg = im > 0.1
        fg_half = half[i] > 0.1
        values = im[fg] if fg.any() else np.zeros(1)
        sharp = lap[i][fg].mean() if fg.any() else 0.0
        sharp_half = lap_half[i][fg_half].mean() if fg_half.any() else 0.0
        mass = im.sum() + 1e-8
        row_mean, col_mean = im.mean(1), im.mean(0)
        peak = max(row_mean.max(), col_mean.max(), 1e-8)
        on_rows, on_cols = np.flatnonzero(row_mean > 0.1 * peak), np.flatnonzero(col_mean > 0.1 * peak)
        extent = [on_rows[0], on_rows[-1], on_cols[0], on_cols[-1]] if len(on_rows) and len(on_cols) else [0, 0, 0, 0]
        out[i] = [*np.percentile(values, [5, 10, 25, 50, 75, 90, 95]), values.mean(), values.std(),
                  sharp, sharp_half, sharp / (sharp_half + 1e-6),
                  lap[i][border].mean(), im[border].mean(), np.percentile(im[border], 90),
                  fg.mean(), (im.sum(1) * rows).sum() / mass, (im.sum(0) * cols).sum() / mass,
                  *extent, lap[i].mean(), np.percentile(lap[i][fg], 90) if fg.any() else 0.0]
    return np.nan_to_num(out).astype(np.float32)


def _build_cnn(shape, seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    image = keras.Input(tuple(shape) + (1,), name="image")
    # Strided convolutions to an 8x8 map, then a dense layer on the flattened map: unlike global
    # pooling, the dense layer sees *where* things are, so a shifted or resized head is visible.
    x = image
    size, width = shape[0], 16
    while size > 8:
        x = layers.LeakyReLU(0.2)(layers.Conv2D(width, 3, strides=2, padding="same")(x))
        size, width = -(-size // 2), min(width * 2, 64)
    x = layers.LeakyReLU(0.2)(layers.Conv2D(16, 1)(x))
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    output = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(image, output)


def _validation_part(y, groups, seed, fraction) -> np.ndarray:
    """Which fit items form the early-stopping validation part: whole groups when there are
    enough of them, else a random part of the slices; both classes on both sides."""
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    if len(unique) >= 4:
        chosen = set(rng.choice(unique, max(1, int(round(fraction * len(unique)))), replace=False).tolist())
        is_val = np.array([g in chosen for g in groups])
        if all(np.any(is_val & (y == c)) and np.any(~is_val & (y == c)) for c in (0, 1)):
            return is_val
    return rng.random(len(y)) < fraction


def _fit_cnn(x_fit, y_fit, is_val, seed, max_epochs, patience, batch_size, learning_rate):
    """The CNN trained to convergence: early stopping on the validation part, best weights kept."""
    import keras

    x_tr, y_tr, x_va, y_va = x_fit[~is_val], y_fit[~is_val], x_fit[is_val], y_fit[is_val]
    # Class weights instead of dropping images: the two sides rarely hold the same count.
    weight = {c: len(y_tr) / (2.0 * max(1, int((y_tr == c).sum()))) for c in (0, 1)}
    val_weight = np.where(y_va == 1, len(y_va) / (2.0 * max(1, (y_va == 1).sum())),
                          len(y_va) / (2.0 * max(1, (y_va == 0).sum())))
    model = _build_cnn(x_fit.shape[1:], seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  weighted_metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    history = model.fit(x_tr[..., None], y_tr, validation_data=(x_va[..., None], y_va, val_weight),
                        epochs=max_epochs, batch_size=batch_size, verbose=0, shuffle=True,
                        class_weight=weight, callbacks=[stop])
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    return model, {"epochs_run": len(losses), "best_epoch": best + 1, "best_val_loss": float(losses[best]),
                   "val_accuracy": float(history.history["val_accuracy"][best]),
                   "stopped_early": len(losses) < max_epochs, "n_fit": int(len(x_tr)), "n_val": int(len(x_va))}


def _cross_fit_folds(real_groups, n_synthetic: int, synthetic_groups, n_folds: int, seed: int, rng):
    """Group labels and fold numbers of the real then synthetic items of a cross-fitted test.

    Real slices are split by subject; independent samples at random (drawing from ``rng``),
    grouped ones (planted cases made of real people) by group."""
    real_fold = split_by_group(real_groups, n_folds, seed)
    if synthetic_groups is None:
        syn_groups = np.array([f"sample{i}" for i in range(n_synthetic)])
        syn_fold = rng.permutation(n_synthetic) % n_folds
    else:
        syn_groups = np.asarray([f"syn:{g}" for g in synthetic_groups])
        n_syn_groups = len(np.unique(syn_groups))
        if n_syn_groups < 2:
            raise UserError(f"grouped synthetic slices need at least 2 groups, got {n_syn_groups}")
        syn_fold = split_by_group(syn_groups, min(n_folds, n_syn_groups), seed + 1)
    groups = np.concatenate([np.array([f"real:{g}" for g in real_groups]), syn_groups])
    return groups, np.concatenate([real_fold, syn_fold])


def fit_group_logistic(s_fit, y_fit, groups_fit, seed, strengths=None, max_splits: int = 4):
    """L2 logistic regression on standardised features, its strength chosen by a
    cross-validation that keeps whole groups together (balanced classes).

    ``strengths``: the inverse strengths tried (default 11 from 1e-3 to 1e2); ``max_splits``:
    folds of that cross-validation."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_splits = int(min(max_splits, len(np.unique(groups_fit))))
    splits = [] if n_splits < 2 else [(a, b) for a, b in GroupKFold(n_splits).split(s_fit, y_fit, groups_fit)
                                      if len(np.unique(y_fit[a])) == 2]
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=np.logspace(-3, 2, 11) if strengths is None else strengths, cv=splits or 3, class_weight="balanced",
        scoring="neg_log_loss", max_iter=5000, random_state=seed))
    with warnings.catch_warnings():  # scikit-learn 1.8 announces a rename of the fitted attributes
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(s_fit, y_fit)
    return model


def classifier_two_sample_test(real, real_groups, synthetic, synthetic_groups=None, *, seed: int = 0,
                               max_epochs: int = 100, patience: int = 8, batch_size: int = 32,
                               learning_rate: float = 1e-3, validation_fraction: float = 0.25,
                               max_folds: int = 5) -> dict:
    """k-fold, subject-split classifier two-sample test of ``real`` against ``synthetic``.

    Args:
        real: ``(N, H, W)`` real slices, e.g. of the held-out subjects (the test split).
        real_groups: subject id of every real slice (at least 2 subjects).
        synthetic: ``(M, H, W)`` slices to tell apart from them (samples of a model, or a
            planted transform of other real subjects).
        synthetic_groups: a group per synthetic slice when they are not independent draws
            (e.g. slices of real subjects in a planted case); None for model samples.

    Returns:
        ``{accuracy, ci95, classifier, n_scored, p_value, auc, accuracy_real, accuracy_synthetic,
        classifiers: {cnn, statistics}, folds, n_folds, ...}``: the better classifier's accuracy on
        a balanced scored set (chance = 0.5) and its Wilson interval, and both classifiers' own.
    """
    from sklearn.metrics import roc_auc_score

    from core.evaluation.study_stats import binomial_test, wilson_interval

    real, synthetic = image_stack(real, "real slices"), image_stack(synthetic, "synthetic slices")
    if real.shape[1:] != synthetic.shape[1:]:
        raise UserError(f"real and synthetic slices differ in size: {real.shape[1:]} and {synthetic.shape[1:]}")
    real_groups = np.asarray([str(g) for g in real_groups])
    if len(real_groups) != len(real):
        raise UserError(f"{len(real_groups)} subject ids for {len(real)} real slices")
    if len(synthetic) < 8 or len(real) < 8:
        raise UserError(f"the two-sample test needs at least 8 slices a side, got {len(real)} real and "
                        f"{len(synthetic)} synthetic")
    rng = np.random.default_rng(seed)
    # As many folds as subjects allow, up to ``max_folds``: with two complementary halves, whatever
    # by-chance difference between subjects a classifier learns on one half is reversed on the
    # other, which drags a real-vs-real figure far below 0.5 (0.29 on 5 + 7 real heads).  With
    # k folds each classifier trains on (k-1)/k of the subjects and the reversal shrinks to 1/(k-1).
    n_folds = int(min(max_folds, len(np.unique(real_groups))))
    if n_folds < 2:
        raise UserError("the two-sample test scores subjects its classifier never saw: it needs real slices of "
                        f"at least 2 subjects, got {len(np.unique(real_groups))}")
    groups, fold = _cross_fit_folds(real_groups, len(synthetic), synthetic_groups, n_folds, seed, rng)

    x = np.concatenate([real, synthetic])
    y = np.r_[np.zeros(len(real)), np.ones(len(synthetic))].astype(np.float32)
    stats = slice_statistics(x)
    probability = {"cnn": np.full(len(x), np.nan), "statistics": np.full(len(x), np.nan)}
    folds = []
    for k in range(n_folds):
        fit, score = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        fold_seed = seed + 17 * k
        is_val = _validation_part(y[fit], groups[fit], fold_seed, validation_fraction)
        cnn, info = _fit_cnn(x[fit], y[fit], is_val, fold_seed, max_epochs, patience, batch_size, learning_rate)
        probability["cnn"][score] = np.asarray(cnn.predict(x[score][..., None], batch_size=256, verbose=0))[:, 0]
        # Per-slice statistics beside the CNN: with a hundred images a side a CNN does not learn
        # to measure blur, a noise floor or a gamma curve, which a linear model on them sees at once.
        linear = fit_group_logistic(stats[fit], y[fit], groups[fit], fold_seed)
        probability["statistics"][score] = linear.predict_proba(stats[score])[:, 1]
        info["statistics_c"] = float(linear[-1].C_[0])
        folds.append(info)

    # Balanced scored set: every image of the smaller side, as many drawn from the larger one.
    real_idx, syn_idx = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    n_side = min(len(real_idx), len(syn_idx))
    chosen = np.concatenate([np.sort(rng.choice(real_idx, n_side, replace=False)),
                             np.sort(rng.choice(syn_idx, n_side, replace=False))])
    classifiers = {}
    for name, p in probability.items():
        correct = (p[chosen] > 0.5) == (y[chosen] == 1)
        k = int(correct.sum())
        classifiers[name] = {"accuracy": k / len(correct), "correct": k,
                             # Slices of one subject are not independent: the interval resamples
                             # whole subjects (and independent samples one by one).
                             "ci95": [round(v, 4) for v in subject_bootstrap_interval(
                                 correct, y[chosen] == 1, groups[chosen], seed=seed)],
                             "ci95_wilson": [round(v, 4) for v in wilson_interval(k, len(correct))],
                             "auc": float(roc_auc_score(y, p)),
                             "accuracy_real": float(correct[:n_side].mean()),
                             "accuracy_synthetic": float(correct[n_side:].mean())}
    # The headline is the better of the two classifiers.  Taking the better of two raises the
    # figure a little under the null too, so it is only ever compared with a real-vs-real
    # baseline measured the same way (core.evaluation.run), never with 0.5 alone.
    best = max(classifiers, key=lambda name: classifiers[name]["accuracy"])
    head = classifiers[best]
    n = int(len(chosen))
    return {
        "accuracy": head["accuracy"], "ci95": head["ci95"], "classifier": best,
        "n_scored": n, "n_real": int(len(real)), "n_synthetic": int(len(synthetic)),
        "n_real_subjects": int(len(np.unique(real_groups))),
        "p_value": binomial_test(head["correct"], n, 0.5),
        "auc": head["auc"], "accuracy_real": head["accuracy_real"], "accuracy_synthetic": head["accuracy_synthetic"],
        "classifiers": classifiers,
        "classifiers_meaning": "cnn: a small CNN trained to convergence (early stopping on its own by-subject "
                               "validation part); statistics: L2 logistic regression on per-slice statistics "
                               "(intensity quantiles, sharpness, noise floor, position and extent)",
        "folds": folds,
        "n_folds": n_folds,
        "split": f"{n_folds}-fold cross-fitting, real slices split by subject"
                 + (", synthetic by group" if synthetic_groups is not None else ", synthetic at random"),
        "meaning": C2ST_MEANING,
    }


def subject_bootstrap_interval(correct, is_synthetic, groups, n_boot: int = 2000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a balanced accuracy, resampling whole groups (subjects) on each side.

    A Wilson interval counts 240 slices of 6 people as 240 independent trials and excludes
    chance when nothing differs; what varies from one study to the next is the *people*, so
    the bootstrap draws subjects with replacement (each side on its own, so both stay present)
    and recomputes the mean of the two sides' accuracies.  Independent samples are their own
    groups.

    >>> correct = np.array([1, 1, 0, 0, 1, 1, 1, 0], bool)
    >>> side = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    >>> lo, hi = subject_bootstrap_interval(correct, side, ["a", "a", "b", "b", "s1", "s2", "s3", "s4"])
    >>> bool(lo < 0.625 < hi), bool(lo <= 0.3)
    (True, True)
    """
    correct = np.asarray(correct, np.float64)
    is_synthetic = np.asarray(is_synthetic, bool)
    groups = np.asarray([str(g) for g in groups])
    rng = np.random.default_rng(seed)
    sides = []
    for side in (False, True):
        members = is_synthetic == side
        if not members.any():
            return (float("nan"), float("nan"))
        names, index = np.unique(groups[members], return_inverse=True)
        hits = np.bincount(index, weights=correct[members], minlength=len(names))
        counts = np.bincount(index, minlength=len(names)).astype(np.float64)
        draw = rng.integers(0, len(names), (n_boot, len(names)))
        sides.append(hits[draw].sum(1) / counts[draw].sum(1))
    balanced = 0.5 * (sides[0] + sides[1])
    tail = 100 * (1 - level) / 2
    return float(np.percentile(balanced, tail)), float(np.percentile(balanced, 100 - tail))


def _fit_shrinkage_lda(x, y):
    """Fisher's linear discriminant with Ledoit-Wolf shrinkage of the covariance, equal priors.

    Linear like a logistic regression, but its regularisation is computed, not searched by an
    inner cross-validation: a fit takes milliseconds, so the test can be repeated for real
    spreads and calibrations (a cross-validated logistic regression took ~1 s a fit)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto",
                                                                      priors=[0.5, 0.5])).fit(x, y)


def embedding_two_sample_test(real_features, real_groups, synthetic_features, synthetic_groups=None, *,
                              seed: int = 0, max_folds: int = 5, n_boot: int = 2000) -> dict:
    """Two-sample test in a learned feature space: cross-fitted, subject-split logistic regression.

    Args:
        real_features: ``(N, D)`` features of real slices (e.g. held-out subjects).
        real_groups: subject of every real slice (at least 2 subjects).
        synthetic_features: ``(M, D)`` features of the slices to tell apart from them.
        synthetic_groups: a group per synthetic slice when they are not independent draws
            (planted cases made from real subjects); None for model samples.

    Every item is scored once, by a linear classifier (shrinkage LDA) fitted on the other folds (real slices split by
    subject, as :func:`classifier_two_sample_test`); the figure is the balanced accuracy (chance
    0.5) with a :func:`subject_bootstrap_interval`.  A linear model on a fixed space fits in
    seconds, so this test can be run many times (real-vs-real spreads, calibration).

    Returns:
        ``{accuracy, ci95, auc, accuracy_real, accuracy_synthetic, n_real, n_synthetic,
        n_real_subjects, n_folds, split, meaning}``.
    """
    from sklearn.metrics import roc_auc_score

    real_features = np.asarray(real_features, np.float64)
    synthetic_features = np.asarray(synthetic_features, np.float64)
    if real_features.ndim != 2 or synthetic_features.ndim != 2 or real_features.shape[1] != synthetic_features.shape[1]:
        raise UserError(f"feature arrays must be (N, D) with one D, got {real_features.shape} and "
                        f"{synthetic_features.shape}")
    real_groups = np.asarray([str(g) for g in real_groups])
    if len(real_groups) != len(real_features):
        raise UserError(f"{len(real_groups)} subject ids for {len(real_features)} real slices")
    if len(real_features) < 8 or len(synthetic_features) < 8:
        raise UserError(f"the two-sample test needs at least 8 slices a side, got {len(real_features)} real and "
                        f"{len(synthetic_features)} synthetic")
    n_folds = int(min(max_folds, len(np.unique(real_groups))))
    if n_folds < 2:
        raise UserError("the two-sample test scores subjects its classifier never saw: it needs real slices of "
                        f"at least 2 subjects, got {len(np.unique(real_groups))}")
    rng = np.random.default_rng(seed)
    groups, fold = _cross_fit_folds(real_groups, len(synthetic_features), synthetic_groups, n_folds, seed, rng)
    x = np.nan_to_num(np.concatenate([real_features, synthetic_features]))
    y = np.r_[np.zeros(len(real_features)), np.ones(len(synthetic_features))]
    probability = np.full(len(x), np.nan)
    for k in range(n_folds):
        fit, score = fold != k, fold == k
        model = _fit_shrinkage_lda(x[fit], y[fit])
        probability[score] = model.predict_proba(x[score])[:, 1]
    correct = (probability > 0.5) == (y == 1)
    accuracy_real, accuracy_synthetic = float(correct[y == 0].mean()), float(correct[y == 1].mean())
    lo, hi = subject_bootstrap_interval(correct, y == 1, groups, n_boot=n_boot, seed=seed)
    return {"accuracy": 0.5 * (accuracy_real + accuracy_synthetic), "ci95": [round(lo, 4), round(hi, 4)],
            "auc": float(roc_auc_score(y, probability)), "accuracy_real": accuracy_real,
            "accuracy_synthetic": accuracy_synthetic, "n_real": int(len(real_features)),
            "n_synthetic": int(len(synthetic_features)), "n_real_subjects": int(len(np.unique(real_groups))),
            "n_folds": n_folds, "interval": "subject bootstrap (whole subjects resampled), 95 %",
            "split": f"{n_folds}-fold cross-fitting, real slices split by subject"
                     + (", synthetic by group" if synthetic_groups is not None else ", synthetic at random"),
            "meaning": EMBEDDING_C2ST_MEANING}


def beyond_real(test: dict, baseline: dict) -> bool:
    """Whether a two-sample figure is *beyond* the real-vs-real one: its 95 % interval lies wholly
    above both the baseline's interval and chance.

    Chance is a floor because a real-vs-real baseline with few subjects a side can fall below
    0.5 (a classifier that learns by-chance differences between a handful of people is wrong
    about the next handful), and samples, drawn independently, are not held to that.

    >>> beyond_real({"ci95": [0.62, 0.74]}, {"ci95": [0.44, 0.56]}), beyond_real({"ci95": [0.52, 0.64]}, {"ci95": [0.3, 0.4]})
    (True, True)
    >>> beyond_real({"ci95": [0.48, 0.6]}, {"ci95": [0.3, 0.4]})
    False
    """
    return bool(test["ci95"][0] > max(baseline["ci95"][1], 0.5))


def memorisation_gap(heldout: dict, training: dict) -> dict:
    """The held-out test beside the training-slice one: ``{heldout, training, gap}``.

    A model that copies its training slices is harder to tell from them than from new
    subjects, so ``gap = heldout accuracy - training accuracy`` well above 0 (beyond both
    intervals) is a memorisation signal; a gap near 0 says the samples are as far from the
    training subjects as from new ones.

    >>> memorisation_gap({"accuracy": 0.9, "ci95": [0.85, 0.94]}, {"accuracy": 0.6, "ci95": [0.53, 0.67]})["signal"]
    True
    """
    gap = float(heldout["accuracy"] - training["accuracy"])
    separated = heldout["ci95"][0] > training["ci95"][1]
    return {"gap": gap, "signal": bool(separated),
            "meaning": "held-out minus training-slice accuracy; a signal when the intervals do not overlap"}
