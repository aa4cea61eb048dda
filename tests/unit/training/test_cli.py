"""``python -m core train`` / ``sample``: exit codes, one-line errors, PNG output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core import settings


def _cli(*args, timeout=120):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=settings.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_bad_run_name_exits_2_with_one_line(tiny_dataset, tmp_path):
    result = _cli("train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo",
                  "--run", "../escape", "--runs-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [_error_lines(result.stderr)[0]]
    assert "not allowed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_user_errors_exit_2(tiny_dataset, tmp_path, trained_vae):
    result = _cli("train", "--dataset", tmp_path / "nope", "--model", "vae", "--preset", "demo",
                  "--run", "x", "--runs-dir", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(_error_lines(result.stderr)) == 1 and "manifest.json is missing" in result.stderr
    # An existing run is never overwritten.
    result = _cli("train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo",
                  "--run", trained_vae.name, "--runs-dir", trained_vae.parent)
    assert result.returncode == 2 and "already exists" in result.stderr
    result = _cli("sample", tmp_path, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "not a run dir" not in result.stderr and "no model yet" in result.stderr


@pytest.mark.slow
def test_sample_writes_a_png(trained_vae, tmp_path):
    out = tmp_path / "grid.png"
    result = _cli("sample", trained_vae, "--n", 4, "--seed", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG" and str(out) in result.stdout
    from PIL import Image

    # 4 samples of 32 px, upscaled x4, 2 x 2 with 2 px gaps.
    assert Image.open(out).size == (2 * 128 + 2, 2 * 128 + 2)


def test_evaluate_writes_ssim_and_psnr(trained_vae, trained_vqvae):
    import json

    from core.training.cli import evaluate_run

    for run_dir in (trained_vae, trained_vqvae):
        result = evaluate_run(run_dir, n_samples=4)
        stored = json.loads((run_dir / "evaluation.json").read_text())
        assert stored == result
        assert 0 <= result["ssim"] <= 1 and result["psnr"] > 0 and result["n_test"] == 8
        assert result["sharpness_ratio"] > 0 and result["n_samples"] == 4
