"""Gated PixelCNN prior over VQ-VAE code grids: learns p(indices), samples new grids.

Reading order: its layers (:func:`causal_mask`, :class:`MaskedConv2D` — a causal convolution
whose mask is applied to the kernel inside ``call()`` so optimizer steps can never undo it —,
:class:`GatedActivation`, :class:`PositionBias`, :class:`ConditionBias` and
:func:`gated_pixelcnn_block`), the network builder, the :class:`PixelCNNPrior` model, its builder.

Code grids are ``(B, h, w)`` int32 in ``[0, num_embeddings)``; logits are
``(B, h, w, num_embeddings)`` float32.  The logits at a position depend only on positions
before it in raster order (row by row, left to right).  A conditional prior
(``condition_dim > 0``) also takes a ``(B, condition_dim)`` float32 vector per grid (age, sex,
slice position: :mod:`core.models.conditions`), the same at every position.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops

from core.errors import UserError
from core.models._checks import check_choice, check_float, check_int
from core.models.conditions import CONDITION_DIM
from core.models.inference import compiled

__all__ = [
    "causal_mask",
    "MaskedConv2D",
    "GatedActivation",
    "PositionBias",
    "ConditionBias",
    "gated_pixelcnn_block",
    "get_pixelcnn",
    "CodePrior",
    "PixelCNNPrior",
    "build_pixelcnn_prior",
    "grid_prior_args",
    "raster_reach",
]


def raster_reach(n_layers, kernel_size):
    """Rows above a position whose codes can reach its logits in a gated PixelCNN of
    ``n_layers`` layers with ``kernel_size`` masks: ``n_layers * (kernel_size // 2) + 1``.

    The vertical stack climbs ``kernel_size // 2`` rows (and as many columns to each side) per
    layer, plus the one-row shift into the horizontal stack.  On a ``g x g`` grid the last row
    sees the first only when this is at least ``g - 1``; a shorter reach leaves the lower rows
    blind to the top of the grid (the end-of-raster drift of issue 10).

    >>> raster_reach(8, 3), raster_reach(8, 5)
    (9, 17)
    """
    return int(n_layers) * (int(kernel_size) // 2) + 1


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


@keras.saving.register_keras_serializable(package="latentbrain")
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
            raise UserError(f"kernel_size must be odd, got {self.kernel_size}")
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


@keras.saving.register_keras_serializable(package="latentbrain")
class GatedActivation(layers.Layer):
    """``tanh(a) * sigmoid(b)`` where ``a, b`` are the two halves of the last axis."""

    def call(self, inputs):
        a, b = ops.split(inputs, 2, axis=-1)
        return ops.tanh(a) * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="latentbrain")
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


@keras.saving.register_keras_serializable(package="latentbrain")
class ConditionBias(layers.Layer):
    """Adds a learned projection of a conditioning vector to every position of a feature map.

    ``call([x, c])`` with ``x`` ``(B, h, w, units)`` and ``c`` ``(B, C)`` returns
    ``x + (c @ kernel + bias)`` broadcast over ``h, w`` — the ``V^T h`` term of a conditional
    gated PixelCNN (van den Oord et al. 2016).  It does not depend on the codes, so it cannot
    break causality.  :meth:`project` gives the ``(B, 1, 1, units)`` term alone.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = check_int("units", units, 1)

    def build(self, input_shape):
        condition_dim = input_shape[1][-1]
        self.kernel = self.add_weight(name="kernel", shape=(condition_dim, self.units),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def project(self, condition):
        """``(B, 1, 1, units)`` projection of ``(B, C)`` conditions (in the layer's compute dtype)."""
        c = ops.cast(condition, self.compute_dtype)
        out = ops.matmul(c, ops.cast(self.kernel, c.dtype)) + ops.cast(self.bias, c.dtype)
        return out[:, None, None, :]

    def call(self, inputs):
        x, condition = inputs
        return x + ops.cast(self.project(condition), x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def gated_pixelcnn_block(v, h, filters, kernel_size, first, name, grid_size=None, condition=None):
    """One gated PixelCNN layer (van den Oord et al. 2016) with vertical and horizontal stacks.

    The vertical stack sees the rows above and the current row (mask "V"); it reaches the
    horizontal stack shifted down one row, so a position only gets information from the rows
    strictly above it, from a cone that widens with depth.  The horizontal stack sees the
    pixels to the left in its row (mask "A" in the ``first`` layer, then "B" with a residual
    connection).  Together they cover every earlier position in raster order: no blind spot.
    With ``grid_size`` a :class:`PositionBias` is added before the horizontal gate; with a
    ``condition`` tensor ``(B, C)`` a :class:`ConditionBias` is added before each gate
    (``{name}_cond_v``, ``{name}_cond_h``; the vertical stack passes its features to the
    horizontal one before its condition term, which the horizontal stack adds itself).

    Returns ``(v, h)``, each ``(B, h, w, filters)``.
    """
    v_conv = MaskedConv2D(2 * filters, (kernel_size, kernel_size), "V", name=f"{name}_v")(v)
    v_pre = v_conv
    if condition is not None:
        v_pre = ConditionBias(2 * filters, name=f"{name}_cond_v")([v_conv, condition])
    v_out = GatedActivation(name=f"{name}_v_gate")(v_pre)
    v_to_h = layers.Conv2D(2 * filters, 1, name=f"{name}_v_to_h")(v_conv)
    v_to_h = layers.ZeroPadding2D(((1, 0), (0, 0)), name=f"{name}_v_pad")(v_to_h)
    v_to_h = layers.Cropping2D(((0, 1), (0, 0)), name=f"{name}_v_shift")(v_to_h)
    h_conv = MaskedConv2D(
        2 * filters, (1, kernel_size), "A" if first else "B", name=f"{name}_h"
    )(h)
    h_pre = layers.Add(name=f"{name}_vh")([h_conv, v_to_h])
    if grid_size is not None:
        h_pre = PositionBias(grid_size, name=f"{name}_pos")(h_pre)
    if condition is not None:
        h_pre = ConditionBias(2 * filters, name=f"{name}_cond_h")([h_pre, condition])
    h_gated = GatedActivation(name=f"{name}_h_gate")(h_pre)
    h_out = layers.Conv2D(filters, 1, name=f"{name}_h_out")(h_gated)
    if not first:
        h_out = layers.Add(name=f"{name}_res")([h, h_out])
    return v_out, h_out


def get_pixelcnn(num_embeddings, grid_size, filters=64, n_layers=8, kernel_size=3, condition_dim=0):
    """Functional gated PixelCNN: ``(B, g, g)`` int32 codes -> ``(B, g, g, K)`` float32 logits.

    Embedding, ``n_layers`` :func:`gated_pixelcnn_block` (the first with mask "A", each with a
    learned position bias), then two 1x1 convolutions.  With ``condition_dim > 0`` the inputs
    are ``[codes, condition]``, the condition ``(B, condition_dim)`` float32, projected into
    every gate.
    """
    codes = keras.Input((grid_size, grid_size), dtype="int32", name="codes")
    condition = keras.Input((condition_dim,), name="condition") if condition_dim else None
    inputs = codes if condition is None else [codes, condition]
    x = layers.Embedding(num_embeddings, filters, name="embed")(codes)
    v, h = x, x
    for i in range(n_layers):
        v, h = gated_pixelcnn_block(
            v, h, filters, kernel_size, first=i == 0, name=f"gated{i}", grid_size=grid_size,
            condition=condition,
        )
    x = layers.ReLU(name="head_act1")(h)
    x = layers.Conv2D(2 * filters, 1, name="head_conv")(x)
    x = layers.ReLU(name="head_act2")(x)
    logits = layers.Conv2D(num_embeddings, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="pixelcnn")


class CodePrior(keras.Model):
    """What every prior over code grids shares: the loss in nats per code, the training and test
    steps, condition checks and :meth:`log_likelihood`.  Subclasses build their network, give
    :meth:`call` (logits ``(B, h, w, K)``) and :meth:`sample`, and set ``num_embeddings``,
    ``grid_size``, ``condition_dim`` and ``loss_tracker``."""

    #: ``prior_type`` in a config (``core.models.presets``); the key that picks the class on load.
    prior_type = ""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def compute_loss_value(self, indices, training=False, condition=None):
        """Mean cross-entropy (nats per code) of code grids ``(B, h, w)`` under the model
        (a conditional prior needs their ``condition`` ``(B, condition_dim)``)."""
        indices = ops.cast(indices, "int32")
        if self.condition_dim:
            if condition is None:
                raise UserError("a conditional prior trains on (indices, conditions): fit(indices, conditions)")
            logits = self((indices, condition), training=training)
        else:
            logits = self(indices, training=training)
        ce = keras.losses.sparse_categorical_crossentropy(indices, logits, from_logits=True)
        return ops.mean(ce)

    def _unpack(self, data):
        """``(indices, conditions or None)`` from a batch: ``x``, ``(x,)``, ``((x, c),)`` or ``(x, c)``."""
        if not isinstance(data, (tuple, list)):
            return data, None
        if len(data) == 1 and isinstance(data[0], (tuple, list)):
            data = data[0]
        c = data[1] if self.condition_dim and len(data) > 1 else None
        return data[0], c

    def train_step(self, data):
        import tensorflow as tf  # GradientTape: the TF backend's training hook

        x, c = self._unpack(data)
        with tf.GradientTape() as tape:
            loss = self.compute_loss_value(x, training=True, condition=c)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x, c = self._unpack(data)
        self.loss_tracker.update_state(self.compute_loss_value(x, training=False, condition=c))
        return {"loss": self.loss_tracker.result()}

    def _condition(self, condition, n):
        """``(n, condition_dim)`` float32 ndarray for a conditional prior, None for an unconditional one."""
        if not self.condition_dim:
            if condition is not None:
                raise UserError("this prior is not conditional: it cannot be given a condition")
            return None
        if condition is None:
            raise UserError(f"this prior is conditional: give a ({n}, {self.condition_dim}) condition array")
        c = np.asarray(condition, dtype="float32")
        if c.shape != (n, self.condition_dim) or not np.isfinite(c).all():
            raise UserError(f"condition must be a finite ({n}, {self.condition_dim}) array, got shape {c.shape}")
        return c

    def log_likelihood(self, indices, batch_size=256, condition=None):
        """Mean cross-entropy in nats per code of ``(N, h, w)`` grids (float); a conditional
        prior needs their ``condition`` ``(N, condition_dim)``."""
        indices = np.asarray(indices, "int32")
        c = self._condition(condition, len(indices))
        if c is None:
            fn = compiled(self, "nll", lambda t: self.compute_loss_value(t))
            parts = [(float(fn(indices[s : s + batch_size])), len(indices[s : s + batch_size]))
                     for s in range(0, len(indices), batch_size)]
        else:
            fn = compiled(self, "nll_c", lambda t, u: self.compute_loss_value(t, condition=u))
            parts = [(float(fn(indices[s : s + batch_size], c[s : s + batch_size])), len(indices[s : s + batch_size]))
                     for s in range(0, len(indices), batch_size)]
        return sum(v * k for v, k in parts) / max(1, len(indices))


@keras.saving.register_keras_serializable(package="latentbrain")
class PixelCNNPrior(CodePrior):
    """Autoregressive prior over ``grid_size x grid_size`` code grids.

    Args:
        num_embeddings: number of codes K (the VQ-VAE's codebook size).
        grid_size: side of the code grid.
        filters: channels of the gated stacks.
        n_layers: gated layers (a position sees ``n_layers * (kernel_size // 2) + 1`` rows up).
        kernel_size: odd kernel of the masked convolutions.
        condition_dim: length of a conditioning vector per grid (0: unconditional).  A
            conditional prior adds a learned projection of it before every gate (a conditional
            gated PixelCNN), so its codes can be asked for e.g. an age and a slice position.

    Train with ``fit(indices)`` (targets are the inputs), or for a conditional prior
    ``fit(indices, conditions)`` / a dataset of ``(indices, conditions)`` pairs; the metric
    ``loss`` is the cross-entropy in nats per code.

    Examples:
        >>> prior = PixelCNNPrior(num_embeddings=8, grid_size=4, filters=8, n_layers=2)
        >>> prior.sample(2, seed=0).shape
        (2, 4, 4)
    """

    prior_type = "pixelcnn"

    def __init__(self, num_embeddings=128, grid_size=16, filters=64, n_layers=8, kernel_size=3,
                 condition_dim=0, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(**kwargs)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 2)
        self.grid_size = check_int("grid_size", grid_size, 1)
        self.filters = check_int("prior_filters", filters, 1)
        self.n_layers = check_int("prior_layers", n_layers, 1)
        self.kernel_size = check_int("prior_kernel_size", kernel_size, 3)
        if self.kernel_size % 2 == 0:
            raise UserError(f"prior_kernel_size must be odd, got {self.kernel_size}")
        self.condition_dim = check_int("condition_dim", condition_dim, 0)
        self.net = get_pixelcnn(
            self.num_embeddings, self.grid_size, self.filters, self.n_layers, self.kernel_size,
            self.condition_dim,
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    def call(self, inputs, training=False):
        """Logits ``(B, h, w, K)`` float32 for code grids ``(B, h, w)`` (a conditional prior:
        ``(codes, conditions)`` with conditions ``(B, condition_dim)``)."""
        if self.condition_dim:
            codes, condition = inputs
            inputs = [ops.cast(codes, "int32"), ops.cast(condition, "float32")]
        else:
            inputs = ops.cast(inputs, "int32")
        return ops.cast(self.net(inputs, training=training), "float32")

    def sample(self, n, seed=0, temperature=1.0, condition=None):
        """``n`` code grids drawn autoregressively: ``(n, grid_size, grid_size)`` int32 ndarray.

        ``temperature`` divides the logits (0 gives the most likely code at each step).  The
        vertical stack (rows above) runs once per row, on the rows its receptive field
        reaches; only the horizontal stack of the current row runs once per position.
        A conditional prior needs ``condition``, an ``(n, condition_dim)`` float32 array
        (:func:`core.models.conditions.condition_array` makes one from a request).
        """
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0)
        c = self._condition(condition, n)
        rng = np.random.default_rng(seed)
        g = self.grid_size
        grid = np.zeros((n, g, g), dtype="int32")
        if n == 0:
            return grid
        vertical = compiled(self, "vertical", self._vertical_features)
        sample_row = compiled(self, "sample_row", self._sample_row)
        reach = self.n_layers * (self.kernel_size // 2)
        inv_temp = np.float32(1.0 / temperature if temperature > 0 else 1.0)
        for i in range(g):
            if i == 0:  # nothing above the first row: the shifted-in zeros
                v_to_h = [np.zeros((n, 1, g, 2 * self.filters), "float32")] * self.n_layers
            else:
                v_to_h = vertical(grid[:, max(0, i - 1 - reach) : i], c)
            if temperature > 0:
                noise = rng.gumbel(size=(n, g, self.num_embeddings)).astype("float32")
            else:
                noise = np.zeros((n, g, self.num_embeddings), "float32")
            grid[:, i] = np.asarray(sample_row(v_to_h, noise, inv_temp, np.int32(i), c))
        return grid

    def _sample_row(self, v_to_h, noise, inv_temp, row_index, condition=None):
        """Draw one row ``(B, w)`` int32 left to right (Gumbel-max with the given noise)."""
        shape = ops.shape(noise)
        width = self.grid_size

        def body(j, row):
            logits = self._row_logits(row[:, None, :], v_to_h, row_index, condition)[:, 0]  # (B, w, K)
            scores = ops.take(logits, j, axis=1) * inv_temp + ops.take(noise, j, axis=1)
            code = ops.cast(ops.argmax(scores, axis=-1), "int32")
            return row + code[:, None] * ops.cast(ops.one_hot(j, width), "int32")[None, :]

        return ops.fori_loop(0, width, body, ops.zeros((shape[0], width), "int32"))

    def _vertical_features(self, grid, condition=None):
        """Vertical-stack inputs to the horizontal stack of the row *below* the last row of
        ``grid`` ``(B, r, w)``: a list (one per layer) of ``(B, 1, w, 2 * filters)`` tensors.
        A conditional prior takes the grids' ``condition`` ``(B, condition_dim)``."""
        layer = self.net.get_layer
        v = layer("embed")(grid)
        out = []
        for i in range(self.n_layers):
            v_conv = layer(f"gated{i}_v")(v)
            out.append(layer(f"gated{i}_v_to_h")(v_conv[:, -1:]))
            if i + 1 < self.n_layers:  # the last gate feeds nothing (not in the graph)
                if condition is not None:
                    v_conv = layer(f"gated{i}_cond_v")([v_conv, condition])
                v = layer(f"gated{i}_v_gate")(v_conv)
        return out

    def _row_logits(self, row, v_to_h, row_index, condition=None):
        """Logits ``(B, 1, w, K)`` of row ``row_index`` (codes ``(B, 1, w)``) given
        :meth:`_vertical_features` (and the grids' ``condition`` for a conditional prior);
        equal to ``self.net`` on the full grid at that row."""
        layer = self.net.get_layer
        h = layer("embed")(row)
        for i in range(self.n_layers):
            h_conv = layer(f"gated{i}_h")(h)
            pre = h_conv + ops.cast(v_to_h[i], h_conv.dtype)
            pre = pre + ops.cast(layer(f"gated{i}_pos").row(row_index), pre.dtype)
            if condition is not None:
                pre = layer(f"gated{i}_cond_h")([pre, condition])
            gated = layer(f"gated{i}_h_gate")(pre)
            h_out = layer(f"gated{i}_h_out")(gated)
            h = h_out if i == 0 else h + h_out
        x = layer("head_conv")(ops.relu(h))
        return ops.cast(layer("logits")(ops.relu(x)), "float32")

    def get_config(self):
        return {
            "name": self.name,
            "num_embeddings": self.num_embeddings,
            "grid_size": self.grid_size,
            "filters": self.filters,
            "n_layers": self.n_layers,
            "kernel_size": self.kernel_size,
            # only when used, so unconditional priors save (and old files load) as before
            **({"condition_dim": self.condition_dim} if self.condition_dim else {}),
        }


def grid_prior_args(config):
    """What every prior over a VQ-VAE's code grid takes from its config dict: ``num_embeddings``,
    ``grid_size`` (``image_size`` halved once per ``filters`` block), ``condition_dim`` (from
    ``conditional``) and the layer name ``prior``.

    >>> grid_prior_args({"image_size": 64, "filters": [32, 64]})["grid_size"]
    16
    """
    return {
        "num_embeddings": config.get("num_embeddings", 128),
        "grid_size": int(config.get("image_size", 64)) // 2 ** len(config.get("filters", (32, 64))),
        "condition_dim": CONDITION_DIM if config.get("conditional") else 0,
        "name": "prior",
    }


def build_pixelcnn_prior(config):
    """A :class:`PixelCNNPrior` for a VQ-VAE config dict (keys ``num_embeddings``, ``image_size``,
    ``filters`` for the grid, and ``prior_filters``, ``prior_layers``, ``prior_kernel_size``;
    ``conditional`` makes it conditional on :data:`core.models.conditions.CONDITION_DIM` values).

    Missing keys take the constructor's defaults; ``core.models.factory.build_prior`` validates
    a full config first.

    >>> build_pixelcnn_prior({"image_size": 32, "filters": [8, 16], "num_embeddings": 16}).grid_size
    8
    """
    return PixelCNNPrior(
        filters=config.get("prior_filters", 64),
        n_layers=config.get("prior_layers", 8),
        kernel_size=config.get("prior_kernel_size", 3),
        **grid_prior_args(config),
    )
