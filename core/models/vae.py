"""Convolutional VAE with a real ELBO (summed reconstruction + beta * KL, optional free bits).

Reading order: the :class:`Sampling` layer (reparameterisation), encoder and decoder builders,
the :class:`VAE` model and its builder, the KL warm-up schedule used by the training engine,
and the active-unit diagnostics.

Images are ``(B, H, W, 1)`` float32 in [0, 1].  The decoder emits logits; :meth:`VAE.decode`
applies the sigmoid.  ``loss_mode="thesis"`` reproduces the 2023 thesis' loss
(``1000 * mean-MSE + KL``, no annealing) on the same architecture so benchmarks can compare.
"""

from __future__ import annotations

import math

import numpy as np
import keras
from keras import layers, ops

from core.errors import UserError
from core.models._checks import (
    check_bool,
    check_choice,
    check_filters,
    check_float,
    check_image_size,
    check_int,
)
from core.models.blocks import down_block, up_block
from core.models.discriminator import ADVERSARIAL_DEFAULTS, AdversarialModel
from core.models.conditions import CONDITION_DIM, condition_array, model_slice_range
from core.models.inference import as_images, batches, compiled, numpy_images
from core.models.presets import KL_SCHEDULES, LOSS_MODES, RECON_LOSSES

__all__ = [
    "Sampling",
    "VAE",
    "build_vae",
    "get_vae_encoder",
    "get_vae_decoder",
    "kl_beta_schedule",
    "kl_per_unit",
    "active_units",
    "RECON_LOSSES",
    "LOSS_MODES",
    "KL_SCHEDULES",
    "SAMPLE_SOURCES",
]


#: Floor of the analytic sigma of ``recon_loss="gaussian_optimal"`` (keeps log sigma finite).
_MIN_SIGMA = 1e-3
#: Where :meth:`VAE.sample` draws latents from.
SAMPLE_SOURCES = ("prior", "aggregate")


