"""Classifier two-sample test: can a small CNN tell real slices from synthetic ones?

A CNN is trained on real training slices vs one half of the synthetic samples and scored
on held-out real slices (the test split) vs the other half.  Accuracy 0.5 means the two
sets are indistinguishable to it; 1.0 means every synthetic slice is spotted.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError
from core.evaluation.metrics import image_stack

__all__ = ["classifier_two_sample_test"]


def classifier_two_sample_test(real_train, synthetic, real_heldout, epochs: int = 8, seed: int = 0,
                               batch_size: int = 32) -> dict:
    """Train real-vs-synthetic on ``real_train`` + half of ``synthetic``, score on the rest.

    Args:
        real_train: ``(N, H, W)`` real slices to train on (the model's training split).
        synthetic: ``(M, H, W)`` samples of the model; the first half trains, the second tests.
        real_heldout: ``(K, H, W)`` real slices the classifier never sees in training.

    Returns:
        ``{accuracy, ci95, n_test, n_train, accuracy_real, accuracy_synthetic, auc, epochs}``
        where ``accuracy`` is on a balanced held-out set.
    """
    import keras
    from keras import layers
    from sklearn.metrics import roc_auc_score

    from core.evaluation.study_stats import wilson_interval

    real_train, synthetic, real_heldout = (_stack(a) for a in (real_train, synthetic, real_heldout))
    half = len(synthetic) // 2
    if half < 2 or len(real_heldout) < 2 or len(real_train) < 2:
        raise UserError(
            f"the two-sample test needs >= 4 synthetic and >= 2 real slices each side, got "
            f"{len(synthetic)} synthetic, {len(real_train)} train and {len(real_heldout)} held-out real"
        )
    rng = np.random.default_rng(seed)
    n_train = min(half, len(real_train))
    n_test = min(len(synthetic) - half, len(real_heldout))
    x_train = np.concatenate([real_train[rng.choice(len(real_train), n_train, replace=False)], synthetic[:n_train]])
    y_train = np.r_[np.zeros(n_train), np.ones(n_train)].astype(np.float32)
    x_test = np.concatenate([real_heldout[rng.choice(len(real_heldout), n_test, replace=False)],
                             synthetic[half:half + n_test]])
    y_test = np.r_[np.zeros(n_test), np.ones(n_test)]

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(x_train.shape[1:] + (1,)),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    # At least ~80 gradient steps, so a small set is not judged by an untrained classifier.
    steps_per_epoch = -(-len(x_train) // batch_size)
    epochs = max(int(epochs), -(-80 // steps_per_epoch))
    model.fit(x_train[..., None], y_train, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    p = np.asarray(model(x_test[..., None], training=False))[:, 0]
    correct = (p > 0.5) == (y_test == 1)
    k, n = int(correct.sum()), int(len(correct))
    return {
        "accuracy": k / n,
        "ci95": list(wilson_interval(k, n)),
        "auc": float(roc_auc_score(y_test, p)),
        "accuracy_real": float(correct[y_test == 0].mean()),
        "accuracy_synthetic": float(correct[y_test == 1].mean()),
        "n_test": n, "n_train": int(len(x_train)), "epochs": epochs,
        "meaning": "0.5 = indistinguishable to a small CNN, 1.0 = every synthetic slice spotted",
    }


_stack = image_stack  # one shape check for every metric (core.evaluation.metrics)
