"""Layers shared by the VAE, the VQ-VAE and the PixelCNN prior.

Each layer does one job: :class:`Sampling` reparameterises, :class:`VectorQuantizer` owns the
codebook (nearest-code lookup, EMA updates, dead-code restarts), :class:`MaskedConv2D` is a
causal convolution whose mask is applied to the kernel inside ``call()`` (so optimizer steps can
never undo it) and :class:`GatedActivation` is the PixelCNN gate.  The ``*_block`` functions
add standard Keras layers to a functional graph.

Images are ``(B, H, W, 1)`` float32 in [0, 1]; feature maps are channels-last.  Layers that
must stay exact under the ``mixed_float16`` policy (sampling, quantizer) run in float32.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops

from core.models._checks import check_choice, check_float, check_int

__all__ = [
    "Sampling",
    "VectorQuantizer",
    "MaskedConv2D",
    "GatedActivation",
    "PositionBias",
    "down_block",
    "up_block",
    "residual_block",
    "gated_pixelcnn_block",
    "causal_mask",
]

_register = keras.saving.register_keras_serializable(package="latentbrain")

#: BatchNorm moving-average momentum.  Keras' 0.99 lags ~500 steps behind the weights; with
#: ~20 steps per epoch on the demo cohort, inference-mode outputs (reconstructions, code
#: indices) were wrong for the first dozens of epochs.  0.9 tracks within ~20 steps.
_BN_MOMENTUM = 0.9


@_register
class Sampling(layers.Layer):
    """Reparameterisation ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    Args:
        seed: seed of the layer's own ``keras.random.SeedGenerator``.

    Call on ``[z_mean, z_log_var]``, both ``(B, latent_dim)``; returns ``(B, latent_dim)`` float32.
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = (ops.cast(t, "float32") for t in inputs)
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def down_block(x, filters, kernel_size=4, name=None):
    """Conv (stride 2, 'same') + BatchNorm + LeakyReLU(0.2): halves H and W."""
    x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def up_block(x, filters, kernel_size=4, name=None):
    """Transposed conv (stride 2, 'same') + BatchNorm + LeakyReLU(0.2): doubles H and W."""
    x = layers.Conv2DTranspose(
        filters, kernel_size, strides=2, padding="same", name=f"{name}_deconv"
    )(x)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def residual_block(x, filters, name=None):
    """``x + Conv1x1(LeakyReLU(Conv3x3(LeakyReLU(x))))``; keeps the shape (channels = ``filters``)."""
    y = layers.LeakyReLU(0.2, name=f"{name}_act1")(x)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(y)
    y = layers.LeakyReLU(0.2, name=f"{name}_act2")(y)
    y = layers.Conv2D(x.shape[-1], 1, name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


@_register
class VectorQuantizer(layers.Layer):
    """Codebook of ``num_embeddings`` vectors of size ``embedding_dim``; nearest-code lookup.

    ``call(z_e)`` maps ``(..., D)`` encoder outputs to ``(z_q, indices)``: ``z_q`` has the
    same shape (float32, straight-through: its gradient flows to ``z_e`` unchanged) and
    ``indices`` is ``(...)`` int32.  ``update(flat, indices)`` is the training-time state
    update the owning model calls once per step after its optimizer step: it initialises the
    codebook from the first batch's encoder outputs (``data_init``), updates the codes as
    exponential moving averages of their assigned vectors (``use_ema``; otherwise the codebook
    is trained by the codebook loss) and re-initialises *dead* codes — those whose running
    share of assignments fell below ``restart_threshold / num_embeddings`` — from random
    encoder outputs of the batch.  Distances, codebook and EMA state are float32.

    Args:
        num_embeddings: number of codes K (>= 2).
        embedding_dim: code size D (>= 1).
        use_ema: update codes by EMA (True) or by gradient (False).
        ema_decay: decay of the moving averages, in (0, 1).
        epsilon: Laplace smoothing of the EMA cluster sizes.
        restart_dead_codes: re-initialise unused codes from the batch.
        restart_threshold: a code is dead below this fraction of its uniform share of use.
        data_init: initialise the codebook from the first training batch.
        seed: seed of the layer's SeedGenerator (initialisation and restarts).
    """

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        use_ema=True,
        ema_decay=0.99,
        epsilon=1e-5,
        restart_dead_codes=True,
        restart_threshold=0.03,
        data_init=True,
        seed=None,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 2)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.use_ema = bool(use_ema)
        self.ema_decay = check_float("ema_decay", ema_decay, 0.0, 1.0, open_min=True, open_max=True)
        self.epsilon = check_float("epsilon", epsilon, 0.0, open_min=True)
        self.restart_dead_codes = bool(restart_dead_codes)
        self.restart_threshold = check_float("restart_threshold", restart_threshold, 0.0)
        self.data_init = bool(data_init)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.embedding_dim:
            raise ValueError(
                f"VectorQuantizer expects inputs with {self.embedding_dim} channels, "
                f"got shape {tuple(input_shape)}"
            )
        k, d = self.num_embeddings, self.embedding_dim
        state = dict(trainable=False, aggregation="mean")
        self.codebook = self.add_weight(
            name="codebook",
            shape=(k, d),
            initializer=keras.initializers.RandomUniform(-1.0 / k, 1.0 / k),
            trainable=not self.use_ema,
            aggregation="mean",
        )
        self.ema_cluster_size = self.add_weight(
            name="ema_cluster_size", shape=(k,), initializer="ones", **state
        )
        self.ema_dw = self.add_weight(name="ema_dw", shape=(k, d), initializer="zeros", **state)
        self.usage = self.add_weight(
            name="usage", shape=(k,), initializer=keras.initializers.Constant(1.0 / k), **state
        )
        self.initialized = self.add_weight(
            name="initialized", shape=(), initializer="zeros", **state
        )

    def get_code_indices(self, flat_inputs, codebook=None):
        """Index of the nearest code (squared L2) for each row of ``(N, D)`` inputs: ``(N,)`` int32."""
        codebook = self.codebook if codebook is None else codebook
        flat = ops.cast(flat_inputs, "float32")
        distances = (
            ops.sum(flat**2, axis=1, keepdims=True)
            - 2.0 * ops.matmul(flat, ops.transpose(codebook))
            + ops.sum(codebook**2, axis=1)[None, :]
        )
        return ops.cast(ops.argmin(distances, axis=1), "int32")

    def lookup(self, indices):
        """Codes for integer ``indices`` of any shape: ``indices.shape + (D,)`` float32."""
        return ops.take(self.codebook, ops.cast(indices, "int32"), axis=0)

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, self.embedding_dim))
        indices = self.get_code_indices(flat)
        quantized = ops.reshape(ops.take(self.codebook, indices, axis=0), shape)
        quantized = inputs + ops.stop_gradient(quantized - inputs)
        return quantized, ops.reshape(indices, shape[:-1])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:-1])

    def update(self, flat_inputs, indices):
        """Training-time codebook update for one batch; returns nothing.

        Args:
            flat_inputs: ``(N, D)`` encoder outputs of the batch.
            indices: ``(N,)`` their code indices (computed before this update).
        """
        k = self.num_embeddings
        decay = self.ema_decay
        flat = ops.stop_gradient(ops.cast(flat_inputs, "float32"))
        indices = ops.reshape(ops.cast(indices, "int32"), (-1,))
        n = ops.shape(flat)[0]
        ready = self.initialized > 0.5

        codebook = ops.convert_to_tensor(self.codebook)
        if self.data_init:
            picks = keras.random.randint((k,), 0, n, seed=self.seed_generator, dtype="int32")
            codebook = ops.where(ready, codebook, ops.take(flat, picks, axis=0))
            indices = ops.where(ready, indices, self.get_code_indices(flat, codebook))
        one_hot = ops.one_hot(indices, k, dtype="float32")  # (N, K)
        counts = ops.sum(one_hot, axis=0)
        n_float = ops.cast(n, "float32")

        cluster_size = ops.where(ready, self.ema_cluster_size, ops.ones((k,)))
        dw = ops.where(ready, self.ema_dw, codebook * cluster_size[:, None])
        if self.use_ema:
            cluster_size = decay * cluster_size + (1.0 - decay) * counts
            dw = decay * dw + (1.0 - decay) * ops.matmul(ops.transpose(one_hot), flat)
            total = ops.sum(cluster_size)
            smoothed = (cluster_size + self.epsilon) / (total + k * self.epsilon) * total
            codebook = dw / smoothed[:, None]

        usage = ops.where(ready, self.usage, ops.full((k,), 1.0 / k))
        usage = decay * usage + (1.0 - decay) * counts / n_float
        if self.restart_dead_codes:
            dead = usage < (self.restart_threshold / k)
            picks = keras.random.randint((k,), 0, n, seed=self.seed_generator, dtype="int32")
            fresh = ops.take(flat, picks, axis=0)
            codebook = ops.where(dead[:, None], fresh, codebook)
            usage = ops.where(dead, 1.0 / k, usage)
            cluster_size = ops.where(dead, 1.0, cluster_size)
            dw = ops.where(dead[:, None], fresh, dw)

        self.codebook.assign(codebook)
        self.ema_cluster_size.assign(cluster_size)
        self.ema_dw.assign(dw)
        self.usage.assign(usage)
        self.initialized.assign(1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "use_ema": self.use_ema,
            "ema_decay": self.ema_decay,
            "epsilon": self.epsilon,
            "restart_dead_codes": self.restart_dead_codes,
            "restart_threshold": self.restart_threshold,
            "data_init": self.data_init,
            "seed": self.seed,
        }


