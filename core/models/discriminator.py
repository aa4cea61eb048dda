"""Adversarial training for the autoencoders: a patch discriminator, hinge losses and the
VQGAN adaptive weight (Esser et al. 2021, "Taming Transformers", section 3.2).

A decoder trained on a pixel loss alone averages the plausible images for a code: it is blurry
(on real heads: sample sharpness 0.17–0.21 of real, issue 20).  A patch discriminator scores
each receptive-field patch of an image as real or reconstructed; the decoder is also trained
to fool it, which rewards sharp edges and texture the pixel loss cannot ask for.  Nothing is
downloaded: the discriminator's own intermediate features serve as the feature-matching
("perceptual") term, so no ImageNet network is needed.

Reading order: :func:`build_patch_discriminator`, the losses, then :class:`Adversary`, the
part a model owns (discriminator, its optimizer, the warm-up switch) and calls from its
``train_step``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from core.models._checks import check_filters, check_float
from core.models.presets import ADVERSARIAL_DEFAULTS

__all__ = [
    "build_patch_discriminator",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "feature_matching_loss",
    "adaptive_weight",
    "Adversary",
    "AdversarialModel",
    "ADVERSARIAL_DEFAULTS",
    "ADVERSARIAL_METRICS",
]

#: The metrics a model with the adversarial option adds to its logs (and so to metrics.csv).
ADVERSARIAL_METRICS = ("adversarial", "feature_matching", "adaptive_weight", "disc_loss")

def build_patch_discriminator(image_size, filters=(32, 64, 128), name="discriminator"):
    """PatchGAN discriminator (pix2pix / VQGAN's ``NLayerDiscriminator``), no normalisation.

    ``(B, S, S, 1)`` images in [-1, 1] -> ``[logits (B, s, s, 1), feature maps...]``: one logit
    per overlapping patch, and each LeakyReLU's output for feature matching.  Stride-2 k4
    convolutions for all but the last block, then a stride-1 k4 conv and a k4 conv to one
    channel (receptive field 34 px with three blocks).  Without BatchNorm: batches are small
    here and real and fake batches would get different statistics.  Float32 throughout: its
    own Adam does no loss scaling, so float16 gradients could underflow under mixed precision.
    """
    filters = check_filters("disc_filters", filters)
    inputs = keras.Input((image_size, image_size, 1), name="images")
    x = inputs
    features = []
    for i, f in enumerate(filters):
        stride = 1 if i == len(filters) - 1 else 2
        x = layers.Conv2D(f, 4, strides=stride, padding="same", dtype="float32", name=f"disc{i}_conv")(x)
        x = layers.LeakyReLU(0.2, dtype="float32", name=f"disc{i}_act")(x)
        features.append(x)
    logits = layers.Conv2D(1, 4, padding="same", dtype="float32", name="disc_logits")(x)
    return keras.Model(inputs, [logits] + features, name=name)


def hinge_discriminator_loss(real_logits, fake_logits):
    """``(mean relu(1 - D(real)) + mean relu(1 + D(fake))) / 2``: 0 when every patch is told apart
    with margin 1; 1 for a discriminator that outputs 0 everywhere."""
    real = ops.mean(ops.relu(1.0 - ops.cast(real_logits, "float32")))
    fake = ops.mean(ops.relu(1.0 + ops.cast(fake_logits, "float32")))
    return 0.5 * (real + fake)


def hinge_generator_loss(fake_logits):
    """The decoder's adversarial term: ``-mean D(fake)`` (higher scores = more real)."""
    return -ops.mean(ops.cast(fake_logits, "float32"))


def feature_matching_loss(real_features, fake_features):
    """Mean over layers of the mean absolute difference of discriminator features."""
    terms = [
        ops.mean(ops.abs(ops.cast(r, "float32") - ops.cast(f, "float32")))
        for r, f in zip(real_features, fake_features)
    ]
    return ops.mean(ops.stack(terms))


def adaptive_weight(reconstruction_grads, adversarial_grads, max_weight=1e4):
    """VQGAN's balance: ``||grad_last rec|| / (||grad_last adv|| + 1e-4)``, clipped to [0, max].

    Both gradients are taken at the decoder's last layer, so the adversarial term moves it as
    much as the reconstruction term does whatever their scales (a summed-per-image Bernoulli
    loss and a mean squared error differ by 4,096x at 64 px)."""
    rec = ops.sqrt(ops.sum(ops.square(ops.cast(reconstruction_grads, "float32"))))
    adv = ops.sqrt(ops.sum(ops.square(ops.cast(adversarial_grads, "float32"))))
    return ops.stop_gradient(ops.clip(rec / (adv + 1e-4), 0.0, max_weight))


class Adversary:
    """The adversarial part of an autoencoder: discriminator, its own Adam, the warm-up switch.

    The owning model creates it in ``__init__`` (so the discriminator's weights are saved with
    the model and a resumed run keeps its adversary), calls :meth:`build_optimizer` from
    ``compile``, :meth:`generator_terms` inside its gradient tape and :meth:`train_discriminator`
    after its own optimizer step.  ``active`` (a non-trainable 0/1 variable) is set per epoch
    by :class:`core.training.callbacks.AdversarialWarmup`; while it is 0 both adversarial terms
    are multiplied by 0 and the discriminator is not updated.

    Args:
        owner: the ``keras.Model`` that holds it (variables are created on it, so they are tracked).
        image_size: side of the images.
        adversarial_weight: factor on the adaptive weight (0 = no adversarial term).
        feature_matching_weight: weight of :func:`feature_matching_loss` (0 = none).
        disc_filters: discriminator channels.
        disc_learning_rate: the discriminator's Adam learning rate (beta_1 0.5, as in GANs).
    """

    def __init__(self, owner, image_size, adversarial_weight, feature_matching_weight,
                 disc_filters, disc_learning_rate):
        self.adversarial_weight = check_float("adversarial_weight", adversarial_weight, 0.0)
        self.feature_matching_weight = check_float("feature_matching_weight", feature_matching_weight, 0.0)
        self.disc_filters = list(check_filters("disc_filters", disc_filters))
        self.disc_learning_rate = check_float("disc_learning_rate", disc_learning_rate, 0.0, open_min=True)
        self.discriminator = build_patch_discriminator(image_size, self.disc_filters)
        self.optimizer = None

    @property
    def enabled(self):
        return self.adversarial_weight > 0 or self.feature_matching_weight > 0

    def build_optimizer(self):
        self.optimizer = keras.optimizers.Adam(self.disc_learning_rate, beta_1=0.5, beta_2=0.9)
        self.optimizer.build(self.discriminator.trainable_variables)

    def generator_terms(self, tape, x, images, reconstruction_loss, last_kernel, active):
        """Adversarial and feature-matching terms of the decoder's loss for one batch.

        Call inside ``tape`` (a persistent ``tf.GradientTape``).  ``x``: real batch in [0, 1];
        ``images``: its reconstructions in [0, 1]; ``reconstruction_loss``: the scalar the
        adaptive weight balances against; ``last_kernel``: the decoder's last kernel.
        Returns ``(total, adversarial, feature_matching, weight)`` float32 scalars; ``total`` is
        what to add to the loss.
        """
        fake_logits, *fake_features = self.discriminator(images * 2.0 - 1.0, training=False)
        adversarial = hinge_generator_loss(fake_logits)
        total = ops.zeros((), "float32")
        weight = ops.zeros((), "float32")
        if self.adversarial_weight > 0:
            with tape.stop_recording():
                weight = adaptive_weight(
                    tape.gradient(reconstruction_loss, last_kernel), tape.gradient(adversarial, last_kernel)
                ) * self.adversarial_weight * active
            total = total + weight * adversarial
        matching = ops.zeros((), "float32")
        if self.feature_matching_weight > 0:
            _, *real_features = self.discriminator(x * 2.0 - 1.0, training=False)
            real_features = [ops.stop_gradient(f) for f in real_features]
            matching = feature_matching_loss(real_features, fake_features)
            total = total + self.feature_matching_weight * active * matching
        return total, adversarial, matching, weight

    def train_discriminator(self, x, images, active):
        """One hinge-loss step of the discriminator on a real batch and its reconstructions;
        returns the loss (float32 scalar).  The step is scaled by ``active`` (0 during warm-up)."""
        import tensorflow as tf  # GradientTape: the TF backend's training hook

        fake = ops.stop_gradient(images) * 2.0 - 1.0
        real = ops.cast(x, "float32") * 2.0 - 1.0
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)[0]
            fake_logits = self.discriminator(fake, training=True)[0]
            loss = hinge_discriminator_loss(real_logits, fake_logits)
            gated = loss * active
        grads = tape.gradient(gated, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss

    def evaluation_terms(self, x, images):
        """The adversarial figures of a validation batch (no update): dict of float32 scalars."""
        real_logits, *real_features = self.discriminator(ops.cast(x, "float32") * 2.0 - 1.0, training=False)
        fake_logits, *fake_features = self.discriminator(images * 2.0 - 1.0, training=False)
        return {
            "adversarial": hinge_generator_loss(fake_logits),
            "feature_matching": feature_matching_loss(real_features, fake_features),
            "disc_loss": hinge_discriminator_loss(real_logits, fake_logits),
        }

    def config(self):
        return {
            "adversarial_weight": self.adversarial_weight,
            "feature_matching_weight": self.feature_matching_weight,
            "disc_filters": list(self.disc_filters),
            "disc_learning_rate": self.disc_learning_rate,
        }


class AdversarialModel:
    """Mixin of :class:`~core.models.vae.VAE` and :class:`~core.models.vqvae.VQVAE`: the
    adversarial option's state, compile, loss terms and metrics.  The model calls
    ``_init_adversary`` in ``__init__``; its decoder's last layer must be named ``logits``."""

    def _init_adversary(self, adversarial_weight, feature_matching_weight, disc_filters, disc_learning_rate):
        enabled = float(adversarial_weight) > 0 or float(feature_matching_weight) > 0
        adversary = None
        if enabled:
            adversary = Adversary(self, self.image_size, adversarial_weight, feature_matching_weight,
                                  disc_filters, disc_learning_rate)
        object.__setattr__(self, "adversary", adversary)  # a plain helper, not a Keras layer
        self.adversarial_trackers = []
        if adversary is not None:
            # An attribute of the model, so its weights are saved with it (a resumed run keeps
            # its adversary) and counted in the model's size.
            self.discriminator = adversary.discriminator
            self.adversarial_active = keras.Variable(0.0, dtype="float32", trainable=False,
                                                     name="adversarial_active")
            self.adversarial_trackers = [keras.metrics.Mean(name=n) for n in ADVERSARIAL_METRICS]

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        if self.adversary is not None:
            self.adversary.build_optimizer()

    # Keras restores the compile state of a saved model only when a custom compile says how.
    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        # What keras.Model.compile_from_config does for a model whose compile is not custom.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            # The variables train_step gives it (its first apply_gradients built it with them),
            # so the saved optimizer state loads variable for variable.
            self.optimizer.build(self.generator_variables())

    def generator_variables(self):
        """The trainable variables the model's own optimizer trains: all but the discriminator's
        (which its own optimizer trains against them)."""
        if self.adversary is None:
            return list(self.trainable_variables)
        theirs = {id(v) for v in self.discriminator.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in theirs]

    def set_adversarial_active(self, active):
        """Switch the adversarial terms on (True) or off (warm-up); a no-op without the option."""
        if self.adversary is not None:
            self.adversarial_active.assign(1.0 if active else 0.0)

    def _with_adversarial_terms(self, tape, terms, reconstruction_loss):
        total, adversarial, matching, weight = self.adversary.generator_terms(
            tape, terms["x"], terms["images"], reconstruction_loss,
            self.decoder.get_layer("logits").kernel, self.adversarial_active)
        return {**terms, "loss": terms["loss"] + total, "adversarial": adversarial,
                "feature_matching": matching, "adaptive_weight": weight}

    def _update_adversarial_trackers(self, terms):
        if self.adversary is not None and "disc_loss" not in terms:
            terms = {**terms, **self.adversary.evaluation_terms(terms["x"], terms["images"])}
        for tracker in self.adversarial_trackers:
            if tracker.name in terms:
                tracker.update_state(terms[tracker.name])

    def adversarial_config(self):
        """The adversarial keys of ``get_config`` (none when the option is off)."""
        return {} if self.adversary is None else self.adversary.config()
