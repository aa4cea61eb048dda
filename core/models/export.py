"""A model's decoder as an ONNX file the browser runs (onnxruntime-web), with its contract.

The Latent explorer's sliders move a *continuous* latent; the exported graph takes that latent
and returns what the server would show:

- VAE: ``latent`` ``(N, latent_dim)`` float32 → ``image`` ``(N, S, S)`` float32 in [0, 1]
  (``sigmoid(decoder(z))``, as :meth:`core.models.vae.VAE.decode`);
- conditional VAE: also ``condition`` ``(N, 3)`` float32 (age / 100, 1 for F, slice fraction:
  :func:`core.models.conditions.condition_array`);
- VQ-VAE: ``latent`` ``(N, h*w*D)`` float32, the flattened encoder output; the graph re-quantises
  it with the codebook (nearest code, squared L2, as ``VectorQuantizer``), decodes the looked-up
  codes and returns ``image`` plus ``codes`` ``(N, h, w)`` int32, so the page can count the codes
  a move changed.  (A conditional VQ-VAE's decoder is not conditioned: no ``condition`` input.)

Why ONNX and not TensorFlow.js: see docs/guide.md, Latent explorer.
This module imports TensorFlow and tf2onnx only inside :func:`export_decoder`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError

__all__ = ["DecoderExport", "export_decoder", "decoder_spec", "run_onnx_decoder", "OPSET"]

#: ONNX opset of the exported graphs (onnxruntime-web 1.23 and onnxruntime 1.32 run it).
OPSET = 17


@dataclass(frozen=True)
class DecoderExport:
    """What :func:`export_decoder` wrote, or why it could not.

    ``available`` False comes with ``reason``; otherwise ``path`` is the ONNX file,
    ``inputs`` the graph's input names in order, ``latent_dim`` the flat latent size,
    ``image_size`` S, ``grid`` ``(h, w)`` for a VQ-VAE (None for a VAE), ``bytes`` the file's
    size and ``seconds`` the export time."""

    available: bool
    path: str = ""
    model_type: str = ""
    inputs: tuple = ()
    latent_dim: int = 0
    image_size: int = 0
    grid: tuple | None = None
    condition_dim: int = 0
    bytes: int = 0
    seconds: float = 0.0
    opset: int = OPSET
    reason: str = ""

    def to_json(self) -> dict:
        out = asdict(self)
        out["inputs"], out["grid"] = list(self.inputs), None if self.grid is None else list(self.grid)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "DecoderExport":
        data = dict(data)
        data["inputs"] = tuple(data.get("inputs") or ())
        data["grid"] = None if data.get("grid") is None else tuple(data["grid"])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def decoder_spec(model) -> dict:
    """The exported graph's contract for ``model`` without exporting: ``model_type``, ``inputs``,
    ``latent_dim``, ``image_size``, ``grid``, ``condition_dim``."""
    image_size = int(model.image_size)
    if hasattr(model, "quantizer"):
        g, d = int(model.grid_size), int(model.embedding_dim)
        return dict(model_type="vqvae", inputs=("latent",), latent_dim=g * g * d, image_size=image_size,
                    grid=(g, g), condition_dim=0)
    conditional = bool(getattr(model, "conditional", False))
    from core.models.conditions import CONDITION_DIM

    return dict(model_type="vae", inputs=("latent", "condition") if conditional else ("latent",),
                latent_dim=int(model.latent_dim), image_size=image_size, grid=None,
                condition_dim=CONDITION_DIM if conditional else 0)


def _graph_function(model, spec: dict):
    """A ``tf.function`` with a fixed input signature computing what the browser needs."""
    import tensorflow as tf
    from keras import ops

    n_latent = spec["latent_dim"]
    latent = tf.TensorSpec((None, n_latent), tf.float32, name="latent")
    if spec["model_type"] == "vqvae":
        g, _ = spec["grid"]
        d = n_latent // (g * g)
        codebook_values = np.asarray(model.quantizer.codebook, "float32")

        @tf.function(input_signature=[latent])
        def decode(z):
            codebook = tf.constant(codebook_values)  # made inside: a captured tensor would become an input
            flat = tf.reshape(z, (-1, d))
            distances = (tf.reduce_sum(flat ** 2, axis=1, keepdims=True) - 2.0 * tf.matmul(flat, codebook,
                                                                                            transpose_b=True)
                         + tf.reduce_sum(codebook ** 2, axis=1)[None, :])
            codes = tf.cast(tf.argmin(distances, axis=1), tf.int32)
            z_q = tf.reshape(tf.gather(codebook, codes), (-1, g, g, d))
            image = tf.sigmoid(tf.cast(model.decoder(z_q, training=False), tf.float32))[..., 0]
            return {"image": tf.identity(image, name="image"),
                    "codes": tf.identity(tf.reshape(codes, (-1, g, g)), name="codes")}

        return decode
    if spec["condition_dim"]:
        condition = tf.TensorSpec((None, spec["condition_dim"]), tf.float32, name="condition")

        @tf.function(input_signature=[latent, condition])
        def decode(z, c):
            image = ops.sigmoid(ops.cast(model.decoder([z, c], training=False), "float32"))[..., 0]
            return {"image": tf.identity(image, name="image")}

        return decode

    @tf.function(input_signature=[latent])
    def decode(z):
        image = ops.sigmoid(ops.cast(model.decoder(z, training=False), "float32"))[..., 0]
        return {"image": tf.identity(image, name="image")}

    return decode


def export_decoder(model, path: str | Path) -> DecoderExport:
    """Write ``model``'s decoder (a VQ-VAE's with its codebook lookup) as ONNX to ``path``.

    Returns a :class:`DecoderExport`; a conversion that fails returns ``available=False`` with
    the reason (the page then decodes on the server), it does not raise.
    """
    from core.atomic import write_bytes_atomic

    spec = decoder_spec(model)
    path = Path(path)
    started = time.perf_counter()
    try:
        import tf2onnx

        fn = _graph_function(model, spec)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=OPSET)
        data = proto.SerializeToString()
    except Exception as exc:  # noqa: BLE001 — any converter failure means "decode on the server"
        return DecoderExport(False, model_type=spec["model_type"], reason=f"{type(exc).__name__}: {exc}"[:300])
    write_bytes_atomic(path, data)
    return DecoderExport(True, str(path), spec["model_type"], tuple(spec["inputs"]), spec["latent_dim"],
                         spec["image_size"], spec["grid"], spec["condition_dim"], len(data),
                         round(time.perf_counter() - started, 3))


def run_onnx_decoder(path: str | Path, latents, condition=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode ``latents`` ``(n, latent_dim)`` with the ONNX file at ``path`` (onnxruntime on the
    CPU): ``(images (n, S, S) float32, codes (n, h, w) int32 or None)``.  For checks and benchmarks;
    the page decodes in the browser."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UserError("onnxruntime is not installed: pip install -r requirements.txt") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {names[0]: np.asarray(latents, "float32").reshape(len(latents), -1)}
    if len(names) > 1:
        if condition is None:
            raise UserError("this decoder is conditional: give a condition array (n, 3)")
        feed[names[1]] = np.asarray(condition, "float32").reshape(len(latents), -1)
    outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, feed))}
    codes = outputs.get("codes")
    return outputs["image"], None if codes is None else np.asarray(codes, "int32")
