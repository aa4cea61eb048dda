"""Directions to move along in a latent space: principal directions, KL-ranked units, attributes.

A :class:`Direction` is a unit vector in the model's continuous latent (VAE: ``z``; VQ-VAE:
the flattened encoder output) plus the size of one slider step (``scale``) and its unit:
moving a latent ``z`` by slider value ``v`` gives ``z + v * scale * vector``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import UserError

__all__ = ["Direction", "PCA", "fit_pca", "pca_directions", "kl_ranked_units", "attribute_directions",
           "age_direction", "class_directions"]


@dataclass(frozen=True)
class Direction:
    """One slider: ``key`` (stable id), ``label``, unit ``vector`` ``(d,)`` float32, ``scale``
    (latent distance of one unit), ``unit`` ("σ" or "years"), ``group`` ("pca", "kl",
    "attribute") and an optional quality ``score`` with its ``score_name`` (held-out R² /
    accuracy, explained variance, KL nats)."""

    key: str
    label: str
    vector: np.ndarray = field(repr=False)
    scale: float
    unit: str
    group: str
    score: float | None = None
    score_name: str = ""

    def move(self, z, value: float) -> np.ndarray:
        """``z`` moved by ``value`` units along this direction (same shape as ``z``)."""
        z = np.asarray(z, "float32")
        return (z.ravel() + np.float32(value * self.scale) * self.vector).reshape(z.shape)


@dataclass(frozen=True)
class PCA:
    """Principal axes of ``(N, d)`` data: ``mean`` ``(d,)``, orthonormal ``components`` ``(k, d)``,
    ``sigma`` ``(k,)`` standard deviation along each, ``explained`` ``(k,)`` variance ratios."""

    mean: np.ndarray
    components: np.ndarray
    sigma: np.ndarray
    explained: np.ndarray

    def transform(self, x) -> np.ndarray:
        """Scores ``(N, k)`` float32 of rows ``x`` ``(N, d)``."""
        x = np.asarray(x, "float32").reshape(len(x), -1)
        return ((x - self.mean) @ self.components.T).astype("float32")


def _finite_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype="float32")
    x = x.reshape(len(x), -1) if x.ndim != 2 else x
    if len(x) == 0:
        raise UserError(f"{name}: no points to fit")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise UserError(f"{name}: {int(bad.sum())} of {len(x)} latent vectors contain NaN or infinite "
                        "values (the model diverged?); retrain or resume from an earlier checkpoint")
    return x


def fit_pca(x, k: int = 10, seed: int = 0) -> PCA:
    """Principal axes of ``x`` ``(N, d)``: the covariance's eigenvectors when ``d`` is small,
    a randomized SVD (Halko et al.) otherwise.  Signs are fixed so each component's largest
    coordinate is positive (deterministic).

    >>> p = fit_pca(np.random.default_rng(0).normal(size=(100, 5)), k=3)
    >>> np.allclose(p.components @ p.components.T, np.eye(3), atol=1e-5)
    True
    """
    x = _finite_2d(x, "PCA")
    n, d = x.shape
    if n < 2:
        raise UserError(f"PCA needs at least 2 points, got {n}")
    k = int(max(1, min(k, d, n - 1)))
    mean = x.mean(axis=0, dtype="float64")
    xc = (x - mean.astype("float32"))
    if d <= 2048:
        cov = (xc.T @ xc).astype("float64") / (n - 1)
        total = float(np.trace(cov)) or 1.0
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:k]
        variances = np.clip(values[order], 0, None)
        components = vectors[:, order].T
    else:
        from sklearn.utils.extmath import randomized_svd

        total = float(np.einsum("ij,ij->", xc, xc, dtype="float64") / (n - 1)) or 1.0
        _, s, vt = randomized_svd(xc, n_components=k, n_iter=4, random_state=seed)
        variances = s.astype("float64") ** 2 / (n - 1)
        components = vt.astype("float64")
    flip = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * flip[:, None]
    return PCA(mean.astype("float32"), components.astype("float32"),
               np.sqrt(variances).astype("float32"), (variances / total).astype("float32"))


def pca_directions(x=None, k: int = 8, pca: PCA | None = None) -> list[Direction]:
    """The top ``k`` principal directions of ``x`` ``(N, d)`` (or of a fitted ``pca``), one σ a step
    (GANSpace-style), scored by explained variance ratio."""
    pca = pca if pca is not None else fit_pca(x, k)
    out = []
    for i in range(min(k, len(pca.components))):
        out.append(Direction(f"pc{i + 1}", f"PC {i + 1}", pca.components[i], float(pca.sigma[i]) or 1.0,
                             "σ", "pca", float(pca.explained[i]), "explained variance"))
    return out


def kl_ranked_units(z_mean, z_log_var, k: int = 8) -> list[Direction]:
    """The ``k`` latent units with the largest mean KL ``0.5 (μ² + σ² − 1 − log σ²)`` over the
    data, most informative first; one step is the data standard deviation of that unit's mean.
    Units with NaN are refused."""
    mu = _finite_2d(z_mean, "KL ranking").astype("float64")
    lv = _finite_2d(z_log_var, "KL ranking").astype("float64")
    kl = 0.5 * (mu**2 + np.exp(lv) - 1.0 - lv).mean(axis=0)
    d = mu.shape[1]
    order = np.argsort(kl)[::-1][: min(k, d)]
    sd = mu.std(axis=0)
    out = []
    for j in order:
        vec = np.zeros(d, "float32")
        vec[j] = 1.0
        out.append(Direction(f"unit{j}", f"unit {j}", vec, float(sd[j]) or 1.0, "σ", "kl",
                             float(kl[j]), "KL nats"))
    return out


def _held_out(train_mask, groups, n):
    """Train / held-out masks: the dataset's own split when both parts exist, else by subject halves."""
    train_mask = np.asarray(train_mask, bool) if train_mask is not None else np.ones(n, bool)
    if train_mask.any() and (~train_mask).any():
        return train_mask, ~train_mask
    groups = np.asarray(groups) if groups is not None else np.arange(n)
    uniq = np.unique(groups)
    rng = np.random.default_rng(0)
    held = set(rng.permutation(uniq)[: max(1, len(uniq) // 4)].tolist())
    test = np.array([g in held for g in groups])
    return ~test, test


def age_direction(x, age, train_mask=None, groups=None, to_latent=None, covariates=None) -> Direction | None:
    """Direction of ageing: least-squares fit of each latent coordinate on age (slope per year).

    With ``covariates`` ``(N, c)`` (e.g. sex and site indicators) the fit is
    ``z ~ 1 + age + covariates``, so the age slope does not carry a sex or site difference that
    happens to correlate with age in this cohort.

    One slider step is one year: ``z + years * slope``.  Its ``score`` is the held-out R² of a
    ridge regression that predicts age from the latent (fit on the train split, scored on
    val + test subjects), so the user sees how much age the latent actually carries.
    ``to_latent`` maps a vector of ``x``'s space to the model's latent (VQ-VAE: PCA scores
    back to encoder outputs).  None when fewer than 3 subjects' ages are known.
    """
    x = _finite_2d(x, "age direction").astype("float64")
    age = np.asarray(age, dtype="float64")
    known = np.isfinite(age)
    if known.sum() < 3 or np.ptp(age[known]) == 0:
        return None
    xk, ak = x[known], age[known]
    design = [np.ones_like(ak), ak]
    if covariates is not None:
        cov = np.asarray(covariates, "float64").reshape(len(age), -1)[known]
        design += [c for c in cov.T if np.ptp(c) > 0]
    coef, *_ = np.linalg.lstsq(np.stack(design, axis=1), xk, rcond=None)
    slope = coef[1]  # (d,) latent change per year, other attributes held fixed
    if to_latent is not None:
        slope = to_latent(slope)
    norm = float(np.linalg.norm(slope))
    if norm == 0:
        return None
    gk = None if groups is None else np.asarray(groups)[known]
    r2 = _ridge_r2(xk, ak, *_held_out(None if train_mask is None else np.asarray(train_mask)[known], gk, len(ak)),
                   groups=gk)
    return Direction("age", "age", (slope / norm).astype("float32"), norm, "years", "attribute",
                     r2, "held-out R²")


def _ridge_r2(x, y, train, test, groups=None) -> float | None:
    """Held-out R² of a ridge regression ``y ~ x``; its penalty is chosen by cross-validation
    over whole subjects (slices of one subject never on both sides)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold

    if train.sum() < 3 or test.sum() < 2:
        return None
    g = np.asarray(groups)[train] if groups is not None else np.arange(int(train.sum()))
    folds = int(min(5, len(np.unique(g))))
    if folds < 2:
        return None
    search = GridSearchCV(Ridge(), {"alpha": np.logspace(-2, 5, 15)}, cv=GroupKFold(folds))
    model = search.fit(x[train], y[train], groups=g).best_estimator_
    pred = model.predict(x[test])
    ss = ((y[test] - y[test].mean()) ** 2).sum()
    return float(1 - ((y[test] - pred) ** 2).sum() / ss) if ss > 0 else None


def class_directions(x, labels, name: str, train_mask=None, groups=None, to_latent=None) -> list[Direction]:
    """Directions towards each class of ``labels`` (sex: one; site: one per site) from a
    logistic regression of the label on the latent.  One step is one standard deviation of the
    data along the direction; ``score`` is the held-out accuracy (train split → val + test)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = _finite_2d(x, f"{name} direction").astype("float64")
    labels = np.asarray([None if (v is None or (isinstance(v, float) and np.isnan(v)) or v == "") else str(v)
                         for v in labels], dtype=object)
    known = labels != None  # noqa: E711  (element-wise)
    classes = sorted(set(labels[known]))
    if len(classes) < 2:
        return []
    xk, yk = x[known], labels[known].astype(str)
    train, test = _held_out(None if train_mask is None else np.asarray(train_mask)[known],
                            None if groups is None else np.asarray(groups)[known], len(yk))
    if len(set(yk[train])) < 2:
        train = np.ones(len(yk), bool)
        test = np.zeros(len(yk), bool)
    scaler = StandardScaler().fit(xk[train])
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(xk[train]), yk[train])
    accuracy = float(clf.score(scaler.transform(xk[test]), yk[test])) if test.sum() and len(
        set(yk[test]) & set(clf.classes_)) else None
    coefs = clf.coef_ / scaler.scale_  # back to the unscaled latent
    targets = list(clf.classes_)
    if len(targets) == 2:  # one row: towards classes_[1]
        rows = [(targets[1], coefs[0])]
    else:
        rows = list(zip(targets, coefs))
    out = []
    for target, w in rows:
        if to_latent is not None:
            w_lat = to_latent(w)
        else:
            w_lat = w
        norm = float(np.linalg.norm(w_lat))
        if norm == 0:
            continue
        unit = w_lat / norm
        # one step = data spread along the direction, measured in x's own space
        spread = float(np.std((xk - xk.mean(axis=0)) @ (w / np.linalg.norm(w)))) or 1.0
        out.append(Direction(f"{name}:{target}", f"{name} → {target}", unit.astype("float32"), spread, "σ",
                             "attribute", accuracy, "held-out accuracy"))
    return out


def attribute_directions(x, meta, to_latent=None) -> list[Direction]:
    """Age (linear) and sex / site (logistic) directions from latents ``x`` ``(N, d)`` and a
    metadata table with ``age``, ``sex``, ``site``, ``split`` and ``subject`` columns.
    Attributes without at least two known values are skipped."""
    train = (meta["split"] == "train").to_numpy() if "split" in meta else None
    groups = meta["subject"].to_numpy() if "subject" in meta else None
    out = []
    if "age" in meta:
        dummies = [pd.get_dummies(meta[c].astype(str)).to_numpy("float64")[:, 1:] for c in ("sex", "site")
                   if c in meta]
        covariates = np.concatenate(dummies, axis=1) if dummies else None
        age = age_direction(x, meta["age"].to_numpy(dtype="float64"), train, groups, to_latent, covariates)
        if age is not None:
            out.append(age)
    for name in ("sex", "site"):
        if name in meta:
            out.extend(class_directions(x, meta[name].to_numpy(), name, train, groups, to_latent))
    return out
