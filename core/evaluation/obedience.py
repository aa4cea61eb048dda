"""Obedience of conditional samples: does a sample show the age or slice position asked for?

A small CNN regressor is trained on (augmented) real training slices to predict an attribute (age in
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
    """Train a small CNN (MSE on the standardised target) on ``images`` ``(N, H, W)`` and ``targets`` ``(N,)``.

    The regressor must read the attribute from anatomy, not recognise the training subjects:
    a few hundred slices of a few dozen subjects are easily memorised (a plain strided CNN
    fitted the demo cohort's training slices to a slice-position MAE of 0.5 and scored no
    better than a constant on unseen subjects).  So the network is small and pooled (global
    average pooling, weight decay), and every epoch sees a fresh augmentation of the
    training slices: a left-right flip, a shift of up to 3 pixels, and an intensity
    scale (0.85-1.15) and gamma (0.8-1.25) of the kind scanners differ by.
    """
    import keras
    from keras import layers

    x = _stack(images)
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(x) < 4 or len(y) != len(x) or not np.all(np.isfinite(y)):
        raise UserError(f"the regressor needs >= 4 images with finite targets, got {len(x)} and {len(y)}")
    mean, sd = float(y.mean()), float(y.std()) or 1.0
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(x.shape[1:] + (1,))])
    for filters in (16, 32, 64, 64):
        model.add(layers.Conv2D(filters, 3, padding="same", activation="relu"))
        if min(model.output_shape[1:3]) >= 2:
            model.add(layers.MaxPooling2D())
    model.add(layers.GlobalAveragePooling2D())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(1))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-3), loss="mse")
    z = ((y - mean) / sd).astype(np.float32)
    rng = np.random.default_rng(seed)
    loss = float("nan")
    for _ in range(epochs):
        fit = model.fit(_augment(x, rng)[..., None], z, epochs=1, batch_size=batch_size, verbose=0, shuffle=True)
        loss = float(fit.history["loss"][-1])
    # A short training shrinks predictions towards the mean; undo that with the least-squares
    # line from the raw outputs on the (unaugmented) training images to the targets.
    raw = AttributeRegressor(model, 0.0, 1.0, {}).predict(x)
    slope, intercept = (np.polyfit(raw, z, 1) if raw.std() > 1e-6 else (1.0, 0.0))
    return AttributeRegressor(model, mean + sd * float(intercept), sd * float(slope),
                              {"loss": loss, "epochs": epochs, "calibration_slope": float(slope)})


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip, shift (<= 3 px) and intensity scale/gamma per image of ``x`` ``(N, H, W)``."""
    out = np.clip(x, 0.0, None)
    flip = rng.random(len(x)) < 0.5
    out[flip] = out[flip, :, ::-1]
    for k, (dy, dx) in enumerate(rng.integers(-3, 4, (len(x), 2))):
        out[k] = np.roll(out[k], (int(dy), int(dx)), axis=(0, 1))
    gamma = rng.uniform(0.8, 1.25, (len(x), 1, 1)).astype(np.float32)
    scale = rng.uniform(0.85, 1.15, (len(x), 1, 1)).astype(np.float32)
    return (out ** gamma * scale).astype(np.float32)


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
