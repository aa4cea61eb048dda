"""Convolutional building blocks shared by the VAE and the VQ-VAE (down, up and residual blocks).

Each ``*_block`` function adds standard Keras layers to a functional graph and returns the new
tensor.  Feature maps are channels-last ``(B, H, W, C)``.  Layers that belong to one model only
live in that model's module (``Sampling`` in ``vae.py``, ``VectorQuantizer`` in ``vqvae.py``,
the masked convolutions in ``prior.py``).
"""

from __future__ import annotations

from keras import layers

from core.models.presets import UPSAMPLE_MODES  # noqa: F401  (re-exported: the modes up_block takes)

__all__ = ["BN_MOMENTUM", "UPSAMPLE_MODES", "down_block", "up_block", "residual_block"]

#: BatchNorm moving-average momentum.  Keras' 0.99 lags ~500 steps behind the weights; with
#: ~20 steps per epoch on the demo cohort, inference-mode outputs (reconstructions, code
#: indices) were wrong for the first dozens of epochs.  0.9 tracks within ~20 steps.
BN_MOMENTUM = 0.9


def down_block(x, filters, kernel_size=4, name=None):
    """Conv (stride 2, 'same') + BatchNorm + LeakyReLU(0.2): halves H and W."""
    x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def up_block(x, filters, kernel_size=4, name=None, upsample="transpose"):
    """Upsampling (:data:`UPSAMPLE_MODES`) + BatchNorm + LeakyReLU(0.2): doubles H and W."""
    if upsample == "resize":
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    elif upsample == "transpose":
        x = layers.Conv2DTranspose(
            filters, kernel_size, strides=2, padding="same", name=f"{name}_deconv"
        )(x)
    else:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def residual_block(x, filters, name=None):
    """``x + Conv1x1(LeakyReLU(Conv3x3(LeakyReLU(x))))``; keeps the shape (channels = ``filters``)."""
    y = layers.LeakyReLU(0.2, name=f"{name}_act1")(x)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(y)
    y = layers.LeakyReLU(0.2, name=f"{name}_act2")(y)
    y = layers.Conv2D(x.shape[-1], 1, name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])
