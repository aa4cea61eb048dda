"""Figures for the Latent explorer: compare row with a difference view, strips, GIFs, map scatter."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from core.viz.images import image_grid, png_bytes

__all__ = ["upscale", "difference_rgb", "compare_png", "strip_png", "gif_bytes", "map_figure",
           "CATEGORY_COLOURS", "COLOUR_BY"]

#: Colour-by choices of the map: metadata column → label.
COLOUR_BY = {"age": "age", "sex": "sex", "site": "site", "slice": "slice index", "split": "split"}
CATEGORY_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``(H, W[, C])`` (pixels stay visible; never smoothed)."""
    image = np.asarray(image)
    factor = max(1, int(factor))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def difference_rgb(image, reference, limit: float = 0.5) -> np.ndarray:
    """``image - reference`` as ``(H, W, 3)`` uint8: red where brighter, blue where darker,
    white where equal; full colour at ``±limit``."""
    d = np.clip((np.asarray(image, "float32") - np.asarray(reference, "float32")) / limit, -1, 1)
    pos, neg = np.clip(d, 0, 1), np.clip(-d, 0, 1)
    rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _grey_rgb(image) -> np.ndarray:
    g = (np.clip(np.asarray(image, "float32"), 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def compare_png(reference, image, factor: int = 4, pad: int = 4) -> bytes:
    """PNG of three panels side by side: ``reference`` | ``image`` | difference (``image - reference``)."""
    panels = [_grey_rgb(reference), _grey_rgb(image), difference_rgb(image, reference)]
    panels = [upscale(p, factor) for p in panels]
    h, w = panels[0].shape[:2]
    out = np.full((h, 3 * w + 2 * pad, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        out[:, i * (w + pad) : i * (w + pad) + w] = p
    return png_bytes(out)


def strip_png(images, factor: int = 2) -> bytes:
    """One row of ``(n, S, S)`` images in [0, 1] as PNG bytes (nearest upscaling)."""
    images = np.asarray(images)
    return png_bytes(image_grid(images, ncols=len(images), upscale=factor))


def gif_bytes(images, factor: int = 2, frame_ms: int = 120, bounce: bool = True) -> bytes:
    """Animated GIF of ``(n, S, S)`` frames in [0, 1]; ``bounce`` plays forward then back, looping."""
    frames = [(np.clip(np.asarray(f, "float32"), 0, 1) * 255 + 0.5).astype(np.uint8) for f in images]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    pil = [Image.fromarray(upscale(f, factor)) for f in frames]
    buffer = io.BytesIO()
    pil[0].save(buffer, format="GIF", save_all=True, append_images=pil[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def _hover(table: pd.DataFrame) -> list[str]:
    age = table["age"].map(lambda a: "?" if pd.isna(a) else f"{a:.0f}")
    return ("<b>" + table["subject"].astype(str) + "</b><br>age " + age + " · " + table["sex"].replace("", "?")
            + " · " + table["site"].replace("", "?") + "<br>slice " + table["slice"].astype(str) + " · "
            + table["split"].astype(str) + " · row " + table["row"].astype(str)).tolist()


#: Marker colour of projected synthetic samples: apart from Viridis and the category colours.
SYNTHETIC_COLOUR = "#ff00ff"


def map_figure(table: pd.DataFrame, coords, colour_by: str = "age", synthetic=None, selected: int | None = None,
               title: str = "", height: int = 560) -> go.Figure:
    """WebGL scatter of a map: one point per slice, coloured by ``colour_by`` (age: continuous
    scale; sex / site / slice / split: categories), every trace's ``customdata`` holding the
    global row id (point indices are per trace).  ``synthetic`` ``(m, 2)`` adds samples as
    magenta crosses (visible on the dark and the light theme; black vanished on
    the dark one); ``selected`` rings one row."""
    coords = np.asarray(coords)
    fig = go.Figure()
    text = _hover(table)
    rows = table["row"].to_numpy()
    common = dict(mode="markers", hovertemplate="%{text}<extra></extra>")
    if colour_by == "age":
        ages = table["age"].to_numpy(dtype="float64")
        known = np.isfinite(ages)
        if (~known).any():
            fig.add_trace(go.Scattergl(x=coords[~known, 0], y=coords[~known, 1], customdata=rows[~known],
                                       text=[text[i] for i in np.flatnonzero(~known)], name="age unknown",
                                       marker=dict(size=5, color="#bbbbbb"), **common))
        if known.any():
            fig.add_trace(go.Scattergl(
                x=coords[known, 0], y=coords[known, 1], customdata=rows[known],
                text=[text[i] for i in np.flatnonzero(known)], name="age",
                marker=dict(size=5, color=ages[known], colorscale="Viridis", showscale=True,
                            colorbar=dict(title="age", thickness=12)), **common))
    else:
        values = table[colour_by].astype(str).replace("", "unknown")
        order = sorted(values.unique(), key=lambda v: (len(v), v)) if colour_by == "slice" else sorted(values.unique())
        if colour_by == "split":
            order = [s for s in ("train", "val", "test") if s in set(values)]
        many = len(order) > len(CATEGORY_COLOURS)
        for i, value in enumerate(order):
            mask = (values == value).to_numpy()
            colour = (f"hsl({int(300 * i / max(1, len(order) - 1))},70%,45%)" if many
                      else CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])
            fig.add_trace(go.Scattergl(x=coords[mask, 0], y=coords[mask, 1], customdata=rows[mask],
                                       text=[text[j] for j in np.flatnonzero(mask)], name=f"{colour_by} {value}",
                                       marker=dict(size=5, color=colour), **common))
    if synthetic is not None and len(synthetic):
        synthetic = np.asarray(synthetic)
        fig.add_trace(go.Scattergl(x=synthetic[:, 0], y=synthetic[:, 1], mode="markers", name="synthetic samples",
                                   customdata=np.full(len(synthetic), -1), hovertemplate="synthetic sample<extra></extra>",
                                   marker=dict(size=9, color=SYNTHETIC_COLOUR, symbol="x")))
    if selected is not None and 0 <= int(selected) < len(coords):
        fig.add_trace(go.Scattergl(x=[coords[int(selected), 0]], y=[coords[int(selected), 1]], mode="markers",
                                   name="selected", customdata=[int(selected)], hoverinfo="skip",
                                   marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="red"))))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=-0.05), dragmode="pan", clickmode="event+select",
                      xaxis=dict(showticklabels=False, title=""), yaxis=dict(showticklabels=False, title=""))
    return fig
