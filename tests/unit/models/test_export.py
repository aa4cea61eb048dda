"""core/models/export.py: a run's decoder as ONNX decodes like Keras (within 1/255) for a VAE, a
conditional VAE and a VQ-VAE (re-quantising with the codebook, same codes); RunData caches it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.errors import UserError
from core.models.export import DecoderExport, decoder_spec, export_decoder, run_onnx_decoder
from core.training.runs import RunData

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

TOLERANCE = 1 / 255


def _export(run_dir, tmp_path):
    data = RunData.open(run_dir)
    model = data.load_model()
    result = export_decoder(model, tmp_path / "decoder.onnx")
    assert result.available, result.reason
    assert result.bytes == (tmp_path / "decoder.onnx").stat().st_size > 0
    return data, model, result


def test_vae_decoder_matches_keras(tiny_vae_run, tmp_path):
    data, model, result = _export(tiny_vae_run, tmp_path)
    assert (result.model_type, result.inputs, result.latent_dim) == ("vae", ("latent",), int(model.latent_dim))
    z = np.random.default_rng(0).normal(0, 1.5, (16, model.latent_dim)).astype("float32")
    images, codes = run_onnx_decoder(result.path, z)
    expected = model.decode(z)[..., 0]
    assert codes is None and images.shape == expected.shape == (16, model.image_size, model.image_size)
    assert np.abs(images - expected).max() <= TOLERANCE
    # what the page shows (uint8 after rounding) is the same within one grey level
    as_u8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8).astype(int)  # noqa: E731
    assert np.abs(as_u8(images) - as_u8(expected)).max() <= 1


def test_conditional_vae_decoder_takes_the_condition(tiny_cvae_run, tmp_path):
    from core.models.conditions import condition_array

    data, model, result = _export(tiny_cvae_run, tmp_path)
    assert result.inputs == ("latent", "condition") and result.condition_dim == 3
    z = np.random.default_rng(1).normal(0, 1, (6, model.latent_dim)).astype("float32")
    start, stop = model.slice_range
    asked = [{"age": a, "sex": s, "slice": i} for a, s, i in
             [(25, "F", start), (80, "M", stop - 1), (50, "F", (start + stop) // 2)]] * 2
    c = np.concatenate([condition_array(q, 1, model.slice_range) for q in asked])
    images, _ = run_onnx_decoder(result.path, z, condition=c)
    expected = np.stack([model.decode(z[i:i + 1], condition=asked[i])[0, ..., 0] for i in range(6)])
    assert np.abs(images - expected).max() <= TOLERANCE
    # the condition matters: the same latent decodes differently for another condition
    other, _ = run_onnx_decoder(result.path, z[:1], condition=c[1:2])
    assert np.abs(other[0] - images[0]).max() > TOLERANCE
    with pytest.raises(UserError, match="conditional"):
        run_onnx_decoder(result.path, z)


def test_vqvae_decoder_requantises_like_the_model(tiny_vqvae_run, tmp_path):
    data, model, result = _export(tiny_vqvae_run, tmp_path)
    g, d = int(model.grid_size), int(model.embedding_dim)
    assert (result.model_type, result.grid, result.latent_dim) == ("vqvae", (g, g), g * g * d)
    z_e = model.encode(data.images("val")[:8])
    # the sliders move the continuous encoder output: add a push so some codes change
    z_e = z_e + np.random.default_rng(2).normal(0, 0.5, z_e.shape).astype("float32")
    images, codes = run_onnx_decoder(result.path, z_e.reshape(8, -1))
    z_q, expected_codes = model.quantize(z_e)
    expected = model.decode(z_q)[..., 0]
    assert codes.shape == expected_codes.shape == (8, g, g)
    assert (codes == expected_codes).mean() > 0.99  # a tie at float precision may pick another code
    same = (codes == expected_codes).reshape(8, -1).all(axis=1)
    assert same.any() and np.abs(images[same] - expected[same]).max() <= TOLERANCE


def test_rundata_exports_once_per_model_and_records_it(tiny_vae_run, tmp_path):
    run_dir = shutil.copytree(tiny_vae_run, tmp_path / "vae-tiny")
    data = RunData.open(run_dir)
    first = data.decoder_export()
    onnx = run_dir / "export" / f"decoder-{data.stamp[0]}.onnx"
    assert first.available and first.path == str(onnx) and onnx.is_file()
    assert DecoderExport.from_json(json.loads(onnx.with_suffix(".json").read_text())) == first
    mtime = onnx.stat().st_mtime_ns
    assert RunData.open(run_dir).decoder_export() == first and onnx.stat().st_mtime_ns == mtime  # reused
    # a new model file: a new export, the old one removed
    model = run_dir / "model.keras"
    model.touch()
    second = RunData.open(run_dir).decoder_export()
    assert second.path != first.path and not onnx.exists() and sorted(p.suffix for p in (run_dir / "export").iterdir()) == [".json", ".onnx"]


def test_a_failed_export_is_recorded_not_raised(tiny_vae_run, tmp_path, monkeypatch):
    import core.models.export as export

    run_dir = shutil.copytree(tiny_vae_run, tmp_path / "vae-tiny")

    def broken(model, spec):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(export, "_graph_function", broken)
    result = RunData.open(run_dir).decoder_export()
    assert not result.available and "converter exploded" in result.reason
    monkeypatch.undo()
    assert RunData.open(run_dir).decoder_export() == result  # not retried until the model changes


def test_no_model_is_a_user_error(tiny_vae_run, tmp_path):
    run_dir = shutil.copytree(tiny_vae_run, tmp_path / "vae-tiny")
    (run_dir / "model.keras").unlink()
    with pytest.raises(UserError, match="no model"):
        RunData.open(run_dir).decoder_export()


def test_spec_without_exporting(tiny_vqvae_run):
    model = RunData.open(tiny_vqvae_run).load_model()
    spec = decoder_spec(model)
    assert spec["inputs"] == ("latent",) and spec["condition_dim"] == 0 and spec["image_size"] == model.image_size
