"""Aggregate posterior of a VAE: a Gaussian mixture fitted on the training latent means.

Sampling a VAE from N(0, I) lands in the "holes" of its latent space, where the decoder was
never trained; the aggregate posterior ``q(z) = mean_x q(z | x)`` is where the training
images actually live.  :func:`fit_aggregate_posterior` fits a scikit-learn Gaussian mixture
to the posterior means ``(N, latent_dim)`` of the training images; :class:`AggregatePosterior`
holds its weights, means and covariances as plain arrays, samples with its own seeded NumPy
generator, and is saved as ``.npz`` (loaded with ``allow_pickle=False``: no pickle ever).

:func:`fit_model_aggregate` encodes images with a VAE and fits the mixture on their means.
A run keeps its mixture beside the model as ``aggregate_posterior.npz``
(:meth:`core.training.runs.RunData.attach_aggregate` loads it, or fits and writes it on first
use), and ``VAE.sample(n, seed, temperature, source="aggregate")`` draws from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from core.errors import UserError
from core.models._checks import check_choice, check_float, check_int

__all__ = [
    "AGGREGATE",
    "COVARIANCE_TYPES",
    "AggregatePosterior",
    "fit_aggregate_posterior",
    "fit_model_aggregate",
]

#: File name of a run's mixture, beside its model (:class:`core.training.runs.RunFolder`).
AGGREGATE = "aggregate_posterior.npz"
COVARIANCE_TYPES = ("full", "diag")
_FORMAT = 1


class AggregatePosterior:
    """A Gaussian mixture over latent vectors.

    Args:
        weights: ``(K,)`` mixture weights (normalised here).
        means: ``(K, D)`` component means.
        covariances: ``(K, D, D)`` (``"full"``) or ``(K, D)`` (``"diag"``) covariances.
        info: JSON-friendly details kept with the file (images fitted on, log-likelihood...).

    >>> g = AggregatePosterior([1.0], np.zeros((1, 2)), np.ones((1, 2)))
    >>> g.sample(3, seed=0).shape
    (3, 2)
    """

    def __init__(self, weights, means, covariances, info=None):
        weights = np.asarray(weights, dtype="float64")
        means = np.asarray(means, dtype="float64")
        covariances = np.asarray(covariances, dtype="float64")
        if means.ndim != 2 or weights.shape != (len(means),) or len(means) == 0:
            raise UserError(
                f"a mixture needs weights (K,) and means (K, D), got {weights.shape} and {means.shape}"
            )
        k, d = means.shape
        if covariances.shape == (k, d, d):
            self.covariance_type = "full"
        elif covariances.shape == (k, d):
            self.covariance_type = "diag"
        else:
            raise UserError(f"covariances must be ({k}, {d}, {d}) or ({k}, {d}), got {covariances.shape}")
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise UserError(f"mixture weights must be finite, >= 0 and not all 0, got {weights}")
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covariances))):
            raise UserError("mixture means and covariances must be finite")
        self.weights = weights / weights.sum()
        self.means = means
        self.covariances = covariances
        self.info = dict(info or {})
        if self.covariance_type == "full":
            # Cholesky factors for sampling; a tiny jitter keeps a singular fit usable.
            eye = np.eye(d)
            try:
                self._chol = np.linalg.cholesky(covariances + 1e-9 * eye)
            except np.linalg.LinAlgError as exc:
                raise UserError("mixture covariances must be positive definite") from exc
        else:
            if np.any(covariances < 0):
                raise UserError("diagonal mixture variances must be >= 0")
            self._chol = np.sqrt(covariances)

    @property
    def n_components(self) -> int:
        return len(self.means)

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n, seed=0, temperature=1.0) -> np.ndarray:
        """``(n, D)`` float32 draws; ``temperature`` scales each draw's spread about its component mean."""
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0)
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.n_components, size=n, p=self.weights)
        eps = rng.standard_normal((n, self.latent_dim))
        if self.covariance_type == "full":
            dev = np.einsum("nij,nj->ni", self._chol[comp], eps)
        else:
            dev = self._chol[comp] * eps
        return (self.means[comp] + temperature * dev).astype("float32")

    def log_likelihood(self, z) -> float:
        """Mean log-density (nats per vector) of ``z`` ``(N, D)`` under the mixture."""
        from scipy.special import logsumexp
        from scipy.stats import multivariate_normal

        z = np.asarray(z, dtype="float64")
        parts = []
        for w, m, c in zip(self.weights, self.means, self.covariances):
            cov = c if self.covariance_type == "full" else np.diag(c)
            parts.append(np.log(w) + multivariate_normal(m, cov, allow_singular=True).logpdf(z))
        return float(np.mean(logsumexp(np.stack(parts, axis=0), axis=0)))

    def save(self, path) -> Path:
        """Write an ``.npz`` (arrays + a JSON header; no pickled objects), atomically."""
        path = Path(path)
        header = json.dumps({"format": _FORMAT, "covariance_type": self.covariance_type, "info": self.info})
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, weights=self.weights, means=self.means, covariances=self.covariances,
                         header=np.array(header))
        return path

    @classmethod
    def load(cls, path) -> "AggregatePosterior":
        """Read a file written by :meth:`save`; UserError if missing, corrupt or foreign."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"aggregate posterior file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = data["weights"], data["means"], data["covariances"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read aggregate posterior {path}: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise UserError(f"{path} is not an aggregate posterior file of format {_FORMAT}")
        return cls(*arrays, info=header.get("info"))


def fit_aggregate_posterior(z_means, n_components=10, covariance_type="full", seed=0,
                            reg_covar=1e-3) -> AggregatePosterior:
    """Fit a Gaussian mixture (scikit-learn, k-means initialised) to latent means ``(N, D)``.

    ``n_components`` is capped at ``N // 2`` so each component sees at least two vectors.
    ``reg_covar`` is added to each variance: with a few hundred images in 128 dimensions a
    full covariance is otherwise singular.
    """
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z_means, dtype="float64")
    if z.ndim != 2 or len(z) < 2 or not np.all(np.isfinite(z)):
        raise UserError(f"latent means must be finite (N >= 2, D), got shape {z.shape}")
    n_components = min(check_int("n_components", n_components, 1), len(z) // 2)
    covariance_type = check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    reg_covar = check_float("reg_covar", reg_covar, 0.0, open_min=True)
    gmm = GaussianMixture(n_components, covariance_type=covariance_type, reg_covar=reg_covar,
                          random_state=seed, max_iter=200).fit(z)
    info = {"n_fitted": int(len(z)), "n_components": int(n_components), "covariance_type": covariance_type,
            "reg_covar": reg_covar, "seed": seed, "train_log_likelihood": float(gmm.score(z)),
            "converged": bool(gmm.converged_)}
    return AggregatePosterior(gmm.weights_, gmm.means_, gmm.covariances_, info=info)


def fit_model_aggregate(model, images, condition=None, n_components=10, covariance_type="full",
                        seed=0) -> AggregatePosterior:
    """Fit the aggregate posterior of VAE ``model`` on ``images`` ``(N, S, S[, 1])``.

    The images are encoded (a conditional VAE with each image's ``condition``) and a mixture
    is fitted on the posterior means (:func:`fit_aggregate_posterior`).  Reading a run's
    training images and keeping the mixture beside its model is the run's business
    (:meth:`core.training.runs.RunData.attach_aggregate`).
    """
    z_mean, _ = model.encode(np.asarray(images), condition=condition)
    return fit_aggregate_posterior(z_mean, n_components, covariance_type, seed=seed)

