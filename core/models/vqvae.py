"""VQ-VAE: conv encoder to a grid of vectors, EMA codebook, conv decoder, and a prior to sample.

Reading order: the :class:`VectorQuantizer` layer (codebook), encoder and decoder builders, the
:class:`VQVAE` model, the builder.

Images are ``(B, H, W, 1)`` float32 in [0, 1]; the code grid is ``(B, h, w)`` int32 with
``h = H / 2**len(filters)``.  Without a prior (:meth:`VQVAE.attach_prior`) the model can
reconstruct but not generate.  A conditional VQ-VAE generates on request (age, sex, slice
position) through its conditional prior; its encoder and decoder are not conditioned.
"""

from __future__ import annotations

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
from core.models.blocks import UPSAMPLE_MODES, down_block, residual_block, up_block
from core.models.discriminator import ADVERSARIAL_DEFAULTS, AdversarialModel
from core.models.conditions import CONDITION_DIM, condition_array, model_slice_range, population_conditions
from core.models.presets import VQ_RECON_LOSSES
from core.models.inference import as_images, clear_compiled, compiled, numpy_images, run_batched
from core.models.prior import CodePrior, PixelCNNPrior

__all__ = ["VectorQuantizer", "VQVAE", "build_vqvae", "get_vqvae_encoder", "get_vqvae_decoder"]


