"""Run dirs: names, config, atomic status, honest status of dead jobs, metrics, lock, models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.errors import UserError
from core.training import runs


@pytest.fixture
def sleeper():
    """A live process that is not us (owner of a lock or a 'running' job)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("name", ["run1", "vae-demo_2.0", "A" * 80])
def test_good_run_names(name):
    assert runs.validate_run_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "with space", "tab\t", "ünï", "A" * 81, None, 3]
)
def test_bad_run_names_are_refused(name):
    with pytest.raises(UserError, match="run name"):
        runs.validate_run_name(name)


def test_run_path_refuses_escape(tmp_path):
    with pytest.raises(UserError, match="not allowed"):
        runs.run_path("../outside", tmp_path)


def test_create_run_never_overwrites(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "r", tiny_dataset, "vae", "demo", tiny_vae)
    config = runs.read_config(run_dir)
    assert config["dataset"]["hash"] == "tiny32-0" and config["image_size"] == 32
    assert config["epochs"] == 2 and config["preset"] == "demo" and config["run_name"] == "r"
    assert runs.read_status(run_dir)["state"] == "queued"
    with pytest.raises(UserError, match="already exists"):
        runs.prepare_run(tmp_path / "r", tiny_dataset, "vae", "demo", {**tiny_vae, "epochs": 9})
    assert runs.read_config(run_dir)["epochs"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temp folders left behind


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"beta": -1.0}, "beta"),
        ({"batch_size": 1000}, "larger than the training set"),
        ({"filters": [8, 16, 32, 64, 128, 256]}, "image_size"),
        ({"image_size": 64}, "does not match"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"mixed_precision": "yes"}, "mixed_precision"),
        ({"kl_schedule": "sometimes"}, "kl_schedule"),
    ],
)
def test_invalid_hyper_parameters(tmp_path, tiny_dataset, tiny_vae, overrides, match):
    with pytest.raises(UserError, match=match):
        runs.prepare_run(tmp_path / "bad", tiny_dataset, "vae", "demo", {**tiny_vae, **overrides})
    assert not (tmp_path / "bad").exists()


def test_missing_or_corrupt_dataset(tmp_path, tiny_dataset):
    with pytest.raises(UserError, match="manifest.json is missing"):
        runs.make_config(tmp_path, "vae", "demo")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        runs.make_config(tmp_path, "vae", "demo")
    with pytest.raises(UserError, match="model_type"):
        runs.make_config(tiny_dataset, "gan", "demo")


def test_status_is_written_atomically_and_merged(tmp_path):
    runs.write_status(tmp_path, "running", epoch=3, epochs=10, pid=123)
    runs.write_status(tmp_path, epoch=4)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["state"] == "running" and data["epoch"] == 4 and data["epochs"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    with pytest.raises(ValueError, match="state"):
        runs.write_status(tmp_path, "exploded")


def test_dead_job_is_reported_as_interrupted(tmp_path, sleeper):
    runs.write_status(tmp_path, "running", epoch=2, pid=sleeper)
    assert runs.read_status(tmp_path)["state"] == "running"
    runs.write_status(tmp_path, "running", epoch=2, pid=dead_pid())
    status = runs.read_status(tmp_path)
    assert status["state"] == "failed" and status["interrupted"]
    assert "resume" in status["message"] and "epoch 2" in status["message"]


def test_read_metrics_drops_a_partial_last_line(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss,val_loss,seconds\n1,2.0,2.5,1.0\n2,1.5,2.0,1.0\n3,1.")
    frame = runs.read_metrics(tmp_path)
    assert list(frame["epoch"]) == [1, 2] and list(frame["loss"]) == [2.0, 1.5]
    assert runs.read_metrics(tmp_path / "nowhere").empty
    (tmp_path / "metrics.csv").write_text("epo")
    assert runs.read_metrics(tmp_path).empty


def test_trim_metrics_keeps_checkpointed_epochs(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,3\n2,2\n3,1\n4,0.")
    assert runs.trim_metrics(tmp_path, 2) == 2
    assert (tmp_path / "metrics.csv").read_text() == "epoch,loss\n1,3\n2,2\n"
    assert runs.trim_metrics(tmp_path, 2) == 0


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path, sleeper):
    (tmp_path / "run.lock").write_text(str(sleeper))
    with pytest.raises(UserError, match=f"run {tmp_path.name} is already training \\(pid {sleeper}\\)"):
        runs.acquire_lock(tmp_path)
    (tmp_path / "run.lock").write_text(str(dead_pid()))
    runs.acquire_lock(tmp_path)
    assert runs.lock_owner(tmp_path) == __import__("os").getpid()
    runs.release_lock(tmp_path)
    assert not (tmp_path / "run.lock").exists()


def test_list_runs(tmp_path, tiny_dataset, tiny_vae):
    runs.prepare_run(tmp_path / "a", tiny_dataset, "vae", "demo", tiny_vae)
    (tmp_path / "not-a-run").mkdir()
    listed = runs.list_runs(tmp_path)
    assert [r["name"] for r in listed] == ["a"]
    assert listed[0]["state"] == "queued" and listed[0]["model_type"] == "vae"
    assert runs.list_runs(tmp_path / "missing") == []


def test_corrupt_or_foreign_model_files(tmp_path):
    import keras

    (tmp_path / "model.keras").write_bytes(b"garbage, not a zip")
    with pytest.raises(UserError, match="not a .keras model file"):
        runs.load_run_model(tmp_path)
    with open(tmp_path / "model.keras", "wb") as f:  # a zip, but not a Keras archive
        import zipfile

        with zipfile.ZipFile(f, "w") as z:
            z.writestr("hello.txt", "hi")
    with pytest.raises(UserError, match="cannot load model"):
        runs.load_run_model(tmp_path)
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    foreign.save(tmp_path / "model.keras")
    with pytest.raises(UserError, match="not a latentbrain VAE"):
        runs.load_run_model(tmp_path)
    with pytest.raises(UserError, match="has no model yet"):
        runs.load_run_model(tmp_path / "empty")


def test_save_model_atomic_keeps_the_old_file_on_failure(tmp_path):
    class Broken:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")

    (tmp_path / "model.keras").write_bytes(b"old")
    with pytest.raises(UserError, match="No space left"):
        runs.save_model_atomic(Broken(), tmp_path / "model.keras")
    assert (tmp_path / "model.keras").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_load_run_model_round_trip(trained_vae, trained_vqvae, tiny_dataset):
    from core.data.dataset import load_split_images

    images = np.asarray(load_split_images(tiny_dataset, "val")[:4])
    vae = runs.load_run_model(trained_vae)
    again = runs.load_run_model(trained_vae)
    np.testing.assert_allclose(vae.reconstruct(images), again.reconstruct(images), atol=1e-6)
    vq = runs.load_run_model(trained_vqvae)
    assert vq.prior is not None
    assert vq.sample(2, seed=0).shape == (2, 32, 32, 1)


def test_a_queued_run_without_a_process_is_reported_after_a_while(tmp_path, monkeypatch):
    runs.write_status(tmp_path, "queued", pid=None)
    assert runs.read_status(tmp_path)["state"] == "queued"
    monkeypatch.setattr(runs, "NEVER_STARTED_S", -1)
    status = runs.read_status(tmp_path)
    assert status["state"] == "failed" and "never started" in status["message"]
