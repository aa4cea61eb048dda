"""Plotly figures of the training curves."""

from __future__ import annotations

import pandas as pd

from core.viz import curves as plots

VAE_ROWS = pd.DataFrame({"epoch": [1, 2, 3], "loss": [9.0, 5.0, 3.0], "recon": [8.0, 4.0, 2.0],
                         "kl": [1.0, 1.0, 1.0], "beta": [0.3, 0.6, 1.0], "val_loss": [10.0, 6.0, 4.0],
                         "val_recon": [9.0, 5.0, 3.0], "val_kl": [1.0, 1.0, 1.0], "seconds": [1, 1, 1]})


def test_vae_curves_with_beta_on_a_secondary_axis():
    fig = plots.loss_figure(VAE_ROWS, "vae", log_y=True)
    names = [t.name for t in fig.data]
    assert names[:2] == ["total", "val total"] and "KL (nats)" in names and "β (KL weight)" in names
    beta = next(t for t in fig.data if t.name == "β (KL weight)")
    assert beta.yaxis == "y2"
    assert fig.layout.yaxis.type == "log"


def test_vqvae_curves_and_prior():
    rows = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "recon": [0.8, 0.4], "vq": [0.2, 0.1],
                         "perplexity": [10.0, 20.0], "val_loss": [1.1, 0.6]})
    names = [t.name for t in plots.loss_figure(rows, "vqvae").data]
    assert {"total", "val total", "VQ commitment", "codebook perplexity"} <= set(names)
    prior = plots.prior_figure(pd.DataFrame({"epoch": [1], "loss": [3.0], "val_loss": [3.1]}))
    assert len(prior.data) == 2


def test_empty_metrics_give_a_placeholder():
    fig = plots.loss_figure(pd.DataFrame(), "vae")
    assert not fig.data and fig.layout.annotations[0].text == "no epochs finished yet"


def test_overlay_of_several_runs():
    other = VAE_ROWS.assign(val_loss=[12.0, 8.0, 7.0])
    curves = {"a": VAE_ROWS, "b": other}
    assert plots.overlay_metrics(curves)[:2] == ["val_loss", "loss"]
    fig = plots.overlay_figure(curves, "val_loss")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [12.0, 8.0, 7.0]


def test_codebook_and_adversary_figures_appear_only_with_their_columns():
    vq = pd.DataFrame({"epoch": [1, 2], "perplexity": [20.0, 90.0], "usage": [0.3, 0.95],
                       "disc_loss": [1.0, 0.9], "val_disc_loss": [1.0, 0.95], "adversarial": [0.0, 0.2],
                       "feature_matching": [0.1, 0.08]})
    codebook = plots.codebook_figure(vq, num_embeddings=128)
    assert [t.name for t in codebook.data] == ["perplexity", "codes used (fraction)"]
    assert codebook.layout.shapes[0].y0 == 64  # the goal: half the codebook
    names = [t.name for t in plots.adversarial_figure(vq).data]
    assert names[:2] == ["discriminator hinge loss", "val discriminator hinge loss"]
    assert "feature matching" in names
    assert plots.codebook_figure(VAE_ROWS) is None and plots.adversarial_figure(VAE_ROWS) is None
