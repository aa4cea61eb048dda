"""Build a model from a config: validate it (``presets.validate_config``), then construct it.

The one place that turns a config dict into an uncompiled Keras model, so callers need not
know which module holds which model.
"""

from __future__ import annotations

from core.errors import UserError
from core.models.presets import validate_config
from core.models.prior import CodePrior, build_pixelcnn_prior
from core.models.transformer_prior import build_transformer_prior
from core.models.vae import build_vae
from core.models.vqvae import build_vqvae

__all__ = ["build_model", "build_prior"]


def build_model(config):
    """Validate ``config`` and build its (uncompiled) :class:`~core.models.vae.VAE` or
    :class:`~core.models.vqvae.VQVAE`.

    Raises:
        UserError: for a bad config, naming the key and showing the bad value.
    """
    c = validate_config(config)
    return build_vae(c) if c["model_type"] == "vae" else build_vqvae(c)


def build_prior(config) -> CodePrior:
    """Validate a VQ-VAE ``config`` and build its (uncompiled) prior: a gated PixelCNN or, with
    ``prior_type="transformer"``, a causal transformer (:mod:`core.models.transformer_prior`).

    Raises:
        UserError: for a bad config or a config whose ``model_type`` is not ``"vqvae"``.
    """
    c = validate_config(config)
    if c["model_type"] != "vqvae":
        raise UserError(f"model_type must be 'vqvae' to build a prior, got {c['model_type']!r}")
    return build_transformer_prior(c) if c["prior_type"] == "transformer" else build_pixelcnn_prior(c)
