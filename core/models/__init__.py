"""Generative models: VAE, VQ-VAE with a PixelCNN prior, named presets and the model factory.

Where things are:

- ``presets.py``: named configs as plain data and ``validate_config`` (no Keras import);
- ``factory.py``: ``build_model`` / ``build_prior`` (validate a config, then construct);
- ``vae.py``: ``Sampling`` + ``VAE``; ``vqvae.py``: ``VectorQuantizer`` + ``VQVAE``;
  ``prior.py``: ``CodePrior`` (what every code-grid prior shares), masked convolutions, gated
  blocks, ``PositionBias`` + ``PixelCNNPrior``; ``transformer_prior.py``: ``TransformerPrior``;
  ``diffusion_prior.py``: ``DiffusionPrior`` (a U-Net denoising code vectors, DDIM sampling);
  ``aggregate.py``: a Gaussian mixture on a VAE's training latents (aggregate posterior);
- ``blocks.py``: the conv blocks both autoencoders use; ``inference.py``: batching and the
  compiled-function cache behind the models' verbs; ``_checks.py``: argument checks.

The preset names below are imported eagerly; every Keras-backed name is imported on first
access, so ``from core.models import get_preset`` does not load TensorFlow.  Models are Keras
3 models written with ``keras.ops``; save them as ``.keras`` and load them with
``keras.saving.load_model(path, safe_mode=True)`` once :func:`register` (or any model
module) has been imported — every class is registered under the package ``latentbrain``.
"""

from __future__ import annotations

import importlib

from core.models.presets import MODEL_TYPES, PRESET_NAMES, get_preset, validate_config

_LAZY = {
    "VAE": "vae",
    "Sampling": "vae",
    "build_vae": "vae",
    "kl_beta_schedule": "vae",
    "kl_per_unit": "vae",
    "active_units": "vae",
    "VQVAE": "vqvae",
    "VectorQuantizer": "vqvae",
    "build_vqvae": "vqvae",
    "PixelCNNPrior": "prior",
    "CodePrior": "prior",
    "TransformerPrior": "transformer_prior",
    "CausalBlock": "transformer_prior",
    "build_transformer_prior": "transformer_prior",
    "DiffusionPrior": "diffusion_prior",
    "build_diffusion_prior": "diffusion_prior",
    "MaskedConv2D": "prior",
    "GatedActivation": "prior",
    "PositionBias": "prior",
    "causal_mask": "prior",
    "build_pixelcnn_prior": "prior",
    "AggregatePosterior": "aggregate",
    "fit_aggregate_posterior": "aggregate",
    "fit_model_aggregate": "aggregate",
    "build_model": "factory",
    "build_prior": "factory",
    "prior_for": "factory",
}

__all__ = ["MODEL_TYPES", "PRESET_NAMES", "get_preset", "validate_config", "register", *_LAZY]


def register() -> None:
    """Import every model module, registering all custom Keras classes for ``load_model``."""
    for module in sorted(set(_LAZY.values())):
        importlib.import_module(f"core.models.{module}")


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
