"""2-D maps of latents (PCA, t-SNE with openTSNE, UMAP with umap-learn), nearest neighbours, CSV.

UMAP's first call in a process compiles its numba kernels (10–30 s): :func:`warm_umap` runs a
tiny fit in a background thread so that cost is paid before the user asks for a map, and
numba's on-disk cache (``NUMBA_CACHE_DIR``) keeps the compiled code for the next process.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.errors import UserError
from core.latent.directions import fit_pca

__all__ = ["METHODS", "MIN_POINTS", "FFT_FROM_POINTS", "project", "tsne_gradient_method", "cached_project", "nearest_neighbours", "map_table",
           "warm_umap", "umap_ready"]

METHODS = ("pca", "tsne", "umap")
#: Fewest points each method accepts (t-SNE needs perplexity < N/3, UMAP a k-NN graph).
MIN_POINTS = {"pca": 3, "tsne": 10, "umap": 10}

_warm_lock = threading.Lock()
_warm_done = threading.Event()
_warm_thread: threading.Thread | None = None


def _numba_cache() -> None:
    if "NUMBA_CACHE_DIR" not in os.environ:
        from core import settings

        folder = settings.cache_dir() / "numba"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
        except OSError:
            pass


def _check(points, method: str) -> np.ndarray:
    if method not in METHODS:
        raise UserError(f"map method must be one of {METHODS}, got {method!r}")
    x = np.asarray(points, "float32")
    x = x.reshape(len(x), -1)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise UserError(f"{int(bad.sum())} of {len(x)} latent vectors contain NaN or infinite values; "
                        "a map cannot be drawn (the model diverged?)")
    if len(x) < MIN_POINTS[method]:
        raise UserError(f"{method.upper()} needs at least {MIN_POINTS[method]} points, this run has "
                        f"{len(x)}")
    return x


def project(points, method: str = "pca", seed: int = 0,
            progress: Callable[[float, str], None] | None = None, n_jobs: int = 1) -> np.ndarray:
    """2-D coordinates ``(N, 2)`` float32 of ``points`` ``(N, d)``; deterministic for a ``seed``.

    ``progress(fraction, message)`` is called during t-SNE's iterations.
    Raises UserError on NaN latents or too few points (see ``MIN_POINTS``).
    """
    x = _check(points, method)
    say = progress or (lambda f, m: None)
    if method == "pca":
        pca = fit_pca(x, 2)
        out = pca.transform(x)
        if out.shape[1] < 2:
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out.astype("float32")
    if method == "tsne":
        return _tsne(x, seed, say, n_jobs)
    _numba_cache()
    import umap

    neighbours = int(min(15, len(x) - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, random_state=seed, n_jobs=1,
                        init="spectral" if len(x) > 50 else "random")
    say(0.1, "UMAP: building the neighbour graph")
    out = reducer.fit_transform(x)
    _warm_done.set()
    say(1.0, "UMAP done")
    return np.asarray(out, "float32")


#: From this many points t-SNE uses openTSNE's FFT-interpolated gradients, below it Barnes-Hut:
#: openTSNE's own threshold, which ``bench/latent.py`` bears out on both sides (at 1,200 points
#: Barnes-Hut is the faster, at 16,000 FFT); the crossover between them was not measured.
FFT_FROM_POINTS = 10_000
#: Iterations of openTSNE's two phases (early exaggeration, then the embedding): its defaults.
TSNE_ITERATIONS = (250, 500)


class _CountedGradient:
    """openTSNE's gradient function (Barnes-Hut or FFT) that counts its calls and reports progress.

    openTSNE's own callbacks make it evaluate the KL divergence at every callback (a second pass
    over the affinities); this wrapper reports after each ``every`` gradient steps and never asks
    for the error, so the progress bar costs nothing.  (openTSNE still computes the error once at
    the end of each phase, as it does without callbacks; those calls are not counted as steps.)
    """

    def __init__(self, gradient, total: int, say: Callable[[float, str], None], every: int = 10):
        self.gradient, self.total, self.say, self.every, self.done = gradient, total, say, every, 0

    def __call__(self, embedding, P, should_eval_error=False, **kwargs):
        out = self.gradient(embedding, P, should_eval_error=should_eval_error, **kwargs)
        if should_eval_error:  # openTSNE's own error at the end of a phase, not a step
            return out
        self.done += 1
        if self.done % self.every == 0:
            self.say(min(0.99, self.done / self.total), f"t-SNE iteration {self.done} of {self.total}")
        return out


def tsne_gradient_method(n_points: int) -> str:
    """``"bh"`` or ``"fft"``: the faster openTSNE gradient for ``n_points`` (see FFT_FROM_POINTS).

    >>> tsne_gradient_method(1200), tsne_gradient_method(16000)
    ('bh', 'fft')
    """
    return "fft" if n_points >= FFT_FROM_POINTS else "bh"


def _tsne(x: np.ndarray, seed: int, say, n_jobs: int) -> np.ndarray:
    from openTSNE import TSNE
    from openTSNE.tsne import kl_divergence_bh, kl_divergence_fft

    method = tsne_gradient_method(len(x))
    gradient = {"bh": kl_divergence_bh, "fft": kl_divergence_fft}[method]
    say(0.0, "t-SNE: nearest neighbours")
    counted = _CountedGradient(gradient, sum(TSNE_ITERATIONS), say)
    tsne = TSNE(n_components=2, perplexity=float(min(30.0, (len(x) - 1) / 3.0)), random_state=seed,
                n_jobs=n_jobs, early_exaggeration_iter=TSNE_ITERATIONS[0], n_iter=TSNE_ITERATIONS[1],
                negative_gradient_method=counted, verbose=False)
    embedding = tsne.fit(x.astype("float64"))
    say(1.0, "t-SNE done")
    return np.asarray(embedding, "float32")


def cached_project(points, method: str, seed: int, key: str, cache_dir: str | Path | None = None,
                   progress=None, n_jobs: int = 1) -> np.ndarray:
    """:func:`project` with an on-disk cache under ``cache_dir/latent_maps`` keyed by ``key``
    (e.g. run fingerprint), method, seed and a hash of the points."""
    from core import settings

    x = _check(points, method)
    digest = hashlib.sha256(x.tobytes()).hexdigest()[:12]
    name = hashlib.sha256(f"{key}|{method}|{seed}|{digest}".encode()).hexdigest()[:20]
    folder = Path(cache_dir) if cache_dir else settings.cache_dir() / "latent_maps"
    path = folder / f"{method}-{name}.npy"
    if path.is_file():
        try:
            out = np.load(path)
            if out.shape == (len(x), 2):
                return out
        except (OSError, ValueError):
            pass
    out = project(x, method, seed, progress, n_jobs)
    try:
        from core.atomic import atomic_path

        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, out)
    except OSError:
        pass  # a read-only cache only costs a recomputation
    return out


def nearest_neighbours(points, row: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows nearest to ``row`` in latent space (Euclidean), itself excluded:
    ``(rows (k,) int, distances (k,) float32)``, nearest first."""
    x = np.asarray(points, "float32").reshape(len(points), -1)
    if not 0 <= int(row) < len(x):
        raise UserError(f"row {row} is outside the {len(x)} encoded slices")
    d = np.sqrt(np.maximum(((x - x[int(row)]) ** 2).sum(axis=1), 0))
    d[int(row)] = np.inf
    k = int(min(k, len(x) - 1))
    order = np.argpartition(d, k)[:k] if k < len(x) - 1 else np.arange(len(x))
    order = order[np.argsort(d[order], kind="stable")][:k]
    return order.astype(int), d[order].astype("float32")


