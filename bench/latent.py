"""Latent explorer speed: slider → decoded PNG, PCA, t-SNE (the app's vs bare openTSNE, and scikit-learn), UMAP, and
the map in a real browser (Vega-Lite with hover thumbnails vs plotly WebGL) at 17,400 points.

    python bench/latent.py [--quick] [--run RUN_DIR] [--map-points N] [--no-browser] [--tsne-only]

The slider figure uses a trained ``thesis`` VAE (128 px) when ``--run`` names one, else a
``thesis``-preset VAE built untrained (same network, same cost), and splits each change into
its parts (move the latent, decode, encode the PNG).  Maps run on 128-d clustered points.  The
browser figures serve a small Streamlit app that draws ``core.viz.latent``'s two map charts over
synthetic coordinates and 32 px thumbnails, in headless Chromium (Playwright): page load → chart
drawn, hover → tooltip shown (with its thumbnail for Vega), click → the app has the clicked row.
``--quick`` (about a minute) skips t-SNE / UMAP of 16,000 points and the browser.  Prints a table,
then one JSON line (docs/architecture.md: keys end in their unit).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402

# One definition of how to start a server and find drawn map points, shared with the end-to-end tests.
from e2e.support import BROWSER_ARGS, CHROMIUM, start_streamlit, stop_streamlit  # noqa: E402
from e2e.support import POINTS_ON_SCREEN as VEGA_POINTS_ON_SCREEN  # noqa: E402


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


def pct(values, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if len(values) else float("nan")


# ------------------------------------------------------------------ slider
def slider_ms(run: str | None, n: int) -> tuple[dict, str]:
    """Per-change times (ms) of: move latent along a direction → decode → compare PNG, with each part
    timed on its own (``move``, ``decode``, ``png``, ``total``), plus the first (tracing) call."""
    from core.latent.directions import fit_pca, pca_directions
    from core.viz.latent import compare_png

    if run:
        from core.training.runs import RunData

        model, what = RunData.open(run).load_model(), f"trained run {Path(run).name}"
    else:
        from core.models import build_model, get_preset

        config = {**get_preset("vae", "thesis"), "model_type": "vae"}
        model, what = build_model(config), "thesis VAE (untrained, 128 px)"
    d = model.latent_dim
    factor = max(1, 256 // int(model.image_size))  # what the page shows: ui.latent.slider_panel
    z0 = np.zeros(d, "float32")
    direction = pca_directions(pca=fit_pca(np.random.default_rng(0).normal(size=(200, d)), 1), k=1)[0]
    t = time.perf_counter()
    reference = model.decode(z0[None])[0, ..., 0]  # first call traces the compiled decode
    first = (time.perf_counter() - t) * 1000
    parts = {"move": [], "decode": [], "png": [], "total": []}
    for i in range(n):
        t0 = time.perf_counter()
        z = direction.move(z0, -3 + 6 * i / max(1, n - 1))
        t1 = time.perf_counter()
        image = model.decode(z[None])[0, ..., 0]
        t2 = time.perf_counter()
        compare_png(reference, image, factor)
        t3 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            value_ms = value * 1000
            parts[key].append(value_ms)
    from core.models.inference import _CACHE

    fn = getattr(model, _CACHE, {}).get("decode")
    traces = fn.experimental_get_tracing_count() if hasattr(fn, "experimental_get_tracing_count") else None
    pair = []  # what a change from a zero / sample start cost before the start's decode was kept
    for i in range(max(5, n // 4)):
        z = direction.move(z0, -3 + 6 * i / max(1, n - 1))
        t = time.perf_counter()
        model.decode(np.stack([z, z0]))
        pair.append((time.perf_counter() - t) * 1000)
    out = {k: np.array(v) for k, v in parts.items()}
    out["decode_pair"] = np.array(pair)
    out["first_decode_ms"] = first
    out["traces"] = traces  # counted before the 2-latent calls, which trace a second batch shape
    return out, what


# ------------------------------------------------------------------ t-SNE
def tsne_vs_opentsne(n: int, repeats: int | None = None) -> tuple[dict, list]:
    """t-SNE of ``n`` clustered 128-d points: the app's (``core.latent.maps.project``: progress
    without the KL divergence, Barnes-Hut or FFT by size) against bare openTSNE in this process
    (no callbacks; Barnes-Hut and FFT gradients) and against the wrapper of before (openTSNE's
    ``auto`` gradient with a callback every 10 iterations, which makes it compute the KL divergence
    each time).  The runs are interleaved, ``repeats`` rounds (3 at 1,200 points, 1 above: bare
    Barnes-Hut alone takes minutes there), and each figure is its best round, so a load change on a
    shared machine hits all of them alike.  Ratios are other / app: above 1, the app is faster."""
    from openTSNE import TSNE

    from core.latent.maps import project, tsne_gradient_method

    x = clustered(n)
    x64 = x.astype("float64")
    TSNE(n_jobs=1, random_state=0, n_iter=10, early_exaggeration_iter=10).fit(x64[:300])  # imports, once
    project(x[:300], "tsne", 0)

    def bare(method, callbacks=None):
        return lambda: TSNE(n_components=2, perplexity=30.0, random_state=0, n_jobs=1, negative_gradient_method=method,
                            callbacks=callbacks, callbacks_every_iters=10).fit(x64)

    ticks = []
    runs = {"": lambda: project(x, "tsne", 0, progress=lambda f, m: ticks.append(f)),
            "opentsne_bh": bare("bh"), "opentsne_fft": bare("fft"),
            "old_callbacks": bare("auto", lambda it, err, emb: False)}
    best, cpu = {}, {}
    rounds = repeats or (3 if n <= 1200 else 1)
    for _ in range(rounds):
        for name, run in runs.items():
            c = time.process_time()
            best[name] = min(best.get(name, np.inf), timed(run))
            cpu[name] = min(cpu.get(name, np.inf), time.process_time() - c)
    tag = f"tsne_{n}"
    out = {f"{tag}_s": round(best[""], 2), f"{tag}_cpu_s": round(cpu[""], 2)}
    for name in ("opentsne_bh", "opentsne_fft", "old_callbacks"):
        out[f"{tag}_{name}_s"] = round(best[name], 2)
        out[f"{tag}_vs_{name}_ratio"] = round(best[name] / best[""], 2)
        # CPU seconds of this process (n_jobs=1): what the work costs, whatever else shares the cores
        out[f"{tag}_{name}_cpu_s"] = round(cpu[name], 2)
        out[f"{tag}_vs_{name}_cpu_ratio"] = round(cpu[name] / cpu[""], 2)
    method = tsne_gradient_method(n)
    out[f"{tag}_method"] = method
    out[f"{tag}_vs_opentsne_ratio"] = out[f"{tag}_vs_opentsne_{method}_ratio"]
    out[f"{tag}_vs_opentsne_cpu_ratio"] = out[f"{tag}_vs_opentsne_{method}_cpu_ratio"]
    out[f"{tag}_progress_updates"] = len(ticks) // rounds
    rows = [(f"t-SNE of {n:,} latents, app ({method}, progress without KL, "
             f"{out[f'{tag}_progress_updates']} updates): wall / CPU",
             f"{out[f'{tag}_s']} s / {out[f'{tag}_cpu_s']} s", "< 3 s" if n <= 1200 else "< 20 s")]
    for k, label in (("opentsne_bh", "bare openTSNE, Barnes-Hut, no callbacks"),
                     ("opentsne_fft", "bare openTSNE, FFT, no callbacks"),
                     ("old_callbacks", "the wrapper of before (auto, callback + KL every 10 iterations)")):
        rows.append((f"  {label}", f"{out[f'{tag}_{k}_s']} s / {out[f'{tag}_{k}_cpu_s']} s",
                     f"÷ app: {out[f'{tag}_vs_{k}_ratio']} wall, {out[f'{tag}_vs_{k}_cpu_ratio']} CPU"))
    return out, rows


# ------------------------------------------------------------------ map in the browser
MAP_APP = '''
import os, pickle, sys
import streamlit as st
sys.path.insert(0, {repo!r})
from core.viz.latent import map_chart, map_figure
from ui.latent import selected_rows

st.set_page_config(layout="wide")

@st.cache_resource
def data():
    with open({data!r}, "rb") as f:
        return pickle.load(f)

table, coords, thumbs = data()
kind = st.query_params.get("kind", "vega")

def on_select():
    rows = selected_rows(st.session_state.get("map"))
    if rows:
        st.session_state["picked"] = rows[0]

if kind == "vega":
    st.altair_chart(map_chart(table, coords, "age", thumbs), key="map", on_select=on_select,
                    selection_mode=["pick"], width="stretch")
else:
    st.plotly_chart(map_figure(table, coords, "age"), key="map", on_select=on_select, selection_mode="points",
                    config={{"scrollZoom": True}})
if "picked" in st.session_state:
    st.markdown(f"picked row {{st.session_state['picked']}}")
'''


def synthetic_map(n: int, seed: int = 0):
    """A map table ``n`` rows like ``Encodings.meta``, 2-D clustered coordinates, and ``n`` 32 px
    thumbnails of 64 px synthetic slices (an ellipse with texture: PNG sizes like real slices')."""
    import pandas as pd

    from core.viz.latent import thumbnail_urls

    rng = np.random.default_rng(seed)
    subjects = np.arange(n) // 30
    table = pd.DataFrame({"row": np.arange(n), "split": "train", "index": np.arange(n),
                          "subject": [f"IXI{s:03d}" for s in subjects], "slice": 160 + np.arange(n) % 30,
                          "age": (20 + (subjects * 7919) % 66).astype(float),
                          "sex": np.where(subjects % 2, "M", "F"), "site": np.array(["Guys", "HH", "IOP"])[subjects % 3]})
    centres = rng.normal(size=(12, 2)) * 6
    coords = (centres[rng.integers(0, 12, n)] + rng.normal(size=(n, 2))).astype("float32")
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    base = rng.random((8, 64, 64)).astype("float32")
    started = time.perf_counter()
    thumbs = []
    for start in range(0, n, 512):
        m = min(512, n - start)
        r = 0.6 + 0.3 * rng.random((m, 1, 1))
        images = ((xx / r) ** 2 + (yy / (r * 1.2)) ** 2 < 1) * (0.4 + 0.5 * base[rng.integers(0, 8, m)])
        thumbs += thumbnail_urls(images.astype("float32"))
    seconds = time.perf_counter() - started
    return table, coords, thumbs, seconds


#: JS: is the chart's hover label showing (Vega: the tooltip element, with its thumbnail loaded)?
HOVER_SHOWN = {
    "vega": "() => { const t = document.querySelector('#vg-tooltip-element.visible');"
            " const i = t && t.querySelector('img'); return !!(i && i.complete && i.naturalWidth > 0); }",
    "plotly": "() => !!document.querySelector('.hoverlayer .hovertext')",
}
HOVER_TEXT = {"vega": "() => document.querySelector('#vg-tooltip-element').innerText",
              "plotly": "() => document.querySelector('.hoverlayer .hovertext').textContent"}
PLOT = {"vega": '[data-testid="stVegaLiteChart"] canvas', "plotly": '[data-testid="stPlotlyChart"] .gl-container canvas'}


def _row_of(kind: str, text: str) -> int | None:
    import re

    match = re.search(r"row\s*(\d+)\s*$", text.strip()) if kind == "vega" else re.search(r"row (\d+)", text)
    return int(match.group(1)) if match else None


#: JS: up to ``k`` page positions of drawn points.  Vega draws on a 2-D canvas: scan its pixels
#: for point centres (tests/e2e/support.py).  Plotly's WebGL points: its axes map data to pixels.
POINTS_ON_SCREEN = {
    "vega": VEGA_POINTS_ON_SCREEN,  # the end-to-end tests' scan (it knows the dark theme's canvas)
    "plotly": """(k) => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!gd || !gd._fullData) return [];
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect(), out = [];
  const traces = gd._fullData.filter(t => t.x && t.x.length && t.customdata);
  for (let n = 0; n < 50 * k && out.length < k; n++) {  // inside the middle of the plot (the modebar is top right)
    const t = traces[n % traces.length], i = Math.floor((n * 7919 + 3331) % t.x.length);
    const px = xa.d2p(t.x[i]), py = ya.d2p(t.y[i]);
    if (px > 0.05 * xa._length && px < 0.85 * xa._length && py > 0.1 * ya._length && py < 0.9 * ya._length)
      out.push([box.left + xa._offset + px, box.top + ya._offset + py]);
  }
  return out;
}""",
}


def _hover(page, kind: str, positions, away, limit_ms: int = 1000):
    """Move the mouse off the points (``away``), then onto each position: (x, y, ms until the hover
    label shows, row id in the label) of each position where one showed."""
    hits = []
    for x, y in positions:
        page.mouse.move(*away)  # off the points: the label goes away
        page.wait_for_timeout(80)
        started = time.perf_counter()
        page.mouse.move(x, y)
        try:
            page.wait_for_function(HOVER_SHOWN[kind], timeout=limit_ms, polling="raf")
        except Exception:  # noqa: BLE001 — no point under the mouse there after all
            continue
        ms = (time.perf_counter() - started) * 1000
        hits.append((x, y, ms, _row_of(kind, page.evaluate(HOVER_TEXT[kind]))))
    return hits


def _progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def browser_map(n: int, hovers: int = 20, clicks: int = 3) -> tuple[dict, list]:
    """Render / hover / click figures of both map charts at ``n`` points in headless Chromium."""
    if not Path(CHROMIUM).exists():
        return {"browser_skipped": True}, [("map in the browser", "skipped", f"{CHROMIUM} not found")]
    from playwright.sync_api import sync_playwright

    table, coords, thumbs, seconds = synthetic_map(n)
    out = {f"thumbnails_{n}_s": round(seconds, 2),
           f"thumbnails_{n}_mb": round(sum(len(t) for t in thumbs) / 1e6, 2)}
    rows = [(f"{n:,} thumbnails, 32 px PNG data URLs (once per model file)",
             f"{seconds:.1f} s, {out[f'thumbnails_{n}_mb']} MB", "")]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        with open(folder / "map.pkl", "wb") as f:
            pickle.dump((table, coords, thumbs), f)
        (folder / "map_app.py").write_text(MAP_APP.format(repo=str(REPO), data=str(folder / "map.pkl")))
        process, url = start_streamlit(folder / "map_app.py", folder, {**os.environ, "PYTHONPATH": str(REPO)})
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                # warm the server (imports, pickle load) so both charts start from the same place
                warm = browser.new_page()
                warm.goto(f"{url}/?kind=plotly")
                warm.wait_for_selector(PLOT["plotly"], timeout=300_000)
                warm.close()
                for kind in ("vega", "plotly"):
                    _progress(f"map in the browser: {kind}, {n} points")
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    started = time.perf_counter()
                    page.goto(f"{url}/?kind={kind}")
                    page.wait_for_selector(PLOT[kind], timeout=300_000)
                    drawn = time.perf_counter() - started
                    box = page.locator(PLOT[kind]).first.bounding_box()
                    away = (box["x"] + 2, box["y"] + box["height"] - 2)
                    deadline = time.monotonic() + 300
                    while not _hover(page, kind, page.evaluate(POINTS_ON_SCREEN[kind], 3), away):
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"no hover label on the {kind} map within 300 s")
                    ready = time.perf_counter() - started
                    _progress(f"{kind}: first hover label after {ready:.1f} s")
                    hits = _hover(page, kind, page.evaluate(POINTS_ON_SCREEN[kind], hovers), away)
                    hover = [h[2] for h in hits]
                    clicked = []
                    for x, y, _, row in [h for h in hits if h[3] is not None][:clicks]:
                        # after a click the app reruns and the chart may be drawn anew: hover until it answers
                        if not _hover(page, kind, [(x, y)] * 30, away, limit_ms=2_000):
                            continue
                        t = time.perf_counter()
                        page.mouse.click(x, y)
                        try:
                            page.get_by_text(f"picked row {row}", exact=True).wait_for(timeout=60_000)
                        except Exception:  # noqa: BLE001 — counted as a missed click, reported
                            continue
                        clicked.append((time.perf_counter() - t) * 1000)
                    page.close()
                    name = "Vega-Lite (Altair) with thumbnails" if kind == "vega" else "plotly WebGL, text hover"
                    out[f"map_{kind}_canvas_s"] = round(drawn, 2)
                    out[f"map_{kind}_ready_s"] = round(ready, 2)
                    out[f"map_{kind}_hover_p50_ms"] = pct(hover, 50)
                    out[f"map_{kind}_hover_p95_ms"] = pct(hover, 95)
                    out[f"map_{kind}_click_p50_ms"] = pct(clicked, 50)
                    out[f"map_{kind}_click_max_ms"] = round(max(clicked), 1) if clicked else float("nan")
                    rows.append((f"map at {n:,} points, {name}: page open → canvas / first hover label",
                                 f"{drawn:.1f} s / {ready:.1f} s", "report"))
                    rows.append((f"  hover → label shown ({len(hover)} of {hovers} points hit)",
                                 f"p50 {out[f'map_{kind}_hover_p50_ms']} ms, p95 {out[f'map_{kind}_hover_p95_ms']} ms",
                                 "report"))
                    rows.append((f"  click → app has the clicked row ({len(clicked)} of {clicks} clicks registered)",
                                 f"p50 {out[f'map_{kind}_click_p50_ms']} ms, max {out[f'map_{kind}_click_max_ms']} ms",
                                 "report"))
                browser.close()
        finally:
            stop_streamlit(process)
    return out, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: skips t-SNE / UMAP of 16,000 points and the browser map")
    parser.add_argument("--run", help="a trained run folder (thesis preset) for the slider figure")
    parser.add_argument("--map-points", type=int, default=17_400, help="points of the browser map (IXI: 17,400)")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser map figures")
    parser.add_argument("--tsne-only", action="store_true",
                        help="only t-SNE of 1,200 and 16,000 points (1,200 with --quick) against bare openTSNE")
    args = parser.parse_args()
    rows, out = [], {}
    if args.tsne_only:
        for n in (1200,) if args.quick else (1200, 16000):
            figures, tsne_rows = tsne_vs_opentsne(n)
            out.update(figures)
            rows += tsne_rows
        _print(rows, out)
        return

    parts, what = slider_ms(args.run, 30 if args.quick else 100)
    out["slider_p50_ms"] = pct(parts["total"], 50)
    out["slider_p95_ms"] = pct(parts["total"], 95)
    for key in ("move", "decode", "png"):
        out[f"slider_{key}_p50_ms"] = pct(parts[key], 50)
        out[f"slider_{key}_p95_ms"] = pct(parts[key], 95)
    out["slider_first_decode_ms"] = round(parts["first_decode_ms"], 1)
    rows.append((f"slider → decoded PNG, {what}", f"p50 {out['slider_p50_ms']} ms, p95 {out['slider_p95_ms']} ms",
                 "p95 < 50 ms"))
    rows.append(("  of it: move / decode / PNG (p50; p95)",
                 " / ".join(f"{out[f'slider_{k}_p50_ms']}" for k in ("move", "decode", "png")) + " ms; "
                 + " / ".join(f"{out[f'slider_{k}_p95_ms']}" for k in ("move", "decode", "png")) + " ms",
                 f"first call (traces the graph) {out['slider_first_decode_ms']} ms; "
                 f"graph traced {parts['traces']}× in {len(parts['total']) + 1} calls"))
    out["slider_decode_traces"] = parts["traces"]
    out["slider_decode_pair_p50_ms"] = pct(parts["decode_pair"], 50)
    rows.append(("  decode of 2 latents (moved + start; a zero / sample start did this per change "
                 "before its decoded start was kept)", f"p50 {out['slider_decode_pair_p50_ms']} ms",
                 f"vs 1 latent p50 {out['slider_decode_p50_ms']} ms"))

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
    figures, tsne_rows = tsne_vs_opentsne(1200)
    out.update(figures)
    rows += tsne_rows
    out["sklearn_tsne_1200_s"] = round(timed(lambda: SkTSNE(2, random_state=0).fit_transform(x12)), 2)
    out["tsne_1200_ratio"] = round(out["sklearn_tsne_1200_s"] / out["tsne_1200_s"], 2)
    rows.append(("t-SNE of 1,200 latents, scikit-learn", f"{out['sklearn_tsne_1200_s']} s",
                 f"ours {out['tsne_1200_ratio']}× faster"))

    if not args.quick:
        figures, tsne_rows = tsne_vs_opentsne(16000)
        out.update(figures)
        rows += tsne_rows
        out["umap_first_16000_s"] = round(timed(lambda: project(x16, "umap", 0)), 1)
        out["umap_16000_s"] = round(timed(lambda: project(x16, "umap", 0)), 1)
        rows.append(("UMAP of 16,000 latents: first call / warm", f"{out['umap_first_16000_s']} / "
                     f"{out['umap_16000_s']} s", "first call includes numba compile or cache load"))
        if not args.no_browser:
            figures, browser_rows = browser_map(args.map_points)
            out.update(figures)
            rows += browser_rows

    _print(rows, out)


def _print(rows, out) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}} | result | target / baseline")
    for name, result, target in rows:
        print(f"{name:<{width}} | {result} | {target}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
