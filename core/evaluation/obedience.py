"""Obedience of conditional samples: does a sample show the age or slice position asked for?

A small CNN regressor is trained on real training slices to predict an attribute (age in
years, slice index); it then reads the attribute off conditional samples, and the requested
values are compared with the predicted ones (Pearson r and mean absolute error).  The same
regressor scored on real test slices gives the ceiling: a generator cannot be shown to obey
better than the regressor can read real images.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError
from core.evaluation.metrics import image_stack

__all__ = ["AttributeRegressor", "train_attribute_regressor", "agreement"]


_stack = image_stack  # one shape check for every metric (core.evaluation.metrics)


class AttributeRegressor:
    """A trained regressor: :meth:`predict` gives the attribute in its own units, ``(N,)`` float64."""

    def __init__(self, model, mean: float, sd: float, history: dict):
        self.model, self.mean, self.sd, self.history = model, mean, sd, history

    def predict(self, images, batch_size: int = 256) -> np.ndarray:
        x = _stack(images)[..., None]
        out = [np.asarray(self.model(x[s:s + batch_size], training=False))[:, 0]
               for s in range(0, len(x), batch_size)]
        z = np.concatenate(out) if out else np.zeros(0)
        return z.astype(np.float64) * self.sd + self.mean


def train_attribute_regressor(images, targets, epochs: int = 20, seed: int = 0,
                              batch_size: int = 32) -> AttributeRegressor:
    """Train a 4-block CNN (MSE on the standardised target) on ``images`` ``(N, H, W)`` and ``targets`` ``(N,)``."""
    import keras
    from keras import layers

    x = _stack(images)[..., None]
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(x) < 4 or len(y) != len(x) or not np.all(np.isfinite(y)):
        raise UserError(f"the regressor needs >= 4 images with finite targets, got {len(x)} and {len(y)}")
    mean, sd = float(y.mean()), float(y.std()) or 1.0
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    fit = model.fit(x, ((y - mean) / sd).astype(np.float32), epochs=epochs, batch_size=batch_size,
                    verbose=0, shuffle=True)
    return AttributeRegressor(model, mean, sd, {"loss": float(fit.history["loss"][-1]), "epochs": epochs})


def agreement(requested, predicted) -> dict:
    """``{pearson_r, mae, n}`` between requested and predicted values (1-D, same length).

    ``pearson_r`` is None when either side is constant.

    >>> agreement([1, 2, 3], [1, 2, 4])["mae"]
    0.3333333333333333
    """
    a = np.asarray(requested, dtype=np.float64).reshape(-1)
    b = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if len(a) != len(b) or len(a) < 2:
        raise UserError(f"requested and predicted must have the same length >= 2, got {len(a)} and {len(b)}")
    r = None if a.std() == 0 or b.std() == 0 else float(np.corrcoef(a, b)[0, 1])
    return {"pearson_r": r, "mae": float(np.abs(a - b).mean()), "n": int(len(a))}
