"""t-SNE's progress costs no KL evaluation, and the map is openTSNE's own."""

import numpy as np
import openTSNE.tsne
import pytest
from openTSNE import TSNE

from core.latent import maps


def _clusters(n=150, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 6
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, d))).astype("float32")


def test_progress_never_asks_openTSNE_for_the_kl_divergence(monkeypatch):
    asked = []
    real = openTSNE.tsne.kl_divergence_bh

    def spy(*args, should_eval_error=False, **kwargs):
        asked.append(should_eval_error)
        return real(*args, should_eval_error=should_eval_error, **kwargs)

    monkeypatch.setattr(openTSNE.tsne, "kl_divergence_bh", spy)
    x = _clusters()
    TSNE(n_components=2, perplexity=30.0, random_state=0, n_jobs=1, negative_gradient_method="bh").fit(x.astype("float64"))
    bare = list(asked)  # bare openTSNE, no callbacks: the error once at the end of each phase
    asked.clear()
    seen = []
    maps.project(x, "tsne", progress=lambda f, m: seen.append((f, m)))
    assert asked == bare and sum(bare) == 2
    fractions = [f for f, _ in seen]
    # a start, one update per 10 gradient steps, done: a progress bar that moves all the way
    assert len(seen) == 2 + sum(maps.TSNE_ITERATIONS) // 10
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert "iteration 750 of 750" in seen[-2][1]


def test_the_map_is_bare_openTSNEs_map():
    x = _clusters()
    ours = maps.project(x, "tsne", seed=2)
    bare = TSNE(n_components=2, perplexity=30.0, random_state=2, n_jobs=1, negative_gradient_method="bh",
                verbose=False).fit(x.astype("float64"))
    np.testing.assert_allclose(ours, np.asarray(bare, "float32"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n, method", [(1200, "bh"), (maps.FFT_FROM_POINTS - 1, "bh"),
                                       (maps.FFT_FROM_POINTS, "fft"), (16000, "fft")])
def test_gradient_method_by_size(n, method):
    assert maps.tsne_gradient_method(n) == method