def map_table(meta: pd.DataFrame, coords, method: str) -> pd.DataFrame:
    """Metadata with the map's ``{method}_x``, ``{method}_y`` columns (the CSV export)."""
    coords = np.asarray(coords)
    if len(coords) != len(meta):
        raise UserError(f"{len(coords)} map points for {len(meta)} slices")
    table = meta.copy()
    table[f"{method}_x"] = coords[:, 0]
    table[f"{method}_y"] = coords[:, 1]
    return table


def warm_umap(background: bool = True) -> threading.Thread | None:
    """Compile UMAP's numba kernels with a tiny fit (once per process), in a daemon thread."""
    global _warm_thread

    def work():
        try:
            project(np.random.default_rng(0).normal(size=(60, 8)).astype("float32"), "umap")
        except Exception:  # noqa: BLE001 — warming is best effort
            pass
        finally:
            _warm_done.set()

    with _warm_lock:
        if _warm_done.is_set() or (_warm_thread is not None and _warm_thread.is_alive()):
            return _warm_thread
        _numba_cache()
        if not background:
            work()
            return None
        _warm_thread = threading.Thread(target=work, name="umap-warmup", daemon=True)
        _warm_thread.start()
        return _warm_thread


def umap_ready() -> bool:
    """Whether UMAP's kernels are compiled in this process."""
    return _warm_done.is_set()
