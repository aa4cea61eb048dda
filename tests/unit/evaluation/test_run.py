"""The run evaluator and ``python -m core evaluate``: contract keys, sanity of the figures, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core import settings
from core.errors import UserError
# QUICK_C2ST where a test is not about the two-sample test's power (the evaluator's `--quick`).
from core.evaluation.run import QUICK_C2ST, evaluate_run

CONTRACT = ("ssim", "psnr", "ms_ssim_synthetic", "ms_ssim_real", "frechet", "c2st", "memorisation", "verdict",
            "n_samples")


def _headline(value):
    return value.get("mean", value.get("accuracy")) if isinstance(value, dict) else value


def _train(tmp_path_factory, dataset, epochs, name):
    from core.training import runs, trainer

    overrides = {"filters": [8, 16], "latent_dim": 8, "batch_size": 16, "epochs": epochs,
                 "warmup_epochs": min(epochs, 5), "learning_rate": 3e-3}
    run_dir = runs.prepare_run(tmp_path_factory.mktemp("evalruns") / name, dataset, "vae", "demo", overrides)
    trainer.train_run(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def short_and_long(tmp_path_factory, eval_dataset):
    return (_train(tmp_path_factory, eval_dataset, 1, "vae-1ep"),
            _train(tmp_path_factory, eval_dataset, 60, "vae-60ep"))


@pytest.mark.slow
def test_evaluation_json_holds_the_contract(short_and_long):
    from core.evaluation.run import evaluate_run, read_evaluation

    run_dir = short_and_long[1]
    result = evaluate_run(run_dir, n_samples=32, c2st_options=QUICK_C2ST)
    assert read_evaluation(run_dir) == json.loads(json.dumps(result))
    for key in CONTRACT:
        assert key in result, key
    assert 0 <= _headline(result["ssim"]) <= 1 and _headline(result["psnr"]) > 0
    assert 0 <= _headline(result["c2st"]) <= 1 and result["n_samples"] == 32
    assert result["ms_ssim_setting"]["scales"] == 2  # 32 px
    assert set(result["ssim"]["per_site"]) == {"Guys", "HH", "IOP"}
    assert result["fd_own_encoder"]["label"] == "FD (own encoder)"
    assert result["fd_slice_position_net"]["label"] == "FD (slice-position net)"
    assert result["mmd_handcrafted"]["label"] == "MMD (handcrafted)"
    assert "FID" not in json.dumps(result).replace("not FID", "")
    assert result["anomaly"]["label"].startswith("synthetic check") and 0 <= result["anomaly"]["auroc"] <= 1
    assert len(result["memorisation"]["nearest_index"]) == 32
    assert result["frechet"]["real_spread"]["median"] < result["frechet"]["mean"]
    # The strict judge: held-out real side split by subject, the training-slice test and the
    # real-vs-real baseline beside it, near-copies beside every sample figure, and a verdict.
    c2st = result["c2st"]
    # Held out means never touched: the 8 test subjects, not the validation one (early stopping).
    assert c2st["n_real_subjects"] == 8 and "held-out" in c2st["real_side"]
    assert result["n_heldout_subjects"] == 8 and result["n_validation_subjects"] == 1
    assert 0 <= c2st["against_training"]["accuracy"] <= 1 and "gap" in c2st["memorisation_gap"]
    assert 0 <= c2st["real_baseline"]["accuracy"] <= 1 and c2st["real_baseline"]["n_synthetic"] == 32
    assert c2st["near_copy_fraction"] == result["memorisation"]["near_copy_fraction"]
    assert 0 <= result["memorisation"]["real_baseline"]["near_copy_fraction"] <= 1
    for key in ("fd_own_encoder", "fd_slice_position_net", "mmd_handcrafted"):
        spread = result[key]["real_spread"]
        assert spread["p05"] <= spread["median"] <= spread["p95"] and result[key]["n_draws"] >= 10
    assert result["ms_ssim_real"]["p05"] <= result["ms_ssim_real"]["mean"] <= result["ms_ssim_real"]["p95"]
    assert isinstance(result["verdict"]["indistinguishable"], bool) and len(result["verdict"]["reasons"]) == 3
    # The anatomy-aware judge: its two-sample test with a subject-bootstrap interval and a real
    # baseline, and precision / recall / density / coverage beside their by-subject real spread.
    anatomy = result["c2st_anatomy"]
    assert 0 <= anatomy["accuracy"] <= 1 and anatomy["ci95"][0] <= anatomy["accuracy"] <= anatomy["ci95"][1]
    assert "subject bootstrap" in anatomy["interval"] and 0 <= anatomy["real_baseline"]["accuracy"] <= 1
    assert anatomy["feature_space"]["dims"] == 9 and isinstance(anatomy["beyond_real"], bool)
    for key in ("precision", "recall", "density", "coverage"):
        assert result[key]["value"] >= 0 and "real_spread" in result[key], key
        assert isinstance(result["verdict"]["within_real_spread"][key], bool)
    board = result["checkerboard"]  # the decoder's periodic pattern, beside held-out real slices'
    assert set(board["samples"]) == set(board["real"]) == {"2", "4", "8"}
    assert all(v >= 0 for v in [*board["samples"].values(), *board["real"].values()])


@pytest.mark.slow
def test_longer_training_scores_better_than_one_epoch(short_and_long):
    from core.evaluation.run import evaluate_run

    short, long = (evaluate_run(r, n_samples=32, write=False, c2st_options=QUICK_C2ST) for r in short_and_long)
    # The slice-position net is trained on the same data with the same seed for both runs,
    # so its Fréchet distances are comparable across models (own-encoder ones are not).
    assert long["frechet"]["mean"] < short["frechet"]["mean"]
    assert long["mmd_handcrafted"]["value"] < short["mmd_handcrafted"]["value"]
    assert _headline(long["ssim"]) > _headline(short["ssim"])


def test_vqvae_without_prior_reports_no_samples_but_reconstructions(tmp_path, tiny_dataset):
    from core.evaluation.run import evaluate_run
    from core.training import runs, trainer

    config = {"filters": [8, 16], "n_res_blocks": 1, "res_filters": 16, "num_embeddings": 16, "embedding_dim": 8,
              "batch_size": 16, "epochs": 1, "prior_epochs": 0}
    run_dir = runs.prepare_run(tmp_path / "vq-noprior", tiny_dataset, "vqvae", "demo", config)
    trainer.train_run(run_dir)
    result = evaluate_run(run_dir, n_samples=8)
    assert result["n_samples"] == 0 and result["c2st"]["accuracy"] is None
    assert "prior" in result["samples_unavailable"] and 0 <= result["ssim"]["mean"] <= 1
    assert "ms_ssim_real" in result and "value" not in result["fd_own_encoder"]


def test_one_training_subject_gives_every_other_figure(tmp_path):
    """Near-copies need two training subjects; without them memorisation (and what rests on it)
    is marked unavailable with the reason, and every other figure is still written."""
    from core.evaluation.run import evaluate_run, read_evaluation
    from core.training import runs, trainer
    from helpers import make_tiny_dataset

    dataset = make_tiny_dataset(tmp_path / "ds", per_split=(8, 8, 16))  # 1 / 1 / 2 subjects
    run_dir = runs.prepare_run(tmp_path / "one", dataset, "vae", "demo",
                               {"filters": [8, 16], "latent_dim": 8, "batch_size": 8, "epochs": 1})
    trainer.train_run(run_dir)
    result = evaluate_run(run_dir, n_samples=16, c2st_options={"max_epochs": 5})
    assert read_evaluation(run_dir)["n_train_subjects"] == 1
    memo = result["memorisation"]
    assert memo["available"] is False and "at least 2 subjects" in memo["reason"]
    assert result["c2st"]["real_baseline"]["available"] is False
    assert 0 <= result["c2st"]["accuracy"] <= 1
    assert result["verdict"]["available"] is False and result["verdict"]["indistinguishable"] is None
    assert 0 <= result["ssim"]["mean"] <= 1 and result["ms_ssim_synthetic"]["mean"] > 0
    assert result["fd_slice_position_net"]["value"] >= 0


def test_one_heldout_subject_and_a_failing_step_still_give_every_other_figure(tmp_path, monkeypatch):
    """One test subject: nothing split by subject can be computed, but the reconstructions, the
    samples' own diversity and the distances are; and a step that fails with an unexpected error
    leaves that error under its keys while the steps after it still run."""
    from core.evaluation import run as evaluation
    from core.training import runs, trainer
    from helpers import make_tiny_dataset

    dataset = make_tiny_dataset(tmp_path / "ds", per_split=(24, 8, 8))  # 3 / 1 / 1 subjects
    run_dir = runs.prepare_run(tmp_path / "one-heldout", dataset, "vae", "demo",
                               {"filters": [8, 16], "latent_dim": 8, "batch_size": 8, "epochs": 1})
    trainer.train_run(run_dir)

    def broken(ev):
        raise RuntimeError("planted failure")

    steps = tuple((name, message, keys, broken if name == "memorisation" else step)
                  for name, message, keys, step in evaluation.STEPS)
    monkeypatch.setattr(evaluation, "STEPS", steps)
    result = evaluation.evaluate_run(run_dir, n_samples=16, c2st_options={"max_epochs": 3})
    assert result["n_heldout_subjects"] == 1
    assert result["memorisation"]["available"] is False and "planted failure" in result["memorisation"]["reason"]
    assert "RuntimeError" in result["errors"]["memorisation"]
    assert 0 <= result["ssim"]["mean"] <= 1 and result["ms_ssim_synthetic"]["mean"] > 0
    assert result["ms_ssim_real"]["available"] is False
    for key in ("fd_slice_position_net", "fd_own_encoder", "mmd_handcrafted"):
        assert result[key]["value"] is not None and result[key]["real_spread"]["available"] is False, key
    assert result["c2st"]["available"] is False and "2 subjects" in result["c2st"]["reason"]
    assert result["anomaly"]["auroc"] is not None  # the step after the failures ran


def test_no_test_split_is_a_clear_user_error(tmp_path):
    from core.evaluation.run import evaluate_run
    from core.training import runs
    from helpers import make_tiny_dataset

    dataset = make_tiny_dataset(tmp_path / "ds", per_split=(48, 8, 0))
    run_dir = runs.prepare_run(tmp_path / "r", dataset, "vae", "demo",
                               {"filters": [8, 16], "latent_dim": 8, "batch_size": 16})
    with pytest.raises(UserError, match="no test images"):
        evaluate_run(run_dir)


def _cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=settings.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_writes_evaluation_json_and_exits_2_on_user_error(trained_vae, tmp_path):
    # --quick: the two-sample tests with two folds and 15 epochs (their power is tested elsewhere)
    result = _cli("evaluate", trained_vae, "--n-samples", 8, "--quiet", "--quick")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(trained_vae / "evaluation.json")
    stored = json.loads((trained_vae / "evaluation.json").read_text())
    assert {"ssim", "psnr", "c2st", "frechet"} <= set(stored) and stored["quick"] is True
    assert stored["c2st"]["n_folds"] <= 2
    # The headline line on stderr carries the anatomy-aware figures beside the pixel test's.
    headline = json.loads([line for line in result.stderr.splitlines() if line.startswith("{")][-1])
    assert {"c2st", "c2st_anatomy", "precision", "recall", "density", "coverage"} <= set(headline)
    bad = _cli("evaluate", tmp_path, "--quiet")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    few = _cli("evaluate", trained_vae, "--n-samples", 2)
    assert few.returncode == 2 and "at least 8" in few.stderr


def test_vae_samples_from_its_aggregate_posterior_on_request(trained_vae, trained_vqvae, tmp_path):
    """``sample_source="aggregate"`` fits the run's mixture once, samples from it and says so."""
    from core.models.aggregate import AGGREGATE

    result = evaluate_run(trained_vae, n_samples=8, write=False, sample_source="aggregate", c2st_options=QUICK_C2ST)
    assert result["sample_source"] == "aggregate"
    assert (trained_vae / AGGREGATE).is_file()
    assert result["c2st"]["accuracy"] is not None and result["ms_ssim_synthetic"]["mean"] > 0
    assert evaluate_run(trained_vae, n_samples=8, write=False, c2st_options=QUICK_C2ST)["sample_source"] == "prior"
    with pytest.raises(UserError, match="aggregate posterior is for a VAE"):
        evaluate_run(trained_vqvae, n_samples=8, write=False, sample_source="aggregate")
    with pytest.raises(UserError, match="sample_source"):
        evaluate_run(trained_vae, n_samples=8, write=False, sample_source="gan")

    grid = tmp_path / "aggregate.png"
    done = _cli("sample", trained_vae, "--n", 4, "--source", "aggregate", "--out", grid)
    assert done.returncode == 0, done.stderr
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = _cli("sample", trained_vqvae, "--n", 4, "--source", "aggregate", "--out", grid)
    assert refused.returncode == 2 and "VQ-VAE" in refused.stderr
