"""Inference helpers shared by the models: input conversion, batching, compiled-function cache.

The models' ``encode``/``decode``/``sample`` verbs take NumPy arrays of any length, run them
in batches through a graph function compiled once per model (:func:`compiled`) and return
NumPy arrays.  Images are ``(N, H, W)`` or ``(N, H, W, 1)``; the helpers make them
``(N, H, W, 1)`` float32.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

from core.errors import UserError

__all__ = ["as_images", "numpy_images", "batches", "run_batched", "compiled", "clear_compiled"]

_CACHE = "_latentbrain_compiled"


def as_images(x):
    """``(B, H, W)`` or ``(B, H, W, 1)`` -> float32 ``(B, H, W, 1)`` tensor (inside a graph)."""
    x = ops.convert_to_tensor(x)
    if len(x.shape) == 3:
        x = x[..., None]
    return ops.cast(x, "float32")


def numpy_images(images):
    """``(N, H, W)`` or ``(N, H, W, 1)`` array-like -> float32 ``(N, H, W, 1)`` ndarray.

    Raises:
        UserError: for any other shape, showing the shape found.

    >>> numpy_images(np.zeros((2, 4, 4))).shape
    (2, 4, 4, 1)
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise UserError(f"images must be (N, H, W) or (N, H, W, 1), got shape {images.shape}")
    return images


def batches(array, batch_size):
    """Consecutive slices of ``array`` along axis 0, each at most ``batch_size`` long.

    >>> [len(b) for b in batches(np.zeros(5), 2)]
    [2, 2, 1]
    """
    for start in range(0, len(array), batch_size):
        yield array[start : start + batch_size]


def run_batched(fn, array, batch_size, dtype="float32"):
    """``fn`` applied to ``array`` batch by batch, results concatenated along axis 0 as ``dtype``.

    An empty ``array`` is passed to ``fn`` once, so the result still has the right trailing shape.
    """
    parts = [np.asarray(fn(b)).astype(dtype, copy=False) for b in batches(array, batch_size)]
    if not parts:
        return np.asarray(fn(array)).astype(dtype, copy=False)
    return np.concatenate(parts)


def compiled(owner, key, fn):
    """Cache ``fn`` compiled as a graph function on ``owner`` (inference fast path).

    With the TensorFlow backend this is ``tf.function(fn, reduce_retracing=True)``; the
    cache is stored outside Keras' attribute tracking so it is never saved.
    """
    cache = owner.__dict__.get(_CACHE)
    if cache is None:
        cache = {}
        object.__setattr__(owner, _CACHE, cache)
    if key not in cache:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            cache[key] = tf.function(fn, reduce_retracing=True)
        else:
            cache[key] = fn
    return cache[key]


def clear_compiled(owner):
    """Forget ``owner``'s compiled functions (after its sub-models change)."""
    object.__setattr__(owner, _CACHE, {})
