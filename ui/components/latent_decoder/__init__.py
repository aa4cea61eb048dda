"""Latent sliders that decode in the browser: a custom Streamlit component (no Node at run time).

``latent_decoder(...)`` shows one slider per direction and the decoded view (reference | decoded |
difference, as :func:`core.viz.latent.compare_png`).  A move is computed and decoded in the page
(onnxruntime-web, single-threaded WebAssembly, served from ``build/``); the server hears only
``{"status": "view", "sliders": {key: value}, "nonce": …}`` when the user presses *Copy view*, or
once ``{"status": "unsupported", "reason": …}`` when the browser cannot decode.

``build/`` holds the built assets and ships in the repository; ``scripts/build_components.sh``
rebuilds it from ``frontend/`` with npm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit.components.v1 as components

__all__ = ["latent_decoder", "BUILD_DIR", "built"]

BUILD_DIR = Path(__file__).parent / "build"
_component = components.declare_component("latent_decoder", path=str(BUILD_DIR))


def built() -> bool:
    """Whether the built assets are present (the page falls back to the server without them)."""
    return all((BUILD_DIR / f).is_file() for f in ("index.html", "main.js", "ort.wasm.min.js",
                                                   "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"))


def latent_decoder(*, model: bytes, model_key: str, start, directions, reference, sliders: list[dict],
                   groups: list[dict], image_size: int, factor: int, view_key: str, condition=None,
                   start_codes=None, caption: str = "", pad: int = 4, key: str | None = None):
    """Render the sliders and the decoded view; returns the last value the component sent (or None).

    Args:
        model: the ONNX decoder's bytes (:meth:`core.training.runs.RunData.decoder_export`).
        model_key: changes when the model does (the page reloads the decoder only then).
        start: ``(dim,)`` start latent.  directions: ``(k, dim)``, one slider unit each, in the
            order of ``sliders``.  reference: ``(S, S)`` image in [0, 1] the view is compared with.
        sliders: ``{key, label, min, max, step, value, group, help}`` per direction.
        groups: ``{name, title[, note]}`` in display order.
        view_key: changes when the start point or the applied view does (sliders are reset to
            their ``value`` then).
        condition: a conditional VAE's ``(3,)`` condition vector.  start_codes: a VQ-VAE's start
            codes ``(h, w)`` (the page counts the codes a move changed).
    """
    start = np.ascontiguousarray(start, "<f4").ravel()
    directions = np.ascontiguousarray(directions, "<f4").reshape(-1, start.size)
    return _component(
        model=bytes(model), model_key=model_key, start=start.tobytes(), directions=directions.tobytes(),
        reference=np.ascontiguousarray(reference, "<f4").tobytes(), sliders=sliders, groups=groups,
        image_size=int(image_size), factor=int(factor), pad=int(pad), view_key=view_key,
        condition=None if condition is None else [float(v) for v in np.ravel(condition)],
        start_codes=None if start_codes is None else np.ascontiguousarray(start_codes, "<i4").tobytes(),
        caption=caption, key=key, default=None)
