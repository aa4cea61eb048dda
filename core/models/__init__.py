"""Generative models: VAE, VQ-VAE with a PixelCNN prior, shared layers and named presets.

Models are Keras 3 models written with ``keras.ops``; save them as ``.keras`` and load them
with ``keras.saving.load_model(path, safe_mode=True)`` (all classes are registered).
"""

from core.models.layers import (
    GatedActivation,
    MaskedConv2D,
    PositionBias,
    Sampling,
    VectorQuantizer,
    causal_mask,
)
from core.models.prior import PixelCNNPrior
from core.models.presets import (
    MODEL_TYPES,
    PRESET_NAMES,
    build_model,
    build_prior,
    get_preset,
    validate_config,
)
from core.models.vae import VAE, active_units, build_vae, kl_beta_schedule, kl_per_unit
from core.models.vqvae import VQVAE, build_vqvae

__all__ = [
    "VAE",
    "VQVAE",
    "PixelCNNPrior",
    "Sampling",
    "VectorQuantizer",
    "MaskedConv2D",
    "GatedActivation",
    "PositionBias",
    "causal_mask",
    "build_vae",
    "build_vqvae",
    "build_model",
    "build_prior",
    "get_preset",
    "validate_config",
    "kl_beta_schedule",
    "kl_per_unit",
    "active_units",
    "MODEL_TYPES",
    "PRESET_NAMES",
]