@keras.saving.register_keras_serializable(package="latentbrain")
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
            raise UserError(
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


def get_vqvae_encoder(image_size, filters, embedding_dim, n_res_blocks=2, res_filters=64, kernel_size=4):
    """Functional encoder: ``(B, S, S, 1)`` -> ``(B, S / 2**n, S / 2**n, embedding_dim)`` float32.

    One :func:`down_block` per entry of ``filters``, ``n_res_blocks`` residual blocks at the
    grid resolution, then a 1x1 projection to the code dimension.
    """
    inputs = keras.Input((image_size, image_size, 1), name="images")
    x = inputs
    for i, f in enumerate(filters):
        x = down_block(x, f, kernel_size, name=f"enc{i}")
    for i in range(n_res_blocks):
        x = residual_block(x, res_filters, name=f"enc_res{i}")
    x = layers.LeakyReLU(0.2, name="enc_out_act")(x)
    z_e = layers.Conv2D(embedding_dim, 1, dtype="float32", name="pre_quant")(x)
    return keras.Model(inputs, z_e, name="encoder")


def get_vqvae_decoder(image_size, filters, embedding_dim, n_res_blocks=2, res_filters=64, kernel_size=4,
                      upsample="transpose"):
    """Functional decoder: ``(B, h, w, embedding_dim)`` -> ``(B, S, S, 1)`` float32 logits
    (``upsample``: see :data:`core.models.blocks.UPSAMPLE_MODES`)."""
    side = image_size // 2 ** len(filters)
    inputs = keras.Input((side, side, embedding_dim), name="z_q")
    x = layers.Conv2D(filters[-1], 3, padding="same", name="post_quant")(inputs)
    for i in range(n_res_blocks):
        x = residual_block(x, res_filters, name=f"dec_res{i}")
    x = layers.LeakyReLU(0.2, name="dec_res_act")(x)
    for i, f in enumerate(list(reversed(filters))[1:] + [filters[0]]):
        x = up_block(x, f, kernel_size, name=f"dec{i}", upsample=upsample)
    logits = layers.Conv2D(1, 3, padding="same", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="decoder")


@keras.saving.register_keras_serializable(package="latentbrain")
class VQVAE(AdversarialModel, keras.Model):
    """Vector-quantised VAE (van den Oord et al. 2017) with EMA codebook and dead-code restarts.

    Args:
        image_size: side S of the ``(S, S, 1)`` input; a multiple of ``2**len(filters)``.
        filters: channels of the encoder's stride-2 blocks; the grid side is ``S / 2**len(filters)``.
        num_embeddings: codebook size K.
        embedding_dim: code dimension D.
        n_res_blocks: residual blocks at grid resolution in encoder and decoder.
        res_filters: hidden channels of those residual blocks.
        kernel_size: kernel of the stride-2 (transposed) convolutions.
        upsample: how the decoder doubles its side, ``"transpose"`` (stride-2 transposed
            convolutions) or ``"resize"`` (nearest-neighbour resize + 3x3 convolution, no
            checkerboard); see :data:`core.models.blocks.UPSAMPLE_MODES`.
        commitment_cost: weight of ``mean ||z_e - sg(z_q)||^2``.
        use_ema, ema_decay, restart_dead_codes, restart_threshold, data_init: see
            :class:`VectorQuantizer`.
        prior_config: config of an attached :class:`PixelCNNPrior` (set by ``attach_prior``;
            restores the prior when a saved model is loaded).
        seed: seed of the quantizer.
        conditional: generate on request by age, sex and slice position
            (:mod:`core.models.conditions`): the prior must be a conditional
            :class:`PixelCNNPrior` (``condition_dim=3``).  Only the prior is conditioned; the
            encoder, quantizer and decoder are the same as without it, so ``encode`` and
            ``reconstruct`` accept a ``condition`` (as a conditional VAE's do) and ignore it.
        slice_range: ``[start, stop)`` slice indices of the training data (conditional only),
            to turn a requested slice index into the model's 0-1 position.
        recon_loss: ``"mse"`` (mean squared error) or ``"l1"`` (mean absolute error, VQGAN's
            pixel term: it punishes small errors more, so edges blur less).
        adversarial_weight, feature_matching_weight, disc_filters, disc_learning_rate: the
            adversarial option (:class:`core.models.discriminator.Adversary`); off when both
            weights are 0.  A callback switches it on after the warm-up epochs.

    ``train_step``/``test_step`` report ``loss``, ``recon`` (mean squared error per pixel, what
    ever ``recon_loss`` trains), ``vq`` (commitment term, unweighted), ``perplexity`` (of the
    batch's code histogram) and ``usage`` (fraction of codes used in the batch); with the
    adversarial option also ``adversarial`` (the decoder's hinge term), ``feature_matching``,
    ``adaptive_weight`` and ``disc_loss`` (the discriminator's hinge loss; 1 = chance).
    """

    def __init__(
        self,
        image_size=64,
        filters=(32, 64),
        num_embeddings=128,
        embedding_dim=32,
        n_res_blocks=2,
        res_filters=64,
        kernel_size=4,
        upsample="transpose",
        commitment_cost=0.25,
        use_ema=True,
        ema_decay=0.99,
        restart_dead_codes=True,
        restart_threshold=0.03,
        data_init=True,
        prior_config=None,
        seed=None,
        conditional=False,
        slice_range=None,
        recon_loss="mse",
        adversarial_weight=0.0,
        feature_matching_weight=0.0,
        disc_filters=tuple(ADVERSARIAL_DEFAULTS["disc_filters"]),
        disc_learning_rate=ADVERSARIAL_DEFAULTS["disc_learning_rate"],
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Keras puts a wrapper of its weight-quantisation method ``quantize(mode)`` on every
        # instance; drop it so ``quantize`` is this model's verb (encoder outputs -> codes).
        self.__dict__.pop("quantize", None)
        self.filters = check_filters("filters", filters)
        self.image_size = check_image_size(image_size, len(self.filters))
        self.grid_size = self.image_size // 2 ** len(self.filters)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 2)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.n_res_blocks = check_int("n_res_blocks", n_res_blocks, 0)
        self.res_filters = check_int("res_filters", res_filters, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.commitment_cost = check_float("commitment_cost", commitment_cost, 0.0)
        self.use_ema = check_bool("use_ema", use_ema)
        self.seed = seed
        self.conditional = check_bool("conditional", conditional)
        self.slice_range = model_slice_range(self.conditional, slice_range, "VQ-VAE")
        self.condition_dim = CONDITION_DIM if self.conditional else 0
        self.upsample = check_choice("upsample", upsample, UPSAMPLE_MODES)
        arch = (self.image_size, self.filters, self.embedding_dim, self.n_res_blocks, self.res_filters, self.kernel_size)
        self.encoder = get_vqvae_encoder(*arch)
        self.decoder = get_vqvae_decoder(*arch, upsample=self.upsample)
        self.quantizer = VectorQuantizer(
            self.num_embeddings,
            self.embedding_dim,
            use_ema=use_ema,
            ema_decay=ema_decay,
            restart_dead_codes=check_bool("restart_dead_codes", restart_dead_codes),
            restart_threshold=restart_threshold,
            data_init=check_bool("data_init", data_init),
            seed=seed,
            name="quantizer",
        )
        self.quantizer.build((None, self.grid_size, self.grid_size, self.embedding_dim))
        self.prior = None
        if prior_config is not None:
            self.prior = self._make_prior(prior_config)
        if recon_loss not in VQ_RECON_LOSSES:
            raise UserError(f"recon_loss must be one of {', '.join(VQ_RECON_LOSSES)}, got {recon_loss!r}")
        self.recon_loss = recon_loss
        self._init_adversary(adversarial_weight, feature_matching_weight, disc_filters, disc_learning_rate)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.vq_tracker = keras.metrics.Mean(name="vq")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.usage_tracker = keras.metrics.Mean(name="usage")
        self.built = True

    # ------------------------------------------------------------------ prior
    def _make_prior(self, prior_config):
        prior_config = dict(prior_config)
        if prior_config.get("prior_type", "pixelcnn") != "pixelcnn":  # files before issue 20: PixelCNN
            from core.models.factory import prior_class

            prior = prior_class(prior_config["prior_type"]).from_config(prior_config)
        else:
            prior_config.pop("prior_type", None)
            prior = PixelCNNPrior.from_config(prior_config)
        if prior.num_embeddings != self.num_embeddings or prior.grid_size != self.grid_size:
            raise UserError(
                f"prior has {prior.num_embeddings} codes on a {prior.grid_size}x{prior.grid_size} "
                f"grid, the VQ-VAE {self.num_embeddings} codes on a "
                f"{self.grid_size}x{self.grid_size} grid"
            )
        if prior.condition_dim != self.condition_dim:
            raise UserError(
                f"prior is {'conditional' if prior.condition_dim else 'unconditional'} "
                f"(condition_dim {prior.condition_dim}), the VQ-VAE "
                f"{'conditional' if self.conditional else 'unconditional'}: train the prior with the same "
                "conditional setting"
            )
        prior.trainable = False
        return prior

    def attach_prior(self, prior):
        """Store a frozen copy of a trained prior (:class:`PixelCNNPrior` or
        :class:`~core.models.transformer_prior.TransformerPrior`) so :meth:`sample` can generate.

        The copy is saved and loaded with the model.  Call again after more prior training.
        Raises UserError if the prior's codebook size or grid does not match.
        """
        if not isinstance(prior, CodePrior):
            raise UserError(f"attach_prior expects a code prior (PixelCNN or transformer), got {type(prior).__name__}")
        def shape_of(p):  # the config that decides the prior's weights (the kind included)
            return {**{k: v for k, v in p.get_config().items() if k != "name"}, "prior_type": p.prior_type}

        config = shape_of(prior)
        if self.prior is None or shape_of(self.prior) != config:
            new_prior = self._make_prior({**config, "name": "prior"})
            locked = self._tracker.locked
            self._tracker.unlock()
            try:
                self.prior = new_prior
            finally:
                if locked:
                    self._tracker.lock()
        self.prior.set_weights(prior.get_weights())
        clear_compiled(self)
        return self

    # ------------------------------------------------------------------ verbs
    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.recon_tracker,
            self.vq_tracker,
            self.perplexity_tracker,
            self.usage_tracker,
        ] + self.adversarial_trackers

    def call(self, inputs, training=False):
        """Reconstruction ``(B, S, S, 1)`` in [0, 1] through the quantised code grid."""
        z_e = self.encoder(as_images(inputs), training=training)
        z_q, _ = self.quantizer(z_e)
        return ops.sigmoid(self.decoder(z_q, training=training))

    def _ignored_condition(self, condition):
        """A conditional VQ-VAE's encoder and decoder take no condition: accepted (callers treat
        conditional models alike) and ignored; an unconditional one refuses it as the VAE does."""
        if condition is not None and not self.conditional:
            raise UserError("this VQ-VAE is not conditional: train one with conditional=True "
                            "to ask for age, sex and slice position")

    def encode(self, x, batch_size=256, condition=None):
        """Encoder outputs before quantisation for images ``(N, S, S[, 1])``: ``(N, h, w, D)`` float32 ndarray.

        ``condition`` is accepted for a conditional VQ-VAE and ignored (its encoder is not conditioned)."""
        self._ignored_condition(condition)
        fn = compiled(self, "encode", lambda t: self.encoder(t, training=False))
        return run_batched(fn, numpy_images(x), batch_size)

    def quantize(self, z_e):
        """Nearest codes for ``(N, h, w, D)`` encoder outputs: ``(z_q (N, h, w, D) float32, indices (N, h, w) int32)`` ndarrays.

        (This replaces Keras' ``Model.quantize(mode)`` weight quantisation, which VQ-VAEs do
        not support.)
        """
        if isinstance(z_e, str):
            raise TypeError(
                "VQVAE.quantize maps encoder outputs to codes; Keras weight quantisation "
                f"({z_e!r}) is not supported for this model"
            )
        z_q, indices = self.quantizer(ops.convert_to_tensor(np.asarray(z_e, "float32")))
        return np.asarray(z_q, "float32"), np.asarray(indices, "int32")

    def code_indices(self, x, batch_size=256):
        """Code grid of images ``(N, S, S[, 1])``: ``(N, h, w)`` int32 ndarray."""
        fn = compiled(
            self, "code_indices", lambda t: self.quantizer(self.encoder(t, training=False))[1]
        )
        return run_batched(fn, numpy_images(x), batch_size, "int32")

    def decode(self, z_q, batch_size=256):
        """Images from quantised vectors ``(N, h, w, D)``: ``(N, S, S, 1)`` float32 ndarray in [0, 1]."""
        fn = compiled(self, "decode", lambda t: ops.sigmoid(self.decoder(t, training=False)))
        z_q = np.asarray(z_q, "float32").reshape(-1, self.grid_size, self.grid_size, self.embedding_dim)
        return run_batched(fn, z_q, batch_size)

    def decode_indices(self, indices, batch_size=256):
        """Images from a code grid ``(N, h, w)`` of ints: ``(N, S, S, 1)`` float32 ndarray in [0, 1]."""
        indices = np.asarray(indices)
        if indices.ndim == 2:
            indices = indices[None]
        if indices.shape[1:] != (self.grid_size, self.grid_size):
            raise UserError(
                f"indices must be (N, {self.grid_size}, {self.grid_size}), got shape {indices.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise UserError(
                f"code indices must lie in [0, {self.num_embeddings - 1}], "
                f"got [{indices.min()}, {indices.max()}]"
            )
        fn = compiled(
            self,
            "decode_indices",
            lambda t: ops.sigmoid(self.decoder(self.quantizer.lookup(t), training=False)),
        )
        return run_batched(fn, indices.astype("int32"), batch_size)

    def reconstruct(self, x, batch_size=256, condition=None):
        """Reconstructions of images ``(N, S, S[, 1])``: ``(N, S, S, 1)`` float32 ndarray.

        ``condition`` is accepted for a conditional VQ-VAE and ignored (encoder and decoder are
        not conditioned)."""
        self._ignored_condition(condition)
        return self.decode_indices(self.code_indices(x, batch_size), batch_size)

    def sample_codes(self, n, seed=0, temperature=1.0, condition=None):
        """``n`` code grids from the attached prior: ``(n, h, w)`` int32 ndarray.

        A conditional VQ-VAE takes ``condition`` as a conditional VAE does: one dict
        ``{"age": 75, "sex": "F", "slice": 170}`` for all, a list of ``n`` dicts, or an encoded
        ``(n, 3)`` array; without one it draws
        :func:`~core.models.conditions.population_conditions` (seeded).

        Raises UserError when no prior is attached (train one and call :meth:`attach_prior`),
        or for a condition given to an unconditional model.
        """
        if self.prior is None:
            raise UserError(
                "this VQ-VAE has no prior to sample from: train its PixelCNN prior and attach it"
            )
        n = check_int("n", n, 0)
        if not self.conditional:
            if condition is not None:
                raise UserError("this VQ-VAE is not conditional: train one with conditional=True "
                                "to ask for age, sex and slice position")
            return self.prior.sample(n, seed=seed, temperature=temperature)
        if condition is None:
            c = population_conditions(n, seed, self.slice_range)
        else:
            c = condition_array(condition, n, self.slice_range)
        return self.prior.sample(n, seed=seed, temperature=temperature, condition=c)

    def sample(self, n, seed=0, temperature=1.0, condition=None):
        """``n`` new images from the attached prior: ``(n, S, S, 1)`` float32 ndarray in [0, 1].

        ``condition`` as in :meth:`sample_codes` (conditional VQ-VAE only: the prior draws the
        codes for it, the decoder turns them into images).
        Raises UserError when no prior is attached (train one and call :meth:`attach_prior`).
        """
        return self.decode_indices(self.sample_codes(n, seed, temperature, condition))

    # ------------------------------------------------------------------ loss
    def compute_losses(self, x, training=False):
        """Loss terms for a batch plus the flat encoder outputs and indices (for the codebook update)."""
        x = as_images(x)
        z_e = ops.cast(self.encoder(x, training=training), "float32")
        flat = ops.reshape(z_e, (-1, self.embedding_dim))
        indices = self.quantizer.get_code_indices(flat)
        z_q = ops.reshape(self.quantizer.lookup(indices), ops.shape(z_e))
        vq = ops.mean(ops.square(z_e - ops.stop_gradient(z_q)))
        loss_vq = self.commitment_cost * vq
        if not self.use_ema:
            loss_vq = loss_vq + ops.mean(ops.square(ops.stop_gradient(z_e) - z_q))
        z_st = z_e + ops.stop_gradient(z_q - z_e)
        images = ops.sigmoid(ops.cast(self.decoder(z_st, training=training), "float32"))
        recon = ops.mean(ops.square(x - images))
        pixel = recon if self.recon_loss == "mse" else ops.mean(ops.abs(x - images))

        counts = ops.sum(ops.one_hot(indices, self.num_embeddings, dtype="float32"), axis=0)
        probs = counts / ops.sum(counts)
        perplexity = ops.exp(-ops.sum(probs * ops.log(probs + 1e-10)))
        usage = ops.mean(ops.cast(counts > 0, "float32"))
        terms = {
            "loss": pixel + loss_vq,
            "recon": recon,
            "pixel": pixel,
            "vq": vq,
            "perplexity": perplexity,
            "usage": usage,
            "images": images,
            "x": x,
        }
        return terms, flat, indices

    def _update_trackers(self, terms):
        self.loss_tracker.update_state(terms["loss"])
        self.recon_tracker.update_state(terms["recon"])
        self.vq_tracker.update_state(terms["vq"])
        self.perplexity_tracker.update_state(terms["perplexity"])
        self.usage_tracker.update_state(terms["usage"])
        self._update_adversarial_trackers(terms)
        return {m.name: m.result() for m in self.metrics}

    def _trained_variables(self):
        # Not self.trainable_variables: that holds the discriminator's too (the adversarial option).
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        return variables + self.quantizer.trainable_variables

    def train_step(self, data):
        import tensorflow as tf  # GradientTape: the TF backend's training hook

        x = data[0] if isinstance(data, (tuple, list)) else data
        variables = self._trained_variables()
        with tf.GradientTape(persistent=self.adversary is not None) as tape:
            terms, flat, indices = self.compute_losses(x, training=True)
            if self.adversary is not None:
                terms = self._with_adversarial_terms(tape, terms, terms["pixel"])
            scaled = self.optimizer.scale_loss(terms["loss"])
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.quantizer.update(flat, indices)
        if self.adversary is not None:
            terms["disc_loss"] = self.adversary.train_discriminator(
                terms["x"], terms["images"], self.adversarial_active)
        return self._update_trackers(terms)

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        terms, _, _ = self.compute_losses(x, training=False)
        return self._update_trackers(terms)

    def get_config(self):
        q = self.quantizer
        prior_config = None if self.prior is None else self.prior.get_config()
        return {
            "name": self.name,
            "image_size": self.image_size,
            "filters": list(self.filters),
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "n_res_blocks": self.n_res_blocks,
            "res_filters": self.res_filters,
            "kernel_size": self.kernel_size,
            "commitment_cost": self.commitment_cost,
            "use_ema": self.use_ema,
            "ema_decay": q.ema_decay,
            "restart_dead_codes": q.restart_dead_codes,
            "restart_threshold": q.restart_threshold,
            "data_init": q.data_init,
            "prior_config": prior_config,
            "seed": self.seed,
            # only when used (recon_loss and adversary too), so older files load unchanged
            **({"recon_loss": self.recon_loss} if self.recon_loss != "mse" else {}),
            **({"upsample": self.upsample} if self.upsample != "transpose" else {}),
            **self.adversarial_config(),
            # only when used, so unconditional models save (and old files load) as before
            **({"conditional": True, "slice_range": list(self.slice_range)} if self.conditional else {}),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_VQVAE_ARGS = (
    "image_size",
    "filters",
    "num_embeddings",
    "embedding_dim",
    "n_res_blocks",
    "res_filters",
    "kernel_size",
    "upsample",
    "commitment_cost",
    "use_ema",
    "ema_decay",
    "restart_dead_codes",
    "restart_threshold",
    "data_init",
    "seed",
    "conditional",
    "slice_range",
    "recon_loss",
    "adversarial_weight",
    "feature_matching_weight",
    "disc_filters",
    "disc_learning_rate",
)


def build_vqvae(config):
    """A :class:`VQVAE` (without prior) from a config dict; keys it does not use are ignored.

    >>> build_vqvae({"image_size": 32, "filters": [8, 16], "num_embeddings": 16}).grid_size
    8
    """
    return VQVAE(**{k: config[k] for k in _VQVAE_ARGS if k in config}, name="vqvae")
