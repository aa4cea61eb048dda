"""Training-time augmentation of slice batches: left-right flip, small rotations and scalings,
intensity and gamma jitter (the thesis deferred it).

With 7-17 training heads, the measured limit of every model here is generalisation to new
people, not fitting the training slices.  Each transform is one a new scan could plausibly
show: a head turned or sized a little differently, another scanner's gain and contrast, the
other hemisphere (brains are nearly symmetric, and the images' second axis is left-right in
every slice this project makes: ``core.data.slices`` renders canonical RAS+ volumes).  No
transform moves anatomy up-down or front-back, which would make impossible heads.

Applied to batches inside the ``tf.data`` pipeline (:func:`core.training.trainer.image_dataset`)
on the CPU, so a GPU's step is not slowed and the images on disk stay untouched; validation
and evaluation never see it.
"""

from __future__ import annotations

import math

__all__ = ["AUGMENT_DEFAULTS", "augment_batch", "check_augment"]

#: Strengths: flip probability, rotation (degrees, ±), scale (±fraction), intensity gain (±),
#: gamma (log-uniform in [1/(1+g), 1+g]).
AUGMENT_DEFAULTS = {
    "flip": 0.5,
    "rotate_deg": 8.0,
    "scale": 0.08,
    "gain": 0.1,
    "gamma": 0.2,
}


def check_augment(value):
    """``False``/``None`` (off), ``True`` (the defaults) or a dict of strengths -> dict or None."""
    from core.errors import UserError

    if value in (None, False):
        return None
    if value is True:
        return dict(AUGMENT_DEFAULTS)
    if not isinstance(value, dict):
        raise UserError(f"augment must be true, false or a dict of strengths, got {value!r}")
    unknown = sorted(set(value) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise UserError(f"unknown augmentation {unknown[0]!r}; known: {', '.join(AUGMENT_DEFAULTS)}")
    out = {**AUGMENT_DEFAULTS, **value}
    for key, v in out.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise UserError(f"augment {key} must be a number >= 0, got {v!r}")
    if out["flip"] > 1:
        raise UserError(f"augment flip is a probability, got {out['flip']!r}")
    return out


def augment_batch(images, strengths, seed=None, rng=None):
    """Augmented copy of a ``(B, S, S, 1)`` float32 batch in [0, 1] (tf tensors in and out).

    Each image gets its own random flip, rotation + scaling about the centre (bilinear, the
    background filled with 0 = air), gain and gamma; the result is clipped to [0, 1].
    ``rng``: a ``tf.random.Generator`` to draw from (its state advances, so a ``tf.data``
    pipeline that captures it augments anew every epoch even under a global seed, where
    ``tf.random.uniform`` would repeat the same draws each time the dataset is iterated).
    """
    import tensorflow as tf

    s = strengths
    x = tf.convert_to_tensor(images, tf.float32)
    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)

    def uniform(low, high):
        if rng is not None:
            return rng.uniform([n], low, high)
        return tf.random.uniform([n], low, high, seed=seed)

    if s["flip"] > 0:
        flip = uniform(0.0, 1.0) < s["flip"]
        x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
    if s["rotate_deg"] > 0 or s["scale"] > 0:
        angle = uniform(-1.0, 1.0) * (s["rotate_deg"] * math.pi / 180.0)
        zoom = 1.0 + uniform(-1.0, 1.0) * s["scale"]
        # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): the inverse of
        # a rotation by `angle` and scaling by `zoom` about the image centre.
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        centre = (size - 1.0) / 2.0
        a2 = centre - cos * centre + sin * centre
        b2 = centre - sin * centre - cos * centre
        zeros = tf.zeros_like(cos)
        transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
            interpolation="BILINEAR", fill_mode="CONSTANT")
    x = tf.clip_by_value(x, 0.0, 1.0)
    if s["gamma"] > 0:
        log_g = math.log1p(s["gamma"])
        gamma = tf.exp(uniform(-log_g, log_g))
        x = tf.pow(x + 1e-6, gamma[:, None, None, None])
    if s["gain"] > 0:
        x = x * (1.0 + uniform(-1.0, 1.0) * s["gain"])[:, None, None, None]
    return tf.clip_by_value(x, 0.0, 1.0)
