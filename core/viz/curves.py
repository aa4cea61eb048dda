"""Plotly figures of training curves: loss terms, the prior, several runs overlaid (no Streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["loss_figure", "prior_figure", "codebook_figure", "adversarial_figure", "overlay_figure", "overlay_metrics"]

# Train terms per model type: (column, label, dashed-for-validation partner)
_TERMS = {
    "vae": [("loss", "total"), ("recon", "reconstruction"), ("kl", "KL (nats)")],
    "vqvae": [("loss", "total"), ("recon", "reconstruction (MSE)"), ("vq", "VQ commitment")],
}
_SECONDARY = {"vae": ("beta", "β (KL weight)"), "vqvae": ("perplexity", "codebook perplexity")}
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _empty(title: str, message: str = "no epochs finished yet") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, height=320, xaxis_visible=False, yaxis_visible=False)
    return fig


def loss_figure(metrics: pd.DataFrame, model_type: str, log_y: bool = False, title: str = "Loss") -> go.Figure:
    """Curves of a run's ``metrics.csv`` rows against epoch.

    Train terms solid, validation terms dashed in the same colour; the VAE's β schedule (or
    the VQ-VAE's codebook perplexity) on a secondary y axis.  ``log_y`` puts the loss axis
    on a log scale (non-positive values are not drawn there).
    """
    if metrics is None or metrics.empty or "epoch" not in metrics:
        return _empty(title)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = metrics["epoch"]
    for i, (column, label) in enumerate(_TERMS.get(model_type, [("loss", "total")])):
        color = _COLORS[i % len(_COLORS)]
        if column in metrics:
            fig.add_trace(go.Scatter(x=x, y=metrics[column], name=label, mode="lines+markers",
                                     line={"color": color}, marker={"size": 4}), secondary_y=False)
        if f"val_{column}" in metrics:
            fig.add_trace(go.Scatter(x=x, y=metrics[f"val_{column}"], name=f"val {label}",
                                     mode="lines", line={"color": color, "dash": "dash"}), secondary_y=False)
    column, label = _SECONDARY.get(model_type, (None, None))
    if column in metrics:
        fig.add_trace(go.Scatter(x=x, y=metrics[column], name=label, mode="lines",
                                 line={"color": "#7f7f7f", "dash": "dot"}),
                      secondary_y=True)
        fig.update_yaxes(title_text=label, secondary_y=True, showgrid=False, rangemode="tozero")
    fig.update_yaxes(title_text="loss", type="log" if log_y else "linear", secondary_y=False)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    return fig


def _lines(metrics: pd.DataFrame, columns, title: str, y_title: str, height: int = 300) -> go.Figure:
    """Train (solid) and validation (dashed) curves of ``columns`` [(column, label)] per epoch."""
    fig = go.Figure()
    for i, (column, label) in enumerate(columns):
        color = _COLORS[i % len(_COLORS)]
        if column in metrics:
            fig.add_trace(go.Scatter(x=metrics["epoch"], y=metrics[column], name=label, mode="lines+markers",
                                     line={"color": color}, marker={"size": 4}))
        if f"val_{column}" in metrics:
            fig.add_trace(go.Scatter(x=metrics["epoch"], y=metrics[f"val_{column}"], name=f"val {label}",
                                     mode="lines", line={"color": color, "dash": "dash"}))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3}, hovermode="x unified")
    fig.update_yaxes(title_text=y_title)
    fig.update_xaxes(title_text="epoch")
    return fig


def codebook_figure(metrics: pd.DataFrame, num_embeddings: int | None = None) -> go.Figure | None:
    """A VQ-VAE's codebook health per epoch: perplexity (effective number of codes used, per
    batch) and the fraction of codes used; a dotted line at half the codebook, the goal.
    None when the metrics have no codebook columns (not a VQ-VAE)."""
    if metrics is None or metrics.empty or "perplexity" not in metrics:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = metrics["epoch"]
    fig.add_trace(go.Scatter(x=x, y=metrics["perplexity"], name="perplexity", mode="lines+markers",
                             line={"color": _COLORS[0]}, marker={"size": 4}), secondary_y=False)
    if "usage" in metrics:
        fig.add_trace(go.Scatter(x=x, y=metrics["usage"], name="codes used (fraction)", mode="lines",
                                 line={"color": _COLORS[1]}), secondary_y=True)
        fig.update_yaxes(title_text="fraction used", range=[0, 1.05], secondary_y=True, showgrid=False)
    if num_embeddings:
        fig.add_hline(y=num_embeddings / 2, line_dash="dot", line_color="#7f7f7f",
                      annotation_text="half the codebook", secondary_y=False)
    fig.update_yaxes(title_text="perplexity", rangemode="tozero", secondary_y=False)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title="Codebook", height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3}, hovermode="x unified")
    return fig


def adversarial_figure(metrics: pd.DataFrame) -> go.Figure | None:
    """The adversarial option's curves: the discriminator's hinge loss (1 = it cannot tell
    reconstructions from real slices, 0 = it always can), the decoder's adversarial term and
    the feature-matching term.  None when the run has no adversary."""
    if metrics is None or metrics.empty or "disc_loss" not in metrics:
        return None
    return _lines(metrics, [("disc_loss", "discriminator hinge loss"), ("adversarial", "decoder adversarial term"),
                            ("feature_matching", "feature matching")],
                  "Adversary (discriminator loss 1 = chance)", "loss")


def prior_figure(metrics: pd.DataFrame, log_y: bool = False) -> go.Figure:
    """The VQ-VAE prior's cross-entropy (nats per code), train and validation, per epoch."""
    if metrics is None or metrics.empty or "epoch" not in metrics:
        return _empty("Prior", "the prior trains after the VQ-VAE")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=metrics["epoch"], y=metrics["loss"], name="prior NLL", mode="lines+markers",
                             line={"color": _COLORS[3]}, marker={"size": 4}))
    if "val_loss" in metrics:
        fig.add_trace(go.Scatter(x=metrics["epoch"], y=metrics["val_loss"], name="val prior NLL",
                                 mode="lines", line={"color": _COLORS[3], "dash": "dash"}))
    fig.update_layout(title="Prior (nats per code)", height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3}, hovermode="x unified")
    fig.update_yaxes(type="log" if log_y else "linear")
    fig.update_xaxes(title_text="epoch")
    return fig