@keras.saving.register_keras_serializable(package="latentbrain")
class Sampling(layers.Layer):
    """Reparameterisation ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    Args:
        seed: seed of the layer's own ``keras.random.SeedGenerator``.

    Call on ``[z_mean, z_log_var]``, both ``(B, latent_dim)``; returns ``(B, latent_dim)`` float32
    (the layer stays float32 under the ``mixed_float16`` policy).
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


def get_vae_encoder(image_size, filters, latent_dim, kernel_size=4, condition_dim=0):
    """Functional encoder: ``(B, S, S, 1)`` images -> ``[z_mean, z_log_var]``, each ``(B, latent_dim)``.

    One :func:`down_block` (conv stride 2, BatchNorm, LeakyReLU) per entry of ``filters``,
    then flatten and two float32 dense heads.  With ``condition_dim > 0`` a second input
    ``(B, condition_dim)`` is concatenated to the flattened features (conditional VAE).
    """
    inputs = keras.Input((image_size, image_size, 1), name="images")
    x = inputs
    for i, f in enumerate(filters):
        x = down_block(x, f, kernel_size, name=f"enc{i}")
    x = layers.Flatten(name="flatten")(x)
    model_inputs = inputs
    if condition_dim:
        condition = keras.Input((condition_dim,), name="condition")
        x = layers.Concatenate(name="with_condition")([x, condition])
        model_inputs = [inputs, condition]
    z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(model_inputs, [z_mean, z_log_var], name="encoder")


def get_vae_decoder(image_size, filters, latent_dim, kernel_size=4, condition_dim=0):
    """Functional decoder: ``(B, latent_dim)`` -> ``(B, S, S, 1)`` float32 logits.

    Dense to the encoder's last feature map, then one :func:`up_block` (transposed conv
    stride 2, BatchNorm, LeakyReLU) per encoder block with the filters mirrored, then a 3x3
    conv to one channel.  With ``condition_dim > 0`` a second input ``(B, condition_dim)``
    is concatenated to ``z``.
    """
    n = len(filters)
    side = image_size // 2**n
    up_filters = list(reversed(filters))[1:] + [filters[0]]
    inputs = keras.Input((latent_dim,), name="z")
    x = inputs
    if condition_dim:
        condition = keras.Input((condition_dim,), name="condition")
        x = layers.Concatenate(name="with_condition")([inputs, condition])
        inputs = [inputs, condition]
    x = layers.Dense(side * side * filters[-1], name="dense")(x)
    x = layers.LeakyReLU(0.2, name="dense_act")(x)
    x = layers.Reshape((side, side, filters[-1]), name="reshape")(x)
    for i, f in enumerate(up_filters):
        x = up_block(x, f, kernel_size, name=f"dec{i}")
    logits = layers.Conv2D(1, 3, padding="same", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="decoder")


@keras.saving.register_keras_serializable(package="latentbrain")
class VAE(AdversarialModel, keras.Model):
    """Convolutional variational autoencoder.

    Args:
        image_size: side S of the square ``(S, S, 1)`` input; a multiple of ``2**len(filters)``.
        filters: channels of the encoder's stride-2 blocks, e.g. ``(32, 64, 128, 256)``.
        latent_dim: size of the latent vector.
        kernel_size: kernel of the (transposed) convolutions.
        recon_loss: ``"bernoulli"`` (BCE on logits), ``"gaussian"`` (squared error / 2 sigma^2
            with a fixed or learned sigma) or ``"gaussian_optimal"`` (the "sigma-VAE" of Rybkin
            et al. 2021: one global sigma set analytically to the batch's reconstruction RMSE,
            so the per-image term is ``D * log(rmse) + D / 2``; the running value is kept in
            ``log_sigma``).
        sigma: Gaussian decoder standard deviation (initial value when learned or optimal).
        learn_sigma: learn one log-sigma (adds ``log sigma`` per pixel; the loss can go negative).
        beta: initial weight of the KL term; a callback may change ``self.beta`` each epoch.
        free_bits: nats per latent unit below which the (batch-mean) KL is not penalised.
        loss_mode: ``"elbo"`` or ``"thesis"`` (``1000 * mean-MSE + KL``, beta fixed at 1).
        seed: seed of the sampling layer.
        conditional: condition encoder and decoder on age, sex and slice position
            (:mod:`core.models.conditions`); train with ``fit(images, conditions)``.
        slice_range: ``[start, stop)`` slice indices of the training data (conditional only),
            to turn a requested slice index into the model's 0-1 position.
        adversarial_weight, feature_matching_weight, disc_filters, disc_learning_rate: the
            adversarial option (:class:`core.models.discriminator.Adversary`), off when both
            weights are 0; the discriminator sees decoded posterior samples.

    ``train_step``/``test_step`` report ``loss``, ``recon`` (per image), ``kl`` (nats per image,
    unweighted, before free bits) and ``beta``; with the adversarial option also
    ``adversarial``, ``feature_matching``, ``adaptive_weight`` and ``disc_loss``.

    Examples:
        >>> vae = VAE(image_size=16, filters=(8, 16), latent_dim=4)
        >>> vae.decode(np.zeros((2, 4), "float32")).shape
        (2, 16, 16, 1)
    """

    def __init__(
        self,
        image_size=64,
        filters=(32, 64, 128, 256),
        latent_dim=128,
        kernel_size=4,
        recon_loss="gaussian",
        sigma=0.1,
        learn_sigma=False,
        beta=1.0,
        free_bits=0.0,
        loss_mode="elbo",
        seed=None,
        conditional=False,
        slice_range=None,
        adversarial_weight=0.0,
        feature_matching_weight=0.0,
        disc_filters=tuple(ADVERSARIAL_DEFAULTS["disc_filters"]),
        disc_learning_rate=ADVERSARIAL_DEFAULTS["disc_learning_rate"],
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_filters("filters", filters)
        self.image_size = check_image_size(image_size, len(self.filters))
        self.latent_dim = check_int("latent_dim", latent_dim, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.recon_loss = check_choice("recon_loss", recon_loss, RECON_LOSSES)
        self.sigma = check_float("sigma", sigma, 0.0, open_min=True)
        self.learn_sigma = check_bool("learn_sigma", learn_sigma)
        if self.learn_sigma and self.recon_loss != "gaussian":
            raise UserError(f"learn_sigma needs recon_loss='gaussian', got {self.recon_loss!r}")
        self.free_bits = check_float("free_bits", free_bits, 0.0)
        self.loss_mode = check_choice("loss_mode", loss_mode, LOSS_MODES)
        self.seed = seed
        self.conditional = check_bool("conditional", conditional)
        self.slice_range = model_slice_range(self.conditional, slice_range, "VAE")
        self.condition_dim = CONDITION_DIM if self.conditional else 0
        beta = check_float("beta", beta, 0.0)

        self.encoder = get_vae_encoder(
            self.image_size, self.filters, self.latent_dim, self.kernel_size, self.condition_dim
        )
        self.decoder = get_vae_decoder(
            self.image_size, self.filters, self.latent_dim, self.kernel_size, self.condition_dim
        )
        self.sampling = Sampling(seed=seed, name="sampling")
        self.beta = keras.Variable(beta, dtype="float32", trainable=False, name="beta")
        self.log_sigma = keras.Variable(
            math.log(self.sigma), dtype="float32", trainable=self.learn_sigma, name="log_sigma"
        )
        if loss_mode == "thesis" and (float(adversarial_weight) > 0 or float(feature_matching_weight) > 0):
            raise UserError("the adversarial option needs loss_mode='elbo' (the thesis loss is kept as it was)")
        self._init_adversary(adversarial_weight, feature_matching_weight, disc_filters, disc_learning_rate)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.beta_tracker = keras.metrics.Mean(name="beta")
        self.built = True

    # ------------------------------------------------------------------ verbs
    @property
    def metrics(self):
        return [self.loss_tracker, self.recon_tracker, self.kl_tracker, self.beta_tracker] + self.adversarial_trackers

    def call(self, inputs, training=False):
        """Deterministic reconstruction (decoded posterior mean), ``(B, S, S, 1)`` in [0, 1].

        A conditional VAE takes ``(images, conditions)``."""
        if self.conditional:
            x, c = inputs
            c = ops.cast(c, "float32")
            z_mean, _ = self.encoder([as_images(x), c], training=training)
            return ops.sigmoid(self.decoder([z_mean, c], training=training))
        z_mean, _ = self.encoder(as_images(inputs), training=training)
        return ops.sigmoid(self.decoder(z_mean, training=training))

    def _conditions(self, condition, n):
        """``(n, condition_dim)`` float32 for a conditional model (None for an unconditional one)."""
        if not self.conditional:
            if condition is not None:
                raise UserError("this VAE is not conditional: train one with conditional=True "
                                "to ask for age, sex and slice position")
            return None
        if condition is None:
            raise UserError("this VAE is conditional: give a condition "
                            "{'age': years, 'sex': 'F'|'M', 'slice': index}")
        return condition_array(condition, n, self.slice_range)

    def encode(self, x, batch_size=256, condition=None):
        """Posterior parameters of images ``(N, S, S[, 1])``: ``(z_mean, z_log_var)``, each ``(N, latent_dim)`` float32 ndarray.

        A conditional VAE needs ``condition`` (see :func:`core.models.conditions.condition_array`)."""
        images = numpy_images(x)
        c = self._conditions(condition, len(images))
        if c is None:
            fn = compiled(self, "encode", lambda t: self.encoder(t, training=False))
            parts = [fn(b) for b in batches(images, batch_size)] or [
                fn(np.zeros((0, *images.shape[1:]), "float32"))
            ]
        else:
            fn = compiled(self, "encode_c", lambda t, u: self.encoder([t, u], training=False))
            parts = [fn(images[s : s + batch_size], c[s : s + batch_size])
                     for s in range(0, len(images), batch_size)] or [fn(images, c)]
        return (
            np.concatenate([np.asarray(p[0], "float32") for p in parts]),
            np.concatenate([np.asarray(p[1], "float32") for p in parts]),
        )

    def decode(self, z, batch_size=256, condition=None):
        """Images for latent vectors ``(N, latent_dim)``: ``(N, S, S, 1)`` float32 ndarray in [0, 1].

        A conditional VAE needs ``condition`` (see :func:`core.models.conditions.condition_array`)."""
        z = np.asarray(z, dtype="float32").reshape(-1, self.latent_dim)
        c = self._conditions(condition, len(z))
        if c is None:
            fn = compiled(
                self, "decode", lambda t: ops.cast(ops.sigmoid(self.decoder(t, training=False)), "float32")
            )
            parts = [np.asarray(fn(b)) for b in batches(z, batch_size)]
        else:
            fn = compiled(self, "decode_c", lambda t, u: ops.cast(
                ops.sigmoid(self.decoder([t, u], training=False)), "float32"))
            parts = [np.asarray(fn(z[s : s + batch_size], c[s : s + batch_size]))
                     for s in range(0, len(z), batch_size)]
        if not parts:
            return np.zeros((0, self.image_size, self.image_size, 1), "float32")
        return np.concatenate(parts)

    def reconstruct(self, x, batch_size=256, condition=None):
        """Decoded posterior means of images ``(N, S, S[, 1])``: ``(N, S, S, 1)`` float32 ndarray."""
        z_mean, _ = self.encode(x, batch_size, condition=condition)
        return self.decode(z_mean, batch_size, condition=condition)

    def sample(self, n, seed=0, temperature=1.0, source="prior", condition=None):
        """``n`` new images: ``(n, S, S, 1)`` float32 in [0, 1].

        ``source="prior"`` draws ``z ~ N(0, temperature^2 I)``; ``"aggregate"`` draws from the
        attached aggregate posterior (:meth:`attach_aggregate`; a Gaussian mixture fitted on
        the training latents), ``temperature`` scaling each draw's spread about its component.
        A conditional VAE takes ``condition``, e.g. ``{"age": 75, "sex": "F", "slice": 170}``
        (one dict for all, a list of ``n`` dicts, or an encoded ``(n, 3)`` array); without one it
        draws :func:`~core.models.conditions.population_conditions`.
        """
        n = check_int("n", n, 0)
        temperature = check_float("temperature", temperature, 0.0)
        source = check_choice("source", source, SAMPLE_SOURCES)
        if self.conditional and condition is None:
            # Asked without a condition (CLI sample, a reader study): a seeded spread of ages,
            # both sexes and every slice position, so every caller of sample(n, seed) works.
            from core.models.conditions import population_conditions

            condition = population_conditions(n, seed, self.slice_range)
        if source == "aggregate":
            if self.aggregate is None:
                raise UserError(
                    "this VAE has no aggregate posterior attached; fit one first "
                    "(core.training.runs.RunData.attach_aggregate)"
                )
            return self.decode(self.aggregate.sample(n, seed, temperature), condition=condition)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.latent_dim)).astype("float32") * temperature
        return self.decode(z, condition=condition)

    @property
    def aggregate(self):
        """The attached :class:`~core.models.aggregate.AggregatePosterior`, or None."""
        return self.__dict__.get("_aggregate")

    def attach_aggregate(self, mixture):
        """Attach a Gaussian mixture over this VAE's latents (not saved in ``.keras``; the run
        keeps it as ``aggregate_posterior.npz``) for ``sample(..., source="aggregate")``."""
        if mixture is not None and mixture.latent_dim != self.latent_dim:
            raise UserError(
                f"the mixture has {mixture.latent_dim} latent dimensions, the VAE {self.latent_dim}"
            )
        object.__setattr__(self, "_aggregate", mixture)  # outside Keras' tracking: never saved

    # ------------------------------------------------------------------ loss
    def compute_losses(self, x, training=False, condition=None):
        """Loss terms for a batch: dict of float32 scalars ``loss``, ``recon``, ``kl``, ``beta``.

        A conditional VAE needs the batch's ``condition`` vectors ``(B, 3)``."""
        x = as_images(x)
        if self.conditional:
            if condition is None:
                raise UserError("a conditional VAE trains on (images, conditions): fit(images, conditions)")
            c = ops.cast(condition, "float32")
            z_mean, z_log_var = self.encoder([x, c], training=training)
            z = self.sampling([z_mean, z_log_var])
            logits = ops.cast(self.decoder([z, c], training=training), "float32")
        else:
            z_mean, z_log_var = self.encoder(x, training=training)
            z = self.sampling([z_mean, z_log_var])
            logits = ops.cast(self.decoder(z, training=training), "float32")
        z_mean = ops.cast(z_mean, "float32")
        z_log_var = ops.cast(z_log_var, "float32")
        kl_units = 0.5 * (ops.square(z_mean) + ops.exp(z_log_var) - 1.0 - z_log_var)  # (B, L)
        kl = ops.mean(ops.sum(kl_units, axis=1))

        if self.loss_mode == "thesis":
            recon = 1000.0 * ops.mean(ops.square(x - ops.sigmoid(logits)))
            beta = ops.convert_to_tensor(1.0, "float32")
            return {"loss": recon + kl, "recon": recon, "kl": kl, "beta": beta}

        if self.recon_loss == "bernoulli":
            per_pixel = (
                ops.maximum(logits, 0.0) - logits * x + ops.log1p(ops.exp(-ops.abs(logits)))
            )
        elif self.recon_loss == "gaussian_optimal":
            sq = ops.square(x - ops.sigmoid(logits))
            # sigma* = batch RMSE (the maximiser of the Gaussian likelihood), floored at 1e-3.
            log_sigma = 0.5 * ops.log(ops.maximum(ops.mean(sq), _MIN_SIGMA**2))
            if training:
                self.log_sigma.assign(ops.stop_gradient(log_sigma))
            per_pixel = 0.5 * sq * ops.exp(-2.0 * log_sigma) + log_sigma
        else:
            inv_var = ops.exp(-2.0 * self.log_sigma)
            per_pixel = 0.5 * ops.square(x - ops.sigmoid(logits)) * inv_var
            if self.learn_sigma:
                per_pixel = per_pixel + self.log_sigma
        recon = ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))
        if self.free_bits > 0:
            kl_term = ops.sum(ops.maximum(ops.mean(kl_units, axis=0), self.free_bits))
        else:
            kl_term = kl
        beta = ops.convert_to_tensor(self.beta)
        terms = {"loss": recon + beta * kl_term, "recon": recon, "kl": kl, "beta": beta}
        if self.adversary is not None:
            terms.update(images=ops.sigmoid(logits), x=x)
        return terms

    def _update_trackers(self, terms):
        self.loss_tracker.update_state(terms["loss"])
        self.recon_tracker.update_state(terms["recon"])
        self.kl_tracker.update_state(terms["kl"])
        self.beta_tracker.update_state(terms["beta"])
        self._update_adversarial_trackers(terms)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        import tensorflow as tf  # GradientTape: the TF backend's training hook

        x, c = self._unpack(data)
        with tf.GradientTape(persistent=self.adversary is not None) as tape:
            terms = self.compute_losses(x, training=True, condition=c)
            if self.adversary is not None:
                terms = self._with_adversarial_terms(tape, terms, terms["recon"])
            scaled = self.optimizer.scale_loss(terms["loss"])
        variables = self.generator_variables()  # not the discriminator's
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        if self.adversary is not None:
            terms["disc_loss"] = self.adversary.train_discriminator(
                terms["x"], terms["images"], self.adversarial_active)
        return self._update_trackers(terms)

    def test_step(self, data):
        x, c = self._unpack(data)
        return self._update_trackers(self.compute_losses(x, training=False, condition=c))

    def _unpack(self, data):
        """``(images, conditions or None)`` from a batch: ``x`` or ``(x,)``, or ``(x, c)`` when conditional."""
        if not isinstance(data, (tuple, list)):
            return data, None
        c = data[1] if self.conditional and len(data) > 1 else None
        return data[0], c

    def get_config(self):
        return {
            "name": self.name,
            "image_size": self.image_size,
            "filters": list(self.filters),
            "latent_dim": self.latent_dim,
            "kernel_size": self.kernel_size,
            "recon_loss": self.recon_loss,
            "sigma": self.sigma,
            "learn_sigma": self.learn_sigma,
            "beta": float(np.asarray(self.beta)),
            "free_bits": self.free_bits,
            "loss_mode": self.loss_mode,
            "seed": self.seed,
            **self.adversarial_config(),  # none when off, so older files load unchanged
            **({"conditional": True, "slice_range": list(self.slice_range)} if self.conditional else {}),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_VAE_ARGS = (
    "image_size",
    "filters",
    "latent_dim",
    "kernel_size",
    "recon_loss",
    "sigma",
    "learn_sigma",
    "beta",
    "free_bits",
    "loss_mode",
    "seed",
    "conditional",
    "slice_range",
    "adversarial_weight",
    "feature_matching_weight",
    "disc_filters",
    "disc_learning_rate",
)


def build_vae(config):
    """A :class:`VAE` from a config dict (a preset or ``presets.validate_config`` output).

    Keys the model does not use (batch size, learning rate, schedule...) are ignored.

    >>> build_vae({"image_size": 32, "filters": [8, 16], "latent_dim": 8}).latent_dim
    8
    """
    return VAE(**{k: config[k] for k in _VAE_ARGS if k in config}, name="vae")


def kl_beta_schedule(epoch, kind="linear", warmup_epochs=10, beta_max=1.0, cycle_epochs=10):
    """Weight of the KL term for a 0-based ``epoch`` (KL warm-up).

    ``"none"``: always ``beta_max``.  ``"linear"``: rises linearly, reaching ``beta_max`` at
    epoch ``warmup_epochs - 1`` and staying there.  ``"cyclical"`` (Fu et al. 2019): repeats
    every ``cycle_epochs``; in each cycle rises linearly over the first half, then holds.

    >>> [kl_beta_schedule(e, "linear", 4, 1.0) for e in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    >>> [kl_beta_schedule(e, "cyclical", 0, 1.0, 4) for e in range(6)]
    [0.5, 1.0, 1.0, 1.0, 0.5, 1.0]
    """
    epoch = check_int("epoch", epoch, 0)
    kind = check_choice("kl_schedule", kind, KL_SCHEDULES)
    warmup_epochs = check_int("warmup_epochs", warmup_epochs, 0)
    beta_max = check_float("beta", beta_max, 0.0)
    cycle_epochs = check_int("cycle_epochs", cycle_epochs, 1)
    if kind == "none":
        return beta_max
    if kind == "linear":
        if warmup_epochs == 0:
            return beta_max
        return beta_max * min(1.0, (epoch + 1) / warmup_epochs)
    ramp = max(1, cycle_epochs // 2)
    return beta_max * min(1.0, (epoch % cycle_epochs + 1) / ramp)


def kl_per_unit(model, images, batch_size=64):
    """Mean KL (nats) of each latent unit over ``images`` ``(N, S, S[, 1])``: ``(latent_dim,)`` float64.

    ``KL_j = mean_n 0.5 * (mu_nj^2 + exp(logvar_nj) - 1 - logvar_nj)``.
    """
    z_mean, z_log_var = model.encode(images, batch_size=batch_size)
    z_mean = z_mean.astype("float64")
    z_log_var = z_log_var.astype("float64")
    kl = 0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var)
    if len(kl) == 0:
        raise UserError("kl_per_unit needs at least one image, got 0")
    return kl.mean(axis=0)


def active_units(model, images, threshold=0.01):
    """Number of latent units whose mean KL over ``images`` exceeds ``threshold`` nats."""
    return int(np.sum(kl_per_unit(model, images) > threshold))