def causal_mask(kernel_size, mask_type):
    """``(kh, kw)`` float32 mask of a raster-order causal kernel (centre = the output pixel).

    ``"A"``: rows above and pixels left of the centre (first layer: excludes the pixel itself);
    ``"B"``: as A plus the centre (later layers); ``"V"``: rows above and the whole centre row
    (vertical stack of a gated PixelCNN; causal only once shifted down one row).

    >>> causal_mask((3, 3), "A").astype(int).tolist()
    [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    >>> causal_mask((3, 3), "V").astype(int).tolist()
    [[1, 1, 1], [1, 1, 1], [0, 0, 0]]
    >>> causal_mask((1, 3), "B").astype(int).tolist()
    [[1, 1, 0]]
    """
    kh, kw = kernel_size
    ch, cw = kh // 2, kw // 2
    mask = np.zeros((kh, kw), dtype="float32")
    mask[:ch, :] = 1.0
    if mask_type == "V":
        mask[ch, :] = 1.0
    if mask_type in ("A", "B"):
        mask[ch, :cw] = 1.0
    if mask_type == "B":
        mask[ch, cw] = 1.0
    return mask


@_register
class MaskedConv2D(layers.Layer):
    """Stride-1 'same' convolution whose kernel is multiplied by a causal mask in ``call()``.

    Args:
        filters: output channels.
        kernel_size: odd int or ``(kh, kw)`` of odd ints.
        mask_type: ``"A"``, ``"B"`` or ``"V"`` (see :func:`causal_mask`).
        use_bias: add a bias.
    """

    def __init__(self, filters, kernel_size, mask_type="B", use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters, 1)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.kernel_size = tuple(check_int("kernel_size", k, 1) for k in kernel_size)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"MaskedConv2D kernel_size must be odd, got {self.kernel_size}")
        self.mask_type = check_choice("mask_type", mask_type, ("A", "B", "V"))
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(kh, kw, input_shape[-1], self.filters),
            initializer="glorot_uniform",
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )
        self._mask = causal_mask(self.kernel_size, self.mask_type)[:, :, None, None]

    def call(self, inputs):
        kernel = self.kernel * ops.cast(self._mask, self.kernel.dtype)
        outputs = ops.conv(inputs, ops.cast(kernel, inputs.dtype), strides=1, padding="same")
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "mask_type": self.mask_type,
            "use_bias": self.use_bias,
        }


