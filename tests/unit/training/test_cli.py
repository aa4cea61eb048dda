"""``python -m core train`` / ``sample``: exit codes, one-line errors, PNG output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import TINY_FLAGS, run_cli as _main
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

    from core.evaluation.run import evaluate_run  # moved out of this module (issue 9)

    for run_dir in (trained_vae, trained_vqvae):
        result = evaluate_run(run_dir, n_samples=8, c2st_options={"max_folds": 2, "max_epochs": 10})
        stored = json.loads((run_dir / "evaluation.json").read_text())
        assert stored == json.loads(json.dumps(result))
        assert 0 <= result["ssim"]["mean"] <= 1 and result["psnr"]["mean"] > 0 and result["n_test"] == 16
        assert result["sharpness_ratio"] > 0 and result["n_samples"] == 8


# ---------------------------------------------------------------------------- hyper-parameter flags




def _page_error(tiny_dataset, tmp_path, overrides) -> str:
    """The message the Train page shows for ``overrides`` (its Launch button calls launch_training)."""
    from core.errors import UserError
    from core.training import jobs

    with pytest.raises(UserError) as info:
        jobs.launch_training(tiny_dataset, "vae", "demo", "page", {"filters": [8, 16], "latent_dim": 8,
                                                                   "batch_size": 16, "epochs": 1,
                                                                   "warmup_epochs": 1, **overrides},
                             runs_dir=tmp_path / "page-runs")
    return str(info.value)


@pytest.mark.parametrize(
    "flags, overrides",
    [
        (["--batch-size", "0"], {"batch_size": 0}),
        (["--batch-size", "1000"], {"batch_size": 1000}),
        (["--batch-size", "2.5"], {"batch_size": 2.5}),
        (["--learning-rate", "0"], {"learning_rate": 0.0}),
        (["--learning-rate", "fast"], {"learning_rate": "fast"}),
        (["--beta", "-1"], {"beta": -1.0}),
        (["--latent-dim", "0"], {"latent_dim": 0}),
        (["--warmup-epochs", "-2"], {"warmup_epochs": -2}),
        (["--recon-loss", "poisson"], {"recon_loss": "poisson"}),
        (["--seed", "-1"], {"seed": -1}),
        (["--epochs", "0"], {"epochs": 0}),
        (["--set", "kl_schedule=sometimes"], {"kl_schedule": "sometimes"}),
        (["--set", "free_bits=-0.5"], {"free_bits": -0.5}),
        (["--set", "mixed_precision=yes"], {"mixed_precision": "yes"}),
        (["--set", "latent_dims=4"], {"latent_dims": 4}),
    ],
)
def test_bad_flags_give_the_pages_message(capsys, tiny_dataset, tmp_path, flags, overrides):
    code, out, err = _main(capsys, "train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo",
                           "--run", "cli", "--runs-dir", tmp_path, *TINY_FLAGS, *flags)
    assert code == 2 and out == ""
    assert err == f"error: {_page_error(tiny_dataset, tmp_path, overrides)}\n"
    assert not (tmp_path / "cli").exists() and not (tmp_path / "page-runs" / "page").exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--set", "beta"], "--set needs KEY=VALUE"),
        (["--set", "=3"], "--set needs KEY=VALUE"),
        (["--beta", "0.5", "--set", "beta=0.7"], "beta is given twice"),
        (["--set", "beta=0.5", "--set", "beta=0.7"], "--set beta is given twice"),
    ],
)
def test_malformed_set_is_one_line(capsys, tiny_dataset, tmp_path, flags, match):
    code, _, err = _main(capsys, "train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo",
                         "--run", "cli", "--runs-dir", tmp_path, *flags)
    assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1


def test_vae_flags_are_refused_for_a_vqvae(capsys, tiny_dataset, tmp_path):
    code, _, err = _main(capsys, "train", "--dataset", tiny_dataset, "--model", "vqvae", "--preset", "demo",
                         "--run", "vq", "--runs-dir", tmp_path, "--beta", "0.5")
    assert code == 2 and "unknown setting 'beta' for a vqvae demo run" in err


def test_the_prior_kind_is_checked_and_is_a_vqvae_setting(capsys, tiny_dataset, tmp_path):
    code, _, err = _main(capsys, "train", "--dataset", tiny_dataset, "--model", "vqvae", "--preset", "demo",
                         "--run", "vq", "--runs-dir", tmp_path, "--prior-type", "gan")
    assert code == 2 and "prior_type" in err and "transformer" in err
    code, _, err = _main(capsys, "train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo",
                         "--run", "vae", "--runs-dir", tmp_path, "--prior-type", "transformer")
    assert code == 2 and "unknown setting 'prior_type' for a vae demo run" in err
    assert not (tmp_path / "vq").exists() and not (tmp_path / "vae").exists()


def test_flags_and_set_are_recorded_in_config_json(capsys, tiny_dataset, tmp_path):
    import json

    code, out, err = _main(
        capsys, "train", "--dataset", tiny_dataset, "--model", "vae", "--preset", "demo", "--run", "flags",
        "--runs-dir", tmp_path, "--quiet", "--set", "filters=[8,16]", "--latent-dim", "8", "--batch-size", "16",
        "--epochs", "1", "--learning-rate", "0.002", "--beta", "0.5", "--warmup-epochs", "1",
        "--recon-loss", "bernoulli", "--seed", "3", "--set", "kl_schedule=none", "--set", "free_bits=0",
        "--set", "learn_sigma=false",
    )
    assert code == 0, err
    assert out.strip() == str(tmp_path / "flags")
    config = json.loads((tmp_path / "flags" / "config.json").read_text())
    expected = {"filters": [8, 16], "latent_dim": 8, "batch_size": 16, "epochs": 1, "learning_rate": 0.002,
                "beta": 0.5, "warmup_epochs": 1, "recon_loss": "bernoulli", "seed": 3, "kl_schedule": "none",
                "free_bits": 0.0, "learn_sigma": False}
    assert {k: config[k] for k in expected} == expected
    assert config["sigma"] == 0.1 and config["cycle_epochs"] == 10  # the rest: the preset's
    status = json.loads((tmp_path / "flags" / "status.json").read_text())
    assert status["state"] == "finished" and status["epoch"] == 1

    # Train it on from its folder alone: config.json says what and on which dataset.
    code, _, err = _main(capsys, "train", "--run-dir", tmp_path / "flags", "--epochs", "2", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "flags" / "config.json").read_text())["epochs"] == 2
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "flags" / "metrics.csv")["epoch"]) == [1, 2]
    code, _, err = _main(capsys, "train", "--run-dir", tmp_path / "flags", "--model", "vqvae")
    assert code == 2 and "is a vae demo run, not vqvae demo" in err


def test_run_dir_must_be_a_run_folder_and_new_runs_need_their_inputs(capsys, tmp_path):
    code, _, err = _main(capsys, "train", "--run-dir", tmp_path)
    assert code == 2 and "is not a run dir: config.json is missing" in err
    code, _, err = _main(capsys, "train", "--model", "vae", "--preset", "demo")
    assert code == 2 and "a new run needs --dataset" in err
    code, _, err = _main(capsys, "train", "--run", "nothing", "--runs-dir", tmp_path, "--resume")
    assert code == 2 and "there is no run nothing" in err


def test_help_explains_every_flag(capsys):
    from core.training.cli import HYPER_FLAGS

    with pytest.raises(SystemExit) as info:
        _main(capsys, "train", "--help")
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, _, help_text in (*HYPER_FLAGS, ("--set", None, "any other preset key"),
                               ("--run-dir", None, "train an existing run folder")):
        assert flag in text and " ".join(help_text.split()) in text, flag
    assert "same messages" in text and "config.json" in text
