"""Map projections: deterministic for a seed, bad input refused, neighbours, CSV table, cache."""

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.latent.maps import MIN_POINTS, cached_project, map_table, nearest_neighbours, project


def _clusters(n=120, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 6
    labels = np.arange(n) % 3
    return (centres[labels] + rng.normal(size=(n, d))).astype("float32"), labels


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_coordinates_are_deterministic_for_a_seed(method):
    x, labels = _clusters()
    a, b = project(x, method, seed=3), project(x, method, seed=3)
    assert a.shape == (len(x), 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # clusters stay apart: each point's nearest map neighbour has its label
    d = ((a[:, None] - a[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.95


@pytest.mark.slow
def test_umap_is_deterministic_for_a_seed():
    x, _ = _clusters(80)
    np.testing.assert_array_equal(project(x, "umap", seed=1), project(x, "umap", seed=1))


def test_tsne_reports_progress():
    x, _ = _clusters(60)
    seen = []
    project(x, "tsne", progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_too_few_points_is_a_user_error(method):
    x, _ = _clusters(MIN_POINTS[method] - 1)
    with pytest.raises(UserError, match=f"at least {MIN_POINTS[method]} points"):
        project(x, method)


def test_nan_latents_and_unknown_method_are_user_errors():
    x, _ = _clusters(30)
    x[4, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        project(x, "tsne")
    with pytest.raises(UserError, match="method"):
        project(x[:3], "mds")


def test_nearest_neighbours_match_brute_force():
    x, _ = _clusters(50)
    rows, dist = nearest_neighbours(x, 7, k=5)
    brute = np.linalg.norm(x - x[7], axis=1)
    brute[7] = np.inf
    np.testing.assert_array_equal(rows, np.argsort(brute)[:5])
    np.testing.assert_allclose(dist, np.sort(brute)[:5], rtol=1e-5)
    with pytest.raises(UserError):
        nearest_neighbours(x, 50)


def test_map_table_and_disk_cache(tmp_path):
    x, _ = _clusters(40)
    meta = pd.DataFrame({"row": range(40), "subject": [f"S{i // 4}" for i in range(40)]})
    coords = cached_project(x, "pca", 0, "run@1", tmp_path)
    assert len(list(tmp_path.glob("pca-*.npy"))) == 1
    np.testing.assert_array_equal(cached_project(x, "pca", 0, "run@1", tmp_path), coords)
    table = map_table(meta, coords, "pca")
    assert list(table.columns) == ["row", "subject", "pca_x", "pca_y"]
    assert "pca_x" in table.to_csv(index=False).splitlines()[0]
    with pytest.raises(UserError):
        map_table(meta, coords[:5], "pca")
