"""Feature spaces for distribution distances that need no download.

- :func:`handcrafted_features`: intensity histogram, gradient and Laplacian statistics and
  grey-level co-occurrence texture (scikit-image) per image;
- :func:`encoder_features`: the run's own encoder (VAE posterior mean; VQ-VAE encoder
  output pooled over the grid, mean and spread per channel);
- :class:`SlicePositionNet`: a small CNN trained here on real training slices to predict the
  slice position (and the site when there are several); its penultimate layer is the space.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError
from core.evaluation.metrics import image_stack

__all__ = ["handcrafted_features", "encoder_features", "SlicePositionNet", "train_slice_position_net",
           "cached_slice_position_net"]

HIST_BINS = 16


_stack = image_stack  # one shape check for every metric (core.evaluation.metrics)


def handcrafted_features(images) -> np.ndarray:
    """``(N, 16 + 8 + 4)`` float64 features of images in [0, 1].

    16 intensity-histogram bins (fractions), gradient-magnitude mean / sd / 50th / 90th
    percentile, Laplacian sd, foreground fraction, mean and sd of foreground intensity,
    and GLCM contrast, homogeneity, energy and correlation (32 grey levels, distance 1,
    four directions averaged).
    """
    from scipy import ndimage
    from skimage.feature import graycomatrix, graycoprops

    x = np.clip(_stack(images), 0, 1)
    rows = []
    for image in x:
        hist = np.histogram(image, bins=HIST_BINS, range=(0, 1))[0] / image.size
        gy, gx = np.gradient(image)
        grad = np.hypot(gx, gy)
        lap = ndimage.laplace(image)
        fg = image > 0.1
        fg_values = image[fg] if fg.any() else np.zeros(1)
        levels = np.minimum((image * 32).astype(np.uint8), 31)
        glcm = graycomatrix(levels, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=32,
                            symmetric=True, normed=True)
        texture = [float(graycoprops(glcm, p).mean()) for p in ("contrast", "homogeneity", "energy", "correlation")]
        rows.append([*hist, grad.mean(), grad.std(), np.percentile(grad, 50), np.percentile(grad, 90),
                     lap.std(), fg.mean(), fg_values.mean(), fg_values.std(), *texture])
    return np.nan_to_num(np.array(rows, dtype=np.float64))


def encoder_features(model, images, condition=None) -> np.ndarray:
    """The run's own encoder as a feature space, ``(N, D)`` float64.

    VAE: posterior mean ``z_mean``.  VQ-VAE: encoder output before quantisation, mean and
    standard deviation of each channel over the code grid (``2 * embedding_dim`` values).
    A conditional VAE encodes with each image's ``condition``.
    """
    encoded = model.encode(_stack(images)) if condition is None else model.encode(_stack(images), condition=condition)
    if isinstance(encoded, tuple):  # VAE: (z_mean, z_log_var)
        return np.asarray(encoded[0], dtype=np.float64)
    encoded = np.asarray(encoded, dtype=np.float64)
    if encoded.ndim == 4:
        return np.concatenate([encoded.mean(axis=(1, 2)), encoded.std(axis=(1, 2))], axis=1)
    return encoded.reshape(len(encoded), -1)


class SlicePositionNet:
    """A small CNN trained on real slices to predict slice position (and site); features from its penultimate layer.

    Args:
        model: the trained Keras model with outputs ``position`` (and ``site``).
        feature_model: the Keras model from the input to the 32-wide feature layer.
        history: final training losses, for the record.
    """

    def __init__(self, model, feature_model, history: dict, sites: list[str]):
        self.model, self.feature_model, self.history, self.sites = model, feature_model, history, sites

    def features(self, images, batch_size: int = 256) -> np.ndarray:
        """``(N, 32)`` float64 features of images ``(N, H, W[, 1])``."""
        x = _stack(images)[..., None]
        out = [np.asarray(self.feature_model(x[s:s + batch_size], training=False))
               for s in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 32))

    def predict_position(self, images) -> np.ndarray:
        """Predicted relative slice position in [0, 1], ``(N,)``."""
        x = _stack(images)[..., None]
        outputs = self.model(x, training=False)
        position = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        return np.asarray(position)[:, 0]


def train_slice_position_net(images, positions, sites=None, epochs: int = 6, seed: int = 0,
                             batch_size: int = 64) -> SlicePositionNet:
    """Train :class:`SlicePositionNet` on real slices.

    Args:
        images: ``(N, H, W)`` real training slices in [0, 1].
        positions: ``(N,)`` slice position, any scale; rescaled to [0, 1] over the set.
        sites: ``(N,)`` site labels or None; a site head is added when there are 2 or more.
        epochs, seed, batch_size: training settings (a few epochs take seconds on 2 cores).
    """
    import keras
    from keras import layers

    x = _stack(images)[..., None]
    positions = np.asarray(positions, dtype=np.float32)
    if len(x) < 4 or len(positions) != len(x):
        raise UserError(f"the slice-position net needs >= 4 slices with positions, got {len(x)} and {len(positions)}")
    span = float(positions.max() - positions.min())
    target = (positions - positions.min()) / span if span > 0 else np.zeros_like(positions)
    site_names = sorted(set(sites)) if sites is not None else []
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(x.shape[1:])
    h = inputs
    for filters in (8, 16, 32):
        h = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    feats = layers.Dense(32, activation="relu", name="features")(h)
    outputs = {"position": layers.Dense(1, activation="sigmoid", name="position")(feats)}
    targets = {"position": target[:, None]}
    losses = {"position": "mse"}
    if len(site_names) > 1:
        outputs["site"] = layers.Dense(len(site_names), activation="softmax", name="site")(feats)
        targets["site"] = np.array([site_names.index(s) for s in sites], dtype=np.int32)
        losses["site"] = "sparse_categorical_crossentropy"
    model = keras.Model(inputs, list(outputs.values()), name="slice_position_net")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=list(losses.values()))
    # At least ~240 gradient steps, so a small dataset still gets a trained (not random) feature space.
    epochs = max(int(epochs), -(-240 // -(-len(x) // batch_size)))
    fit = model.fit(x, list(targets.values()), epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    history = {k: float(v[-1]) for k, v in fit.history.items()}
    feature_model = keras.Model(inputs, feats)
    return SlicePositionNet(model, feature_model, history, site_names)


def _from_model(model, history: dict, sites: list[str]) -> SlicePositionNet:
    import keras

    feature_model = keras.Model(model.inputs[0], model.get_layer("features").output)
    return SlicePositionNet(model, feature_model, history, sites)


def cached_slice_position_net(cache_dir, dataset_hash: str, images, positions, sites=None, seed: int = 0,
                              epochs: int = 6) -> SlicePositionNet:
    """:func:`train_slice_position_net`, trained once per dataset and seed and kept under ``cache_dir``.

    The net depends only on the dataset, so every run of that dataset is measured in the very
    same feature space (comparable FDs) and the training cost is paid once.
    """
    from pathlib import Path

    from core.atomic import atomic_path, read_json, write_json_atomic
    from core.training.checkpoints import load_keras

    folder = Path(cache_dir)
    stem = f"slice_position_net-v2-{dataset_hash}-seed{int(seed)}-e{int(epochs)}"  # v2: >= 240 steps
    model_path, meta_path = folder / f"{stem}.keras", folder / f"{stem}.json"
    meta = read_json(meta_path, default=None)
    if model_path.is_file() and isinstance(meta, dict):
        try:
            return _from_model(load_keras(model_path, compile=False), meta.get("history", {}), meta.get("sites", []))
        except UserError:
            pass  # a corrupt cache file: train again below
    net = train_slice_position_net(images, positions, sites, epochs=epochs, seed=seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_path, suffix=".keras") as tmp:
            net.model.save(tmp)
        write_json_atomic(meta_path, {"history": net.history, "sites": net.sites, "dataset_hash": dataset_hash})
    except OSError:
        pass  # a read-only cache only costs the retraining next time
    return net
