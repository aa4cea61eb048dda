"""Figures for the Latent explorer: compare row with a difference view, strips, GIFs, maps.

The map comes in two forms: :func:`map_chart`, a Vega-Lite (Altair) scatter whose hover shows
each slice's thumbnail (a tooltip field named ``image`` holding a PNG data URL, which Vega's
tooltip draws as a picture), and :func:`map_figure`, a plotly WebGL scatter with text hover
for maps too large to carry a thumbnail per point (see ``THUMBNAIL_MAX_POINTS``).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from core.viz.images import image_grid, png_bytes

__all__ = ["upscale", "difference_rgb", "compare_png", "strip_png", "gif_bytes", "map_figure", "map_chart",
           "thumbnail", "thumbnail_urls", "CATEGORY_COLOURS", "COLOUR_BY", "MAP_SELECTION", "THUMBNAIL_PX",
           "THUMBNAIL_MAX_POINTS"]

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
UNKNOWN_COLOUR = "#bbbbbb"  # points whose colouring attribute (e.g. age) is unknown


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
                                       marker=dict(size=5, color=UNKNOWN_COLOUR), **common))
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


# ------------------------------------------------------------------ thumbnails and the Vega-Lite map
#: Side of a hover thumbnail in pixels (32 px greyscale PNG: about 1 kB as a data URL).
THUMBNAIL_PX = 32
#: Most points drawn by :func:`map_chart` with a thumbnail each; larger maps use :func:`map_figure`.
#: Chosen from ``bench/latent.py``'s browser figures (Vega canvas at 17,400 points); see the README.
THUMBNAIL_MAX_POINTS = 20_000
#: Name of the map's point selection (what ``st.altair_chart(on_select=…)`` reports).
MAP_SELECTION = "pick"


def thumbnail(image, size: int = THUMBNAIL_PX) -> np.ndarray:
    """``(size, size)`` uint8 of an ``(S, S)`` image in [0, 1], box-averaged (never sharpened).

    >>> thumbnail(np.ones((64, 64)), 32).shape
    (32, 32)
    """
    image = np.clip(np.asarray(image, "float32"), 0, 1)
    if image.ndim != 2:
        raise ValueError(f"thumbnail takes one (S, S) image, got shape {image.shape}")
    h, w = image.shape
    if h % size == 0 and w % size == 0:
        small = image.reshape(size, h // size, size, w // size).mean(axis=(1, 3))
    else:
        grey = Image.fromarray((image * 255 + 0.5).astype(np.uint8))
        return np.asarray(grey.resize((size, size), Image.Resampling.BOX), np.uint8)
    return (small * 255 + 0.5).astype(np.uint8)


def thumbnail_urls(images, size: int = THUMBNAIL_PX) -> list[str]:
    """PNG data URLs (``data:image/png;base64,…``) of ``(n, S, S)`` images in [0, 1], one per
    image, ``size`` px greyscale — what the map's ``image`` tooltip field holds."""
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(thumbnail(image, size), "L").save(buffer, format="PNG", compress_level=9)
        out.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return out


def _category_order(values: pd.Series, colour_by: str) -> list[str]:
    if colour_by == "split":
        return [s for s in ("train", "val", "test") if s in set(values)]
    if colour_by == "slice":
        return sorted(values.unique(), key=lambda v: (len(v), v))
    return sorted(values.unique())


def _category_colours(n: int) -> list[str]:
    if n > len(CATEGORY_COLOURS):
        return [f"hsl({int(300 * i / max(1, n - 1))},70%,45%)" for i in range(n)]
    return CATEGORY_COLOURS[:n]


