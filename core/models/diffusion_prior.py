"""Latent diffusion prior over the VQ-VAE's code grid (issue 20's third prior).

A small denoising U-Net learns the distribution of the VQ-VAE's *continuous* latents: each code
grid ``(h, w)`` becomes its code vectors ``(h, w, D)`` (the frozen codebook, scaled to unit
variance), diffused with a cosine noise schedule (DDPM, predicting the noise).  Sampling runs
DDIM (deterministic, ``sample_steps`` steps of the ``diffusion_steps`` schedule) from Gaussian
noise and snaps each vector to its nearest code, so the VQ-VAE's decoder turns the grid into an
image as it does for the autoregressive priors.  Unlike them, a grid is drawn in a few dozen
passes of the whole grid at once, not one pass per code.

It has the same interface as the autoregressive priors (:class:`core.models.prior.CodePrior`):
``fit(indices)`` / ``fit(indices, conditions)``, :meth:`sample`; its ``loss`` is the noise
prediction error, not a likelihood, so :meth:`log_likelihood` is not defined (None).  Before
training it needs the VQ-VAE's codebook: :meth:`set_codebook` (the training engine and
``core.models.factory.prior_for`` do it).  A conditional prior adds a projection of the
condition (age, sex, slice position) to the time embedding.
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

__all__ = ["cosine_alpha_bar", "DiffusionPrior", "build_diffusion_prior"]


def cosine_alpha_bar(steps):
    """``(steps,)`` float32 cumulative signal fractions ᾱ_t of the cosine schedule (Nichol &
    Dhariwal 2021), t = 1..steps, clipped away from 0 and 1.

    >>> a = cosine_alpha_bar(100); bool(a[0] > 0.99 and a[-1] < 0.01 and (np.diff(a) < 0).all())
    True
    """
    t = np.arange(1, steps + 1, dtype="float64") / steps
    f = np.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    return np.clip(f / f0, 1e-5, 0.9999).astype("float32")


def _time_embedding(t, dim):
    """Sinusoidal embedding ``(B, dim)`` of diffusion times ``t`` ``(B,)`` in [0, 1]."""
    half = dim // 2
    freqs = ops.exp(-math.log(1000.0) * ops.arange(half, dtype="float32") / half)
    angles = ops.cast(t, "float32")[:, None] * 1000.0 * freqs[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def _res_block(x, emb, filters, name):
    """GroupNorm-SiLU-conv twice, the time (and condition) embedding added between."""
    h = layers.GroupNormalization(groups=8, name=f"{name}_gn1")(x)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(layers.Activation("silu")(h))
    h = h + layers.Dense(filters, name=f"{name}_emb")(emb)[:, None, None, :]
    h = layers.GroupNormalization(groups=8, name=f"{name}_gn2")(h)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(layers.Activation("silu")(h))
    skip = x if x.shape[-1] == filters else layers.Conv2D(filters, 1, name=f"{name}_skip")(x)
    return skip + h


def get_denoiser(grid_size, channels, width=64, condition_dim=0):
    """A two-level U-Net: ``[z_t (B, g, g, D), t (B,) in [0, 1], (condition (B, c))]`` -> noise (B, g, g, D)."""
    z = keras.Input((grid_size, grid_size, channels), name="z_t")
    t = keras.Input((), name="t")
    inputs = [z, t]
    emb = layers.Dense(4 * width, activation="silu", name="time_mlp1")(_time_embedding(t, width))
    if condition_dim:
        c = keras.Input((condition_dim,), name="condition")
        inputs.append(c)
        emb = emb + layers.Dense(4 * width, name="condition_mlp")(c)
    emb = layers.Dense(4 * width, name="time_mlp2")(layers.Activation("silu")(emb))
    h0 = layers.Conv2D(width, 3, padding="same", name="stem")(z)
    h1 = _res_block(h0, emb, width, "down1")
    down = layers.Conv2D(2 * width, 3, strides=2, padding="same", name="down")(h1)
    h2 = _res_block(down, emb, 2 * width, "mid1")
    h2 = _res_block(h2, emb, 2 * width, "mid2")
    up = layers.Conv2D(width, 3, padding="same", name="up")(layers.UpSampling2D(2, name="upsample")(h2))
    h3 = _res_block(layers.Concatenate(name="skip")([up, h1]), emb, width, "up1")
    h3 = layers.Activation("silu")(layers.GroupNormalization(groups=8, name="out_gn")(h3))
    out = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros", name="noise")(h3)
    return keras.Model(inputs, out, name="denoiser")


@keras.saving.register_keras_serializable(package="latentbrain")
class DiffusionPrior(CodePrior):
    """Diffusion prior over ``grid_size x grid_size`` grids of ``embedding_dim``-d code vectors.

    Args:
        num_embeddings: number of codes K (the VQ-VAE's codebook size).
        grid_size: side of the code grid (even: the U-Net halves it once).
        embedding_dim: size D of a code vector.
        width: channels of the U-Net's first level (the second has twice as many).
        diffusion_steps: steps of the training noise schedule.
        sample_steps: DDIM steps when sampling (a subset of the schedule).
        condition_dim: length of a conditioning vector per grid (0: unconditional).

    Examples:
        >>> prior = DiffusionPrior(num_embeddings=8, grid_size=4, embedding_dim=2, width=8, sample_steps=4)
        >>> _ = prior.set_codebook(np.random.default_rng(0).normal(size=(8, 2)))
        >>> prior.sample(2, seed=0).shape
        (2, 4, 4)
    """

    prior_type = "diffusion"

    def __init__(self, num_embeddings=128, grid_size=16, embedding_dim=8, width=64, diffusion_steps=1000,
                 sample_steps=50, condition_dim=0, **kwargs):
        kwargs.pop("trainable", None)
        kwargs.pop("prior_type", None)
        super().__init__(**kwargs)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 2)
        self.grid_size = check_int("grid_size", grid_size, 2)
        if self.grid_size % 2:
            raise UserError(f"a diffusion prior needs an even code grid, got {self.grid_size}")
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.width = check_int("diffusion_width", width, 8)
        if self.width % 8:
            raise UserError(f"diffusion_width must be a multiple of 8 (group norm), got {self.width}")
        self.diffusion_steps = check_int("diffusion_steps", diffusion_steps, 2)
        self.sample_steps = check_int("diffusion_sample_steps", sample_steps, 1)
        if self.sample_steps > self.diffusion_steps:
            raise UserError(f"diffusion_sample_steps ({self.sample_steps}) must not exceed diffusion_steps "
                            f"({self.diffusion_steps})")
        self.condition_dim = check_int("condition_dim", condition_dim, 0)
        self.net = get_denoiser(self.grid_size, self.embedding_dim, self.width, self.condition_dim)
        # the VQ-VAE's codebook divided by its overall standard deviation: unit-variance latents
        self.codebook = self.add_weight(name="codebook", shape=(self.num_embeddings, self.embedding_dim),
                                        initializer="zeros", trainable=False, dtype="float32")
        self.alpha_bar = ops.convert_to_tensor(cosine_alpha_bar(self.diffusion_steps))
        # the training noise and times (its state variable is made here: none may be made in a traced step)
        self.noise_seeds = keras.random.SeedGenerator(0, name="noise_seeds")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    def set_codebook(self, codebook):
        """Take the VQ-VAE's ``(K, D)`` codebook (scaled here to unit variance); returns self."""
        book = np.asarray(codebook, dtype="float32")
        if book.shape != (self.num_embeddings, self.embedding_dim) or not np.isfinite(book).all():
            raise UserError(f"codebook must be a finite ({self.num_embeddings}, {self.embedding_dim}) array, "
                            f"got shape {book.shape}")
        self.codebook.assign(book / max(float(book.std()), 1e-6))
        return self

    def call(self, inputs, training=False):
        """Predicted noise for ``[z_t, t]`` (and the condition): the U-Net itself."""
        return self.net(inputs, training=training)

    def compute_loss_value(self, indices, training=False, condition=None):
        """Mean squared error of the predicted noise at random times, on the grids' code vectors."""
        if self.condition_dim and condition is None:
            raise UserError("a conditional prior trains on (indices, conditions): fit(indices, conditions)")
        z0 = ops.take(self.codebook, ops.cast(indices, "int32"), axis=0)  # (B, h, w, D)
        b = ops.shape(z0)[0]
        step = keras.random.randint((b,), 0, self.diffusion_steps, seed=self._seed_generator())
        a = ops.take(self.alpha_bar, step)[:, None, None, None]
        noise = keras.random.normal(ops.shape(z0), seed=self._seed_generator())
        z_t = ops.sqrt(a) * z0 + ops.sqrt(1.0 - a) * noise
        t = (ops.cast(step, "float32") + 1.0) / self.diffusion_steps
        inputs = [z_t, t] + ([ops.cast(condition, "float32")] if self.condition_dim else [])
        predicted = ops.cast(self(inputs, training=training), "float32")
        return ops.mean(ops.square(predicted - noise))

    def _seed_generator(self):
        return self.noise_seeds

    def log_likelihood(self, indices, batch_size=256, condition=None):
        """None: a diffusion prior gives no likelihood per code to compare with the autoregressive ones."""
        return None

    def sample(self, n, seed=0, temperature=1.0, condition=None):
        """``n`` code grids: DDIM from noise (scaled by ``temperature``), each vector snapped to its
        nearest code.  ``(n, grid_size, grid_size)`` int32 ndarray."""
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0)
        c = self._condition(condition, n)
        g = self.grid_size
        if n == 0:
            return np.zeros((0, g, g), "int32")
        if not np.any(np.asarray(self.codebook)):
            raise UserError("this diffusion prior has no codebook: set_codebook(the VQ-VAE's) before training")
        rng = np.random.default_rng(seed)
        z = (rng.standard_normal((n, g, g, self.embedding_dim)) * temperature).astype("float32")
        steps = np.unique(np.linspace(self.diffusion_steps - 1, 0, self.sample_steps).round().astype(int))[::-1]
        alpha_bar = cosine_alpha_bar(self.diffusion_steps)
        step_fn = compiled(self, "ddim_step", self._ddim_step)
        if c is None:
            c = np.zeros((n, 1), "float32")  # unused: a fixed signature
        for i, s in enumerate(steps):
            a_next = alpha_bar[steps[i + 1]] if i + 1 < len(steps) else np.float32(1.0)
            z = np.asarray(step_fn(z, np.float32((s + 1) / self.diffusion_steps), np.float32(alpha_bar[s]),
                                   np.float32(a_next), c))
        return self._nearest_codes(z)

    def _ddim_step(self, z, t, a, a_next, condition):
        """One deterministic DDIM step (eta = 0) from ᾱ = ``a`` to ``a_next``."""
        b = ops.shape(z)[0]
        inputs = [z, ops.full((b,), t)] + ([condition] if self.condition_dim else [])
        eps = ops.cast(self.net(inputs, training=False), "float32")
        z0 = (z - ops.sqrt(1.0 - a) * eps) / ops.sqrt(a)
        z0 = ops.clip(z0, -6.0, 6.0)  # far outside any code: keeps an early step from exploding
        return ops.sqrt(a_next) * z0 + ops.sqrt(1.0 - a_next) * eps

    def _nearest_codes(self, z):
        book = np.asarray(self.codebook)
        flat = z.reshape(-1, self.embedding_dim)
        distances = (flat**2).sum(1, keepdims=True) - 2 * flat @ book.T + (book**2).sum(1)[None, :]
        return distances.argmin(1).reshape(z.shape[:3]).astype("int32")

    def get_config(self):
        return {
            "name": self.name,
            "prior_type": self.prior_type,
            "num_embeddings": self.num_embeddings,
            "grid_size": self.grid_size,
            "embedding_dim": self.embedding_dim,
            "width": self.width,
            "diffusion_steps": self.diffusion_steps,
            "sample_steps": self.sample_steps,
            **({"condition_dim": self.condition_dim} if self.condition_dim else {}),
        }


def build_diffusion_prior(config):
    """A :class:`DiffusionPrior` for a VQ-VAE config dict (keys ``num_embeddings``, ``embedding_dim``,
    ``image_size``, ``filters``, ``diffusion_width``, ``diffusion_steps``, ``diffusion_sample_steps``;
    ``conditional``).  Give it the VQ-VAE's codebook (``set_codebook``) before training.

    >>> build_diffusion_prior({"image_size": 32, "filters": [8, 16], "num_embeddings": 16}).grid_size
    8
    """
    return DiffusionPrior(
        embedding_dim=config.get("embedding_dim", 8),
        width=config.get("diffusion_width", 64),
        diffusion_steps=config.get("diffusion_steps", 1000),
        sample_steps=config.get("diffusion_sample_steps", 50),
        **grid_prior_args(config),
    )
