"""Tiny trainings through ``train_run``: run-dir contract, VQ-VAE + prior, cancel, resume, lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from core.training import checkpoints, runs, trainer


def test_vae_run_dir_follows_the_contract(trained_vae):
    names = {p.name for p in trained_vae.iterdir()}
    assert {"config.json", "status.json", "resume.json", "metrics.csv", "model.keras", "samples", "train.log"} <= names
    assert "run.lock" not in names and "cancel" not in names
    assert not [n for n in names if n.startswith(".")]  # no temp files left
    status = runs.read_status(trained_vae)
    assert status["state"] == "finished" and status["epoch"] == 2 and status["epochs"] == 2
    assert status["stage"] == "vae" and status["device"] == "CPU" and status["pid"]
    metrics = runs.read_metrics(trained_vae)
    assert list(metrics["epoch"]) == [1, 2]
    for column in ("loss", "recon", "kl", "beta", "val_loss", "val_recon", "val_kl", "seconds"):
        assert column in metrics, column
    # KL warm-up over 2 epochs: beta 0.5 then 1.0 (beta_max 1).
    np.testing.assert_allclose(metrics["beta"], [0.5, 1.0], rtol=1e-5)
    samples = sorted(p.name for p in (trained_vae / "samples").iterdir())
    assert samples == ["epoch_0001.png", "epoch_0002.png", "recon_0001.png", "recon_0002.png"]
    assert (trained_vae / "samples" / "epoch_0002.png").read_bytes()[:4] == b"\x89PNG"
    assert "vae epoch 2/2" in (trained_vae / "train.log").read_text()
    assert json.loads((trained_vae / "resume.json").read_text())["epoch"] == 2


def test_vqvae_then_prior(trained_vqvae):
    status = runs.read_status(trained_vqvae)
    assert status["state"] == "finished" and status["stage"] == "prior", status
    metrics = runs.read_metrics(trained_vqvae)
    assert list(metrics["epoch"]) == [1, 2]
    assert {"loss", "recon", "vq", "perplexity", "usage", "val_loss"} <= set(metrics.columns)
    prior_metrics = runs.read_metrics(trained_vqvae, "prior_metrics.csv")
    assert list(prior_metrics["epoch"]) == [1, 2] and "val_loss" in prior_metrics
    assert (trained_vqvae / "prior.keras").is_file()
    samples = {p.name for p in (trained_vqvae / "samples").iterdir()}
    assert {"epoch_0001.png", "recon_0002.png", "prior_0002.png"} <= samples
    model = checkpoints.load_run_model(trained_vqvae)
    a, b = model.sample(3, seed=1), model.sample(3, seed=1)
    assert a.shape == (3, 32, 32, 1) and np.array_equal(a, b)


def test_cancel_stops_after_the_batch_and_resume_continues(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "c", tiny_dataset, "vae", "demo", {**tiny_vae, "epochs": 3})

    def cancel_in_second_epoch(event):
        if event["kind"] == "batch" and event["epoch"] == 1 and event["batch"] == 1:
            (run_dir / "cancel").touch()

    status = trainer.train_run(run_dir, progress=cancel_in_second_epoch)
    assert status["state"] == "cancelled" and "resume" in status["message"]
    assert runs.read_status(run_dir)["state"] == "cancelled"
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1]  # the partial epoch has no row
    assert runs.read_state(run_dir)["epoch"] == 1
    assert (run_dir / "model.keras").is_file() and not (run_dir / "run.lock").exists()

    with pytest.raises(UserError, match="already has a checkpoint"):
        trainer.train_run(run_dir)
    status = trainer.train_run(run_dir, resume=True)
    assert status["state"] == "finished"
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2, 3]
    assert not (run_dir / "cancel").exists()


def test_resume_trims_rows_beyond_the_checkpoint(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "t", tiny_dataset, "vae", "demo", {**tiny_vae, "epochs": 1})
    trainer.train_run(run_dir)
    # As if killed after logging epoch 2 but before its checkpoint, mid-way through epoch 3's row.
    with open(run_dir / "metrics.csv", "a") as f:
        f.write("2,1,2,3,4,5,6,7,8,9\n3,1,2")
    runs.update_config(run_dir, {"epochs": 2})
    trainer.train_run(run_dir, resume=True)
    metrics = runs.read_metrics(run_dir)
    assert list(metrics["epoch"]) == [1, 2]
    assert metrics["seconds"].iloc[1] != 9  # the stale row was replaced by the real epoch 2


def test_a_second_job_is_refused(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "l", tiny_dataset, "vae", "demo", tiny_vae)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs.acquire_lock(run_dir, pid=other.pid)
        runs.write_status(run_dir, "running", pid=other.pid)
        with pytest.raises(UserError, match=f"run l is already training \\(pid {other.pid}\\)"):
            trainer.train_run(run_dir)
        assert runs.read_status(run_dir)["state"] == "running"  # the real job's status is untouched
    finally:
        other.kill()
        other.wait()


def test_changed_dataset_fails_with_a_message(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "d", tiny_dataset, "vae", "demo", tiny_vae)
    config = runs.read_config(run_dir)
    runs.update_config(run_dir, {"dataset": {**config["dataset"], "hash": "something-else"}})
    with pytest.raises(UserError, match="changed since run d was created"):
        trainer.train_run(run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "changed" in status["message"]


@pytest.mark.parametrize("in_memory", [True, False])
def test_image_dataset_yields_every_image_with_a_channel(monkeypatch, in_memory):
    if not in_memory:
        monkeypatch.setattr(trainer, "IN_MEMORY_BYTES", 0)
    images = np.arange(10 * 4 * 4, dtype=np.float32).reshape(10, 4, 4) / 160
    batches = [b.numpy() for b in trainer.image_dataset(images, 4, seed=0)]
    assert [b.shape for b in batches] == [(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)]
    seen = np.concatenate(batches)[..., 0]
    assert sorted(seen[:, 0, 0].tolist()) == sorted(images[:, 0, 0].tolist())
    dropped = list(trainer.image_dataset(images, 4, drop_remainder=True))
    assert len(dropped) == 2


def test_fixed_slices_prefer_validation():
    train, val = np.zeros((20, 4, 4), np.float32), np.ones((5, 4, 4), np.float32)
    assert trainer.fixed_slices(train, val, 8).shape == (5, 4, 4)
    assert trainer.fixed_slices(train, val[:0], 8).shape == (8, 4, 4)


def test_early_stopped_run_trains_on_with_more_epochs(tmp_path, trained_vae, tiny_vae):
    # A finished 2-epoch tiny VAE: a copy of the session's, rather than training the same one here.
    run_dir = Path(shutil.copytree(trained_vae, tmp_path / "e"))
    assert tiny_vae["epochs"] == 2 and list(runs.read_metrics(run_dir)["epoch"]) == [1, 2]
    runs.write_state(run_dir, stopped_early=True, wait=3)  # as if early stopping had ended it
    trainer.train_run(run_dir, resume=True)
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2]  # stays stopped
    runs.update_config(run_dir, {"epochs": 3})
    assert runs.read_state(run_dir)["stopped_early"] is False and runs.read_state(run_dir)["wait"] == 0
    assert trainer.train_run(run_dir, resume=True)["state"] == "finished"
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2, 3]


def test_a_run_from_before_the_rename_resumes_from_its_state_json(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "old", tiny_dataset, "vae", "demo", {**tiny_vae, "epochs": 1})
    trainer.train_run(run_dir)
    runs.update_config(run_dir, {"epochs": 2})
    (run_dir / "resume.json").rename(run_dir / "state.json")  # the resume point as older runs wrote it
    with pytest.raises(UserError, match="already has a checkpoint \\(epoch 1\\)"):
        trainer.train_run(run_dir)
    assert trainer.train_run(run_dir, resume=True)["state"] == "finished"
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2]  # continued, not restarted
    assert runs.read_state(run_dir)["epoch"] == 2
    assert (run_dir / "resume.json").is_file() and not (run_dir / "state.json").exists()
