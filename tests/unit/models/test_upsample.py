"""A VQ-VAE decoder that upsamples by resize-convolution (``upsample="resize"``): no transposed
convolution, the same shapes, saved and loaded as such, validated, and exported to ONNX like Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import UserError
from core.models.presets import validate_config
from core.models.vqvae import VQVAE, build_vqvae

CONFIG = {"image_size": 32, "filters": [8, 16], "n_res_blocks": 1, "res_filters": 16, "num_embeddings": 16,
          "embedding_dim": 8, "seed": 0}


def _layer_types(model):
    return {type(layer).__name__ for layer in model.decoder.layers}


def test_resize_decoder_has_no_transposed_convolution_and_keeps_the_shapes(blobs32):
    resize = build_vqvae({**CONFIG, "upsample": "resize"})
    transpose = build_vqvae(CONFIG)
    assert "Conv2DTranspose" not in _layer_types(resize) and "UpSampling2D" in _layer_types(resize)
    assert "Conv2DTranspose" in _layer_types(transpose) and "UpSampling2D" not in _layer_types(transpose)
    assert resize.reconstruct(blobs32[:4]).shape == transpose.reconstruct(blobs32[:4]).shape == (4, 32, 32, 1)
    # the config names the choice only when it is not the default, so older files load unchanged
    assert resize.get_config()["upsample"] == "resize" and "upsample" not in transpose.get_config()


def test_resize_decoder_round_trips_through_a_keras_file(tmp_path, blobs32):
    model = build_vqvae({**CONFIG, "upsample": "resize"})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(blobs32[:32], batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "vqvae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, VQVAE) and loaded.upsample == "resize"
    np.testing.assert_array_equal(model.reconstruct(blobs32[:8]), loaded.reconstruct(blobs32[:8]))


def test_upsample_is_validated():
    assert validate_config({"model_type": "vqvae", "preset": "cpu128", "upsample": "resize"})["upsample"] == "resize"
    assert validate_config({"model_type": "vqvae", "preset": "cpu128"})["upsample"] == "transpose"
    with pytest.raises(UserError, match="upsample must be one of transpose, resize"):
        validate_config({"model_type": "vqvae", "preset": "demo", "upsample": "bilinear"})
    with pytest.raises(UserError, match="upsample"):
        VQVAE(**CONFIG, upsample="deconv")


def test_resize_decoder_exports_to_onnx_like_keras(tmp_path, blobs32):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from core.models.export import export_decoder, run_onnx_decoder

    model = build_vqvae({**CONFIG, "upsample": "resize"})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(blobs32[:32], batch_size=8, epochs=1, verbose=0)
    result = export_decoder(model, tmp_path / "decoder.onnx")
    assert result.available, result.reason
    z_e = model.encode(blobs32[:8])
    images, codes = run_onnx_decoder(result.path, z_e.reshape(8, -1))
    z_q, expected_codes = model.quantize(z_e)
    expected = model.decode(z_q)[..., 0]
    same = (codes == expected_codes).reshape(8, -1).all(axis=1)
    assert same.any() and np.abs(images[same] - expected[same]).max() <= 1 / 255
