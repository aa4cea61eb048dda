"""Causal transformer prior over VQ-VAE code grids (issue 20's alternative to the PixelCNN).

A decoder-only transformer (GPT-style, pre-norm) reads a code grid in raster order as a sequence
of ``h * w`` tokens and predicts each code from every code before it.  Unlike the gated PixelCNN,
whose receptive field grows a few rows per layer, every position attends to the whole grid above
and to its left from the first layer on: the long-range structure of a head (a skull that closes,
two hemispheres that match) is one attention step away.

Reading order: :class:`CausalBlock` (one attention + MLP block, with the full causal pass used in
training and the one-token step with a key/value cache used in sampling), then
:class:`TransformerPrior` and its builder.

Sequences: the input at position ``t`` is the code at ``t - 1`` (a start token ``K`` at ``t = 0``)
plus a learned position embedding; the output at ``t`` is the logits of the code at ``t``.  A
conditional prior adds a learned projection of its condition vector (age, sex, slice position:
:mod:`core.models.conditions`) to every position's input.  Logits are float32 even under mixed
precision.

Sampling keeps each layer's keys and values of the positions drawn so far (``(T, B, H, d_head)``
caches updated in place), so drawing a grid of ``T`` codes costs ``T`` one-token passes rather
than ``T`` passes over the whole sequence.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from core.errors import UserError
from core.models._checks import check_float, check_int
from core.models.inference import compiled
from core.models.prior import CodePrior, grid_prior_args

__all__ = ["CausalBlock", "TransformerPrior", "build_transformer_prior"]


@keras.saving.register_keras_serializable(package="latentbrain")
class CausalBlock(layers.Layer):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + MLP(LN(x))`` (MLP 4x wide, GELU).

    :meth:`call` runs a whole ``(B, T, width)`` sequence under a causal mask (training, NLL);
    :meth:`step` runs one position given the key/value caches of the positions before it.
    """

    def __init__(self, width, n_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.width, self.n_heads, self.dropout = int(width), int(n_heads), float(dropout)
        self.head_dim = self.width // self.n_heads
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.qkv = layers.Dense(3 * self.width, name="qkv")
        self.proj = layers.Dense(self.width, name="proj")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.fc1 = layers.Dense(4 * self.width, activation="gelu", name="fc1")
        self.fc2 = layers.Dense(self.width, name="fc2")
        self.drop = layers.Dropout(self.dropout)

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.qkv.build(input_shape)
        self.proj.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], 4 * self.width))
        self.built = True

    def _heads(self, x):
        """``(B, T, width)`` -> ``(B, H, T, d_head)``."""
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (b, t, self.n_heads, self.head_dim)), (0, 2, 1, 3))

    def _mlp(self, x, training=False):
        return x + self.drop(self.fc2(self.fc1(self.norm2(x))), training=training)

    def call(self, x, training=False):
        q, k, v = ops.split(self.qkv(self.norm1(x)), 3, axis=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        scores = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32") / math.sqrt(self.head_dim)
        t = ops.shape(x)[1]
        causal = ops.tril(ops.ones((t, t), "bool"))  # position i sees positions <= i
        weights = ops.softmax(ops.where(causal, scores, -1e9), axis=-1)
        weights = self.drop(weights, training=training)
        y = ops.matmul(ops.cast(weights, v.dtype), v)  # (B, H, T, d_head)
        b = ops.shape(x)[0]
        y = ops.reshape(ops.transpose(y, (0, 2, 1, 3)), (b, t, self.width))
        return self._mlp(x + self.drop(self.proj(y), training=training), training)

    def step(self, x, position, keys, values, seen):
        """One position: ``x`` ``(B, width)`` at ``position`` (int32 scalar tensor).

        ``keys``/``values``: ``(T, B, H, d_head)`` caches of this layer, ``seen`` ``(T,)`` bool (the
        positions up to and including this one).  Returns ``(y, keys, values)`` with the caches
        holding this position's key and value.
        """
        import tensorflow as tf  # in-place scatter into the loop-carried cache (TF backend)

        b = ops.shape(x)[0]
        q, k, v = ops.split(self.qkv(self.norm1(x)), 3, axis=-1)
        shape = (b, self.n_heads, self.head_dim)
        q, k, v = ops.reshape(q, shape), ops.reshape(k, shape), ops.reshape(v, shape)
        index = ops.reshape(position, (1, 1))
        keys = tf.tensor_scatter_nd_update(keys, index, k[None])
        values = tf.tensor_scatter_nd_update(values, index, v[None])
        scores = ops.cast(ops.einsum("bhd,tbhd->bht", q, keys), "float32") / math.sqrt(self.head_dim)
        weights = ops.softmax(ops.where(seen[None, None, :], scores, -1e9), axis=-1)
        y = ops.einsum("bht,tbhd->bhd", ops.cast(weights, values.dtype), values)
        y = ops.reshape(y, (b, self.width))
        return self._mlp(x + self.proj(y)), keys, values

    def get_config(self):
        return {**super().get_config(), "width": self.width, "n_heads": self.n_heads, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="latentbrain")
class TransformerPrior(CodePrior):
    """Autoregressive prior over ``grid_size x grid_size`` code grids, a causal transformer.

    Args:
        num_embeddings: number of codes K (the VQ-VAE's codebook size).
        grid_size: side of the code grid (sequences of ``grid_size ** 2`` tokens).
        width: model width (a multiple of ``n_heads``).
        n_layers: transformer blocks.
        n_heads: attention heads per block.
        dropout: on attention weights and block outputs while training (few training grids:
            a few hundred slices of a dozen heads).
        condition_dim: length of a conditioning vector per grid (0: unconditional).

    The same interface as :class:`core.models.prior.PixelCNNPrior`: ``fit(indices)`` or
    ``fit(indices, conditions)``, :meth:`log_likelihood`, :meth:`sample`.

    Examples:
        >>> prior = TransformerPrior(num_embeddings=8, grid_size=4, width=16, n_layers=1, n_heads=2)
        >>> prior.sample(2, seed=0).shape
        (2, 4, 4)
    """

    prior_type = "transformer"

    def __init__(self, num_embeddings=128, grid_size=16, width=128, n_layers=4, n_heads=4, dropout=0.1,
                 condition_dim=0, **kwargs):
        kwargs.pop("trainable", None)
        kwargs.pop("prior_type", None)
        super().__init__(**kwargs)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 2)
        self.grid_size = check_int("grid_size", grid_size, 1)
        self.width = check_int("transformer_width", width, 1)
        self.n_layers = check_int("transformer_layers", n_layers, 1)
        self.n_heads = check_int("transformer_heads", n_heads, 1)
        if self.width % self.n_heads:
            raise UserError(f"transformer_width ({self.width}) must be a multiple of transformer_heads "
                            f"({self.n_heads})")
        self.dropout = check_float("transformer_dropout", dropout, 0.0, 1.0, open_max=True)
        self.condition_dim = check_int("condition_dim", condition_dim, 0)
        self.seq_len = self.grid_size * self.grid_size
        # token K is the start token: the input at position 0
        self.token_embedding = layers.Embedding(self.num_embeddings + 1, self.width, name="token_embedding")
        self.position_embedding = layers.Embedding(self.seq_len, self.width, name="position_embedding")
        self.condition_projection = (layers.Dense(self.width, name="condition_projection")
                                     if self.condition_dim else None)
        self.blocks = [CausalBlock(self.width, self.n_heads, self.dropout, name=f"block{i}")
                       for i in range(self.n_layers)]
        self.final_norm = layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.head = layers.Dense(self.num_embeddings, name="logits")
        self.input_drop = layers.Dropout(self.dropout)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._build_layers()

    def _build_layers(self):
        """Create every weight now, so a loaded file's weights have somewhere to go."""
        seq = (None, self.seq_len, self.width)
        self.token_embedding.build((None, self.seq_len))
        self.position_embedding.build((self.seq_len,))
        if self.condition_projection is not None:
            self.condition_projection.build((None, self.condition_dim))
        for block in self.blocks:
            block.build(seq)
        self.final_norm.build(seq)
        self.head.build(seq)
        self.built = True

    def _condition_offset(self, condition):
        """``(B, 1, width)`` added to every position (conditional prior) or None."""
        if self.condition_projection is None or condition is None:
            return None
        return self.condition_projection(ops.cast(condition, self.compute_dtype))[:, None, :]

    def call(self, inputs, training=False):
        """Logits ``(B, h, w, K)`` float32 for code grids ``(B, h, w)`` (a conditional prior:
        ``(codes, conditions)`` with conditions ``(B, condition_dim)``)."""
        condition = None
        if self.condition_dim:
            inputs, condition = inputs
        codes = ops.reshape(ops.cast(inputs, "int32"), (-1, self.seq_len))
        start = ops.full_like(codes[:, :1], self.num_embeddings)
        shifted = ops.concatenate([start, codes[:, :-1]], axis=1)  # position t reads the code at t - 1
        x = self.token_embedding(shifted) + self.position_embedding(ops.arange(self.seq_len))[None]
        offset = self._condition_offset(condition)
        if offset is not None:
            x = x + ops.cast(offset, x.dtype)
        x = self.input_drop(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        logits = ops.cast(self.head(self.final_norm(x)), "float32")
        return ops.reshape(logits, (-1, self.grid_size, self.grid_size, self.num_embeddings))

    def sample(self, n, seed=0, temperature=1.0, condition=None):
        """``n`` code grids drawn in raster order: ``(n, grid_size, grid_size)`` int32 ndarray.

        ``temperature`` divides the logits (0 gives the most likely code at each step).  A
        conditional prior needs ``condition``, an ``(n, condition_dim)`` float32 array.
        """
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0)
        c = self._condition(condition, n)
        if n == 0:
            return np.zeros((0, self.grid_size, self.grid_size), "int32")
        rng = np.random.default_rng(seed)
        shape = (n, self.seq_len, self.num_embeddings)
        noise = rng.gumbel(size=shape).astype("float32") if temperature > 0 else np.zeros(shape, "float32")
        inv_temp = np.float32(1.0 / temperature if temperature > 0 else 1.0)
        draw = compiled(self, "draw", self._draw)
        if c is None:
            c = np.zeros((n, max(1, self.condition_dim)), "float32")  # unused: a fixed signature
        codes = np.asarray(draw(noise, inv_temp, c))
        return codes.reshape(n, self.grid_size, self.grid_size).astype("int32")

    def _draw(self, noise, inv_temp, condition):
        """The sampling loop: ``(B, T)`` int32 codes drawn one position at a time (Gumbel-max)."""
        b = ops.shape(noise)[0]
        dtype = self.compute_dtype
        cache_shape = (self.seq_len, b, self.n_heads, self.width // self.n_heads)
        caches = tuple(ops.zeros(cache_shape, dtype) for _ in range(2 * self.n_layers))
        offset = self._condition_offset(condition if self.condition_dim else None)
        positions = ops.arange(self.seq_len)

        def body(t, carry):
            codes, caches = carry
            previous = ops.where(t > 0, ops.take(codes, ops.maximum(t - 1, 0), axis=1), self.num_embeddings)
            x = self.token_embedding(previous) + self.position_embedding(t)[None]
            if offset is not None:
                x = x + ops.cast(offset[:, 0], x.dtype)
            seen = positions <= t
            new = []
            for i, block in enumerate(self.blocks):
                x, keys, values = block.step(x, t, caches[2 * i], caches[2 * i + 1], seen)
                new += [keys, values]
            logits = ops.cast(self.head(self.final_norm(x)), "float32")
            scores = logits * inv_temp + ops.take(noise, t, axis=1)
            code = ops.cast(ops.argmax(scores, axis=-1), "int32")
            codes = codes + code[:, None] * ops.cast(ops.one_hot(t, self.seq_len), "int32")[None, :]
            return codes, tuple(new)

        codes, _ = ops.fori_loop(0, self.seq_len, body, (ops.zeros((b, self.seq_len), "int32"), caches))
        return codes

    def get_config(self):
        return {
            "name": self.name,
            "prior_type": self.prior_type,
            "num_embeddings": self.num_embeddings,
            "grid_size": self.grid_size,
            "width": self.width,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "dropout": self.dropout,
            **({"condition_dim": self.condition_dim} if self.condition_dim else {}),
        }


def build_transformer_prior(config):
    """A :class:`TransformerPrior` for a VQ-VAE config dict (keys ``num_embeddings``, ``image_size``,
    ``filters`` for the grid, and ``transformer_width``, ``transformer_layers``,
    ``transformer_heads``, ``transformer_dropout``; ``conditional`` makes it conditional).

    >>> build_transformer_prior({"image_size": 32, "filters": [8, 16], "num_embeddings": 16}).grid_size
    8
    """
    return TransformerPrior(
        width=config.get("transformer_width", 128),
        n_layers=config.get("transformer_layers", 4),
        n_heads=config.get("transformer_heads", 4),
        dropout=config.get("transformer_dropout", 0.1),
        **grid_prior_args(config),
    )
