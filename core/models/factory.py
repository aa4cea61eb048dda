"""Build a model from a config: validate it (``presets.validate_config``), then construct it.

The one place that turns a config dict into an uncompiled Keras model, so callers need not
know which module holds which model.
"""

from __future__ import annotations

from core.errors import UserError
from core.models.presets import validate_config
from core.models.prior import CodePrior, build_pixelcnn_prior
from core.models.diffusion_prior import build_diffusion_prior
from core.models.transformer_prior import build_transformer_prior
from core.models.vae import build_vae
from core.models.vqvae import build_vqvae

__all__ = ["build_model", "build_prior", "prior_for"]

#: ``prior_type`` -> builder of that prior from a validated config.
PRIOR_BUILDERS = {"pixelcnn": build_pixelcnn_prior, "transformer": build_transformer_prior,
                  "diffusion": build_diffusion_prior}


def build_model(config):
    """Validate ``config`` and build its (uncompiled) :class:`~core.models.vae.VAE` or
    :class:`~core.models.vqvae.VQVAE`.

    Raises:
        UserError: for a bad config, naming the key and showing the bad value.
    """
    c = validate_config(config)
    return build_vae(c) if c["model_type"] == "vae" else build_vqvae(c)


def build_prior(config) -> CodePrior:
    """Validate a VQ-VAE ``config`` and build its (uncompiled) prior: by ``prior_type`` a gated
    PixelCNN, a causal transformer (:mod:`core.models.transformer_prior`) or a latent diffusion
    model (:mod:`core.models.diffusion_prior`, which needs the VQ-VAE's codebook: :func:`prior_for`).

    Raises:
        UserError: for a bad config or a config whose ``model_type`` is not ``"vqvae"``.
    """
    c = validate_config(config)
    if c["model_type"] != "vqvae":
        raise UserError(f"model_type must be 'vqvae' to build a prior, got {c['model_type']!r}")
    return PRIOR_BUILDERS[c["prior_type"]](c)


def prior_class(prior_type: str) -> type:
    """The class of a ``prior_type`` (what a saved VQ-VAE's prior config names)."""
    from core.models.diffusion_prior import DiffusionPrior
    from core.models.prior import PixelCNNPrior
    from core.models.transformer_prior import TransformerPrior

    classes = {"pixelcnn": PixelCNNPrior, "transformer": TransformerPrior, "diffusion": DiffusionPrior}
    if prior_type not in classes:
        raise UserError(f"unknown prior_type {prior_type!r}; one of {', '.join(classes)}")
    return classes[prior_type]


def prior_for(config, vqvae) -> CodePrior:
    """:func:`build_prior`, ready to train on ``vqvae``'s code grids: a diffusion prior gets its
    codebook (the autoregressive priors need nothing from it)."""
    prior = build_prior(config)
    if hasattr(prior, "set_codebook"):
        prior.set_codebook(vqvae.quantizer.codebook.numpy())
    return prior