def overlay_metrics(curves: dict[str, pd.DataFrame]) -> list[str]:
    """Columns every run in ``curves`` has (besides epoch/seconds), ``val_loss`` first if present."""
    common = None
    for frame in curves.values():
        cols = {c for c in frame.columns if c not in ("epoch", "seconds")}
        common = cols if common is None else common & cols
    ordered = sorted(common or [])
    for first in ("loss", "val_loss"):
        if first in ordered:
            ordered.insert(0, ordered.pop(ordered.index(first)))
    return ordered


def overlay_figure(curves: dict[str, pd.DataFrame], metric: str = "val_loss", log_y: bool = False) -> go.Figure:
    """One ``metric`` of several runs (``{run name: metrics DataFrame}``) against epoch."""
    fig = go.Figure()
    for i, (name, frame) in enumerate(curves.items()):
        if frame is None or frame.empty or metric not in frame:
            continue
        fig.add_trace(go.Scatter(x=frame["epoch"], y=frame[metric], name=name, mode="lines+markers",
                                 line={"color": _COLORS[i % len(_COLORS)]}, marker={"size": 4}))
    if not fig.data:
        return _empty(f"{metric} by run", "no run has this metric yet")
    fig.update_layout(title=f"{metric} by run", height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    fig.update_yaxes(title_text=metric, type="log" if log_y else "linear")
    fig.update_xaxes(title_text="epoch")
    return fig
