"""Latent explorer speed: slider → decoded PNG, PCA, t-SNE (openTSNE vs scikit-learn), UMAP.

    python bench/latent.py [--quick] [--run RUN_DIR]

The slider figure uses a trained ``thesis`` VAE (128 px) when ``--run`` names one, else a
``thesis``-preset VAE built untrained (same network, same cost).  Maps run on 128-d clustered
points.  Prints a table, then one JSON line (design.md: keys end in their unit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def clustered(n: int, d: int = 128, k: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype("float32")


def timed(fn, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def slider_ms(run: str | None, n: int) -> tuple[np.ndarray, str]:
    """Per-change times (ms) of: move latent along a direction → decode → compare PNG."""
    from core.latent.directions import fit_pca, pca_directions
    from core.viz.latent import compare_png

    if run:
        from core.training.checkpoints import load_run_model

        model, what = load_run_model(run), f"trained run {Path(run).name}"
    else:
        from core.models import build_model, get_preset

        config = {**get_preset("vae", "thesis"), "model_type": "vae"}
        model, what = build_model(config), "thesis VAE (untrained, 128 px)"
    d = model.latent_dim
    z0 = np.zeros(d, "float32")
    direction = pca_directions(pca=fit_pca(np.random.default_rng(0).normal(size=(200, d)), 1), k=1)[0]
    reference = model.decode(z0[None])[0, ..., 0]
    model.decode(z0[None])  # warm the compiled decode
    times = []
    for i in range(n):
        t = time.perf_counter()
        z = direction.move(z0, -3 + 6 * i / max(1, n - 1))
        image = model.decode(z[None])[0, ..., 0]
        compare_png(reference, image, 2)
        times.append((time.perf_counter() - t) * 1000)
    return np.array(times), what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: skips t-SNE of 16,000 points")
    parser.add_argument("--run", help="a trained run folder (thesis preset) for the slider figure")
    args = parser.parse_args()
    rows, out = [], {}

    times, what = slider_ms(args.run, 30 if args.quick else 100)
    out["slider_p50_ms"] = round(float(np.percentile(times, 50)), 1)
    out["slider_p95_ms"] = round(float(np.percentile(times, 95)), 1)
    rows.append((f"slider → decoded PNG, {what}", f"p50 {out['slider_p50_ms']} ms, p95 {out['slider_p95_ms']} ms",
                 "p95 < 50 ms"))

    from sklearn.decomposition import PCA as SkPCA

    from core.latent.directions import fit_pca
    from core.latent.maps import project

    x16 = clustered(16000)
    out["pca_16000_s"] = round(timed(lambda: fit_pca(x16, 10), 3), 3)
    out["sklearn_pca_16000_s"] = round(timed(lambda: SkPCA(10).fit(x16), 3), 3)
    rows.append(("PCA of 16,000 × 128 latents (10 axes)", f"{out['pca_16000_s']} s",
                 f"< 1 s; scikit-learn {out['sklearn_pca_16000_s']} s"))

    from sklearn.manifold import TSNE as SkTSNE

    x12 = clustered(1200)
    out["tsne_1200_s"] = round(timed(lambda: project(x12, "tsne", 0)), 2)
    out["sklearn_tsne_1200_s"] = round(timed(lambda: SkTSNE(2, random_state=0).fit_transform(x12)), 2)
    out["tsne_1200_ratio"] = round(out["sklearn_tsne_1200_s"] / out["tsne_1200_s"], 2)
    rows.append(("t-SNE of 1,200 latents (openTSNE)", f"{out['tsne_1200_s']} s",
                 f"< 5 s; scikit-learn {out['sklearn_tsne_1200_s']} s ({out['tsne_1200_ratio']}× faster)"))

    if not args.quick:
        out["tsne_16000_s"] = round(timed(lambda: project(x16, "tsne", 0)), 1)
        rows.append(("t-SNE of 16,000 latents (openTSNE)", f"{out['tsne_16000_s']} s", "< 30 s"))
        out["sklearn_tsne_16000_s"] = round(timed(lambda: SkTSNE(2, random_state=0).fit_transform(x16)), 1)
        rows.append(("t-SNE of 16,000 latents (scikit-learn)", f"{out['sklearn_tsne_16000_s']} s", "baseline"))
        out["umap_first_16000_s"] = round(timed(lambda: project(x16, "umap", 0)), 1)
        out["umap_16000_s"] = round(timed(lambda: project(x16, "umap", 0)), 1)
        rows.append(("UMAP of 16,000 latents: first call / warm", f"{out['umap_first_16000_s']} / "
                     f"{out['umap_16000_s']} s", "first call includes numba compile or cache load"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}} | result | target / baseline")
    for name, result, target in rows:
        print(f"{name:<{width}} | {result} | {target}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
