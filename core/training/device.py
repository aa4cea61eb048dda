"""Where training runs: GPU detection, memory growth, mixed precision, distribution strategy."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceSetup", "list_gpus", "setup_device"]


@dataclass
class DeviceSetup:
    """Result of :func:`setup_device`.

    Attributes:
        strategy: ``tf.distribute`` strategy to build and compile the model under.
        description: for people, e.g. ``"CPU"`` or ``"GPU: NVIDIA H100 80GB HBM3"``.
        n_gpus: GPUs in use.
        mixed_precision: whether the ``mixed_float16`` policy is on.
        notes: things the user should know (e.g. mixed precision asked for but no GPU).
    """

    strategy: object
    description: str
    n_gpus: int
    mixed_precision: bool
    notes: list


def list_gpus() -> list:
    """Physical GPUs TensorFlow sees (empty on a CPU-only machine)."""
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _gpu_name(gpu) -> str:
    import tensorflow as tf

    try:
        return tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name
    except (ValueError, RuntimeError):
        return gpu.name


def setup_device(mixed_precision: bool = False) -> DeviceSetup:
    """Configure TensorFlow for training and describe the device.

    GPUs get memory growth (so two jobs can share one); ``mixed_precision`` switches the
    global Keras policy to ``mixed_float16`` only when a GPU is present; with more than one
    GPU the strategy is ``MirroredStrategy``, else the default strategy.  Call before
    building or loading a model.
    """
    import keras
    import tensorflow as tf

    gpus = list_gpus()
    notes = []
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (ValueError, RuntimeError):  # already initialised: keep its setting
            pass
    use_mixed = bool(mixed_precision and gpus)
    if mixed_precision and not gpus:
        notes.append("mixed precision needs a GPU; training in float32 on the CPU")
    keras.config.set_dtype_policy("mixed_float16" if use_mixed else "float32")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        description = f"{len(gpus)} GPUs (mirrored): {_gpu_name(gpus[0])}"
    else:
        strategy = tf.distribute.get_strategy()
        description = f"GPU: {_gpu_name(gpus[0])}" if gpus else "CPU"
    if use_mixed:
        description += " · mixed float16"
    return DeviceSetup(strategy, description, len(gpus), use_mixed, notes)