@_register
class GatedActivation(layers.Layer):
    """``tanh(a) * sigmoid(b)`` where ``a, b`` are the two halves of the last axis."""

    def call(self, inputs):
        a, b = ops.split(inputs, 2, axis=-1)
        return ops.tanh(a) * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@_register
class PositionBias(layers.Layer):
    """Adds a learned ``(grid_size, grid_size, C)`` bias: tells a convolutional stack where it is.

    Convolutions alone only sense the grid's edges through their zero padding; a prior
    needs the absolute position to place e.g. the bottom edge of the head.  The bias does
    not depend on the data, so it cannot break causality.  Inputs must be
    ``(B, grid_size, grid_size, C)``; :meth:`row` gives one row of the bias.
    """

    def __init__(self, grid_size, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = check_int("grid_size", grid_size, 1)

    def build(self, input_shape):
        g = self.grid_size
        self.bias = self.add_weight(name="bias", shape=(g, g, input_shape[-1]), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)[None]

    def row(self, index):
        """The bias of row ``index`` (int or int tensor) as ``(1, 1, grid_size, C)``."""
        return ops.take(self.bias, index, axis=0)[None, None]

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}


def gated_pixelcnn_block(v, h, filters, kernel_size, first, name, grid_size=None):
    """One gated PixelCNN layer (van den Oord et al. 2016) with vertical and horizontal stacks.

    The vertical stack sees the rows above and the current row (mask "V"); it reaches the
    horizontal stack shifted down one row, so a position only gets information from the rows
    strictly above it, from a cone that widens with depth.  The horizontal stack sees the
    pixels to the left in its row (mask "A" in the ``first`` layer, then "B" with a residual
    connection).  Together they cover every earlier position in raster order: no blind spot.
    With ``grid_size`` a :class:`PositionBias` is added before the horizontal gate.

    Returns ``(v, h)``, each ``(B, h, w, filters)``.
    """
    v_conv = MaskedConv2D(2 * filters, (kernel_size, kernel_size), "V", name=f"{name}_v")(v)
    v_out = GatedActivation(name=f"{name}_v_gate")(v_conv)
    v_to_h = layers.Conv2D(2 * filters, 1, name=f"{name}_v_to_h")(v_conv)
    v_to_h = layers.ZeroPadding2D(((1, 0), (0, 0)), name=f"{name}_v_pad")(v_to_h)
    v_to_h = layers.Cropping2D(((0, 1), (0, 0)), name=f"{name}_v_shift")(v_to_h)
    h_conv = MaskedConv2D(
        2 * filters, (1, kernel_size), "A" if first else "B", name=f"{name}_h"
    )(h)
    h_pre = layers.Add(name=f"{name}_vh")([h_conv, v_to_h])
    if grid_size is not None:
        h_pre = PositionBias(grid_size, name=f"{name}_pos")(h_pre)
    h_gated = GatedActivation(name=f"{name}_h_gate")(h_pre)
    h_out = layers.Conv2D(filters, 1, name=f"{name}_h_out")(h_gated)
    if not first:
        h_out = layers.Add(name=f"{name}_res")([h, h_out])
    return v_out, h_out


def compiled(owner, key, fn):
    """Cache ``fn`` compiled as a graph function on ``owner`` (inference fast path).

    With the TensorFlow backend this is ``tf.function(fn, reduce_retracing=True)``; the
    cache is stored outside Keras' attribute tracking so it is never saved.
    """
    cache = owner.__dict__.get("_latentbrain_compiled")
    if cache is None:
        cache = {}
        object.__setattr__(owner, "_latentbrain_compiled", cache)
    if key not in cache:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            cache[key] = tf.function(fn, reduce_retracing=True)
        else:
            cache[key] = fn
    return cache[key]