def map_chart(table: pd.DataFrame, coords, colour_by: str = "age", thumbnails=None, synthetic=None,
              title: str = "", height: int = 560):
    """Vega-Lite (Altair) scatter of a map: one circle per slice, coloured by ``colour_by`` (age:
    continuous Viridis, unknown ages grey; sex / site / slice / split: categories).

    Hover shows the slice's thumbnail (``thumbnails``: one data URL per row, see
    :func:`thumbnail_urls`) above its subject, age, sex, site, slice, split and row.  A click is
    the point selection named ``MAP_SELECTION`` over the field ``row`` (the global row id), and
    rings the clicked point in the browser; wheel and drag zoom and pan.  ``synthetic`` ``(m, 2)``
    adds samples as magenta crosses.  Drawn on a canvas, without per-point ARIA labels.  Returns an
    ``alt.LayerChart`` for ``st.altair_chart``.
    """
    import altair as alt

    coords = np.asarray(coords, "float64")
    if len(coords) != len(table):
        raise ValueError(f"{len(coords)} map points for {len(table)} slices")
    data = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "row": table["row"].to_numpy(int),
                         "subject": table["subject"].astype(str).to_numpy(),
                         "age": table["age"].to_numpy("float64"),
                         "sex": table["sex"].astype(str).replace("", "unknown").to_numpy(),
                         "site": table["site"].astype(str).replace("", "unknown").to_numpy(),
                         "slice": table["slice"].to_numpy(int), "split": table["split"].astype(str).to_numpy()})
    tooltip = [alt.Tooltip("subject:N"), alt.Tooltip("age:Q", format=".0f"), alt.Tooltip("sex:N"),
               alt.Tooltip("site:N"), alt.Tooltip("slice:O"), alt.Tooltip("split:N"), alt.Tooltip("row:O")]
    if thumbnails is not None:
        if len(thumbnails) != len(table):
            raise ValueError(f"{len(thumbnails)} thumbnails for {len(table)} slices")
        data["image"] = list(thumbnails)
        tooltip.insert(0, alt.Tooltip("image:N"))  # vega-tooltip draws the field named "image" as <img>
    if colour_by == "age":
        # Vega-Lite drops a mark whose continuous encoded field is null/NaN (its default
        # invalid-data mode), so an unknown age would hide the point: the colour reads a field
        # that is always valid (unknown -> the median known age, never shown) and a flag
        # turns those points grey.  With no known age at all the map is grey throughout.
        known = np.isfinite(data["age"].to_numpy())
        if known.any():
            data["age_colour"] = np.where(known, data["age"], float(np.median(data["age"][known])))
            data["age_known"] = known
            colour = (alt.when("datum.age_known")
                      .then(alt.Color("age_colour:Q", title="age", scale=alt.Scale(scheme="viridis")))
                      .otherwise(alt.value(UNKNOWN_COLOUR)))
        else:
            colour = alt.value(UNKNOWN_COLOUR)
    else:
        data["colour"] = table[colour_by].astype(str).replace("", "unknown").to_numpy()
        order = _category_order(data["colour"], colour_by)
        colour = alt.Color("colour:N", title=COLOUR_BY[colour_by],
                           scale=alt.Scale(domain=order, range=_category_colours(len(order))),
                           legend=alt.Legend(orient="bottom", columns=min(10, len(order))))
    pick = alt.selection_point(name=MAP_SELECTION, fields=["row"], on="click", toggle=False)
    zoom = alt.selection_interval(name="zoom", bind="scales")
    small = 36 if len(data) <= 3000 else 16
    axis = dict(axis=None, scale=alt.Scale(zero=False))
    points = alt.Chart(data).mark_circle(opacity=0.85).encode(
        x=alt.X("x:Q", **axis), y=alt.Y("y:Q", **axis), color=colour, tooltip=tooltip,
        size=alt.when(pick, empty=False).then(alt.value(260)).otherwise(alt.value(small)),
        stroke=alt.when(pick, empty=False).then(alt.value("red")).otherwise(alt.value(None)),
    ).add_params(pick, zoom)
    layers = [points]
    if synthetic is not None and len(synthetic):
        synthetic = np.asarray(synthetic, "float64")
        samples = pd.DataFrame({"x": synthetic[:, 0], "y": synthetic[:, 1], "sample": np.arange(len(synthetic))})
        layers.append(alt.Chart(samples).mark_point(shape="cross", filled=True, size=90, color=SYNTHETIC_COLOUR)
                      .encode(x="x:Q", y="y:Q", tooltip=[alt.Tooltip("sample:O", title="synthetic sample")]))
    # canvas, not SVG (one DOM node per point), and no per-point ARIA labels (each would repeat the
    # thumbnail's data URL): Streamlit picks these itself only above 2,000 / 5,000 points
    return (alt.layer(*layers).properties(height=height, title=title or "",
                                          usermeta={"embedOptions": {"renderer": "canvas"}})
            .configure_mark(aria=False))
