"""Run dirs: names, config, atomic status, honest status of dead jobs, metrics, lock, models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.errors import UserError
from core.training import checkpoints, runs


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
        checkpoints.load_run_model(tmp_path)
    with open(tmp_path / "model.keras", "wb") as f:  # a zip, but not a Keras archive
        import zipfile

        with zipfile.ZipFile(f, "w") as z:
            z.writestr("hello.txt", "hi")
    with pytest.raises(UserError, match="cannot load model"):
        checkpoints.load_run_model(tmp_path)
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    foreign.save(tmp_path / "model.keras")
    with pytest.raises(UserError, match="not a latentbrain VAE"):
        checkpoints.load_run_model(tmp_path)
    with pytest.raises(UserError, match="has no model yet"):
        checkpoints.load_run_model(tmp_path / "empty")


def test_save_model_atomic_keeps_the_old_file_on_failure(tmp_path):
    class Broken:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")

    (tmp_path / "model.keras").write_bytes(b"old")
    with pytest.raises(UserError, match="No space left"):
        checkpoints.save_model_atomic(Broken(), tmp_path / "model.keras")
    assert (tmp_path / "model.keras").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_load_run_model_round_trip(trained_vae, trained_vqvae, tiny_dataset):
    from core.data.dataset import load_split_images

    images = np.asarray(load_split_images(tiny_dataset, "val")[:4])
    vae = checkpoints.load_run_model(trained_vae)
    again = checkpoints.load_run_model(trained_vae)
    np.testing.assert_allclose(vae.reconstruct(images), again.reconstruct(images), atol=1e-6)
    vq = checkpoints.load_run_model(trained_vqvae)
    assert vq.prior is not None
    assert vq.sample(2, seed=0).shape == (2, 32, 32, 1)


def test_a_queued_run_without_a_process_is_reported_after_a_while(tmp_path, monkeypatch):
    runs.write_status(tmp_path, "queued", pid=None)
    assert runs.read_status(tmp_path)["state"] == "queued"
    monkeypatch.setattr(runs, "NEVER_STARTED_S", -1)
    status = runs.read_status(tmp_path)
    assert status["state"] == "failed" and "never started" in status["message"]


# ---------------------------------------------------------------------------- RunFolder
def test_run_folder_names_its_files(tmp_path):
    run = runs.RunFolder(tmp_path / "r")
    assert run.name == "r" and not run.exists()
    assert run.config_path == tmp_path / "r" / "config.json"
    assert run.status_path.name == "status.json" and run.resume_path.name == "resume.json"
    assert run.metrics_path.name == "metrics.csv" and run.prior_metrics_path.name == "prior_metrics.csv"
    assert run.model_path.name == "model.keras" and run.prior_path.name == "prior.keras"
    assert run.cancel_path.name == "cancel" and run.lock_path.name == "run.lock"
    assert run.log_path.name == "train.log" and run.samples_dir.name == "samples"
    assert run.image_path("recon", 7) == tmp_path / "r" / "samples" / "recon_0007.png"
    assert runs.RunFolder.named("x", tmp_path).path == tmp_path / "x"
    with pytest.raises(UserError, match="not allowed"):
        runs.RunFolder.named("../x", tmp_path)


def test_run_folder_create_and_read_back(tmp_path, tiny_dataset, tiny_vae):
    from core.training.config import make_config

    run = runs.RunFolder(tmp_path / "made").create(make_config(tiny_dataset, "vae", "demo", tiny_vae))
    assert run.exists() and run.samples_dir.is_dir()
    assert run.read_config()["run_name"] == "made" and run.read_status()["state"] == "queued"
    assert run.update_config({"epochs": 5})["epochs"] == 5 and run.read_config()["epochs"] == 5
    assert runs.list_runs(tmp_path)[0] == run.summary()
    with pytest.raises(UserError, match="already exists"):
        run.create(make_config(tiny_dataset, "vae", "demo", tiny_vae))
    with pytest.raises(UserError, match="not a run dir"):
        runs.RunFolder(tmp_path / "none").read_config()


def test_metrics_are_written_and_read_in_one_place(tmp_path):
    run = runs.RunFolder(tmp_path)
    run.append_metrics({"epoch": 1, "loss": 2.0, "val_loss": 3.0, "kl": 1.0, "seconds": 0.5})
    run.append_metrics({"epoch": 2, "kl": float("nan"), "loss": 1.0, "extra": 9, "seconds": 0.25})
    run.append_metrics({"epoch": 1, "loss": 4.0}, runs.PRIOR_METRICS)
    assert run.metrics_path.read_text().splitlines() == [
        "epoch,loss,kl,val_loss,seconds", "1,2,1,3,0.5", "2,1,,,0.25"]
    frame = run.read_metrics()
    assert list(frame["epoch"]) == [1, 2] and list(frame["loss"]) == [2.0, 1.0]
    assert list(run.read_metrics(runs.PRIOR_METRICS)["loss"]) == [4.0]
    assert run.trim_metrics(1) == 1 and list(run.read_metrics()["epoch"]) == [1]
    run.clear_metrics(runs.PRIOR_METRICS)
    assert run.read_metrics(runs.PRIOR_METRICS).empty


def test_resume_point_is_resume_json_and_an_old_state_json_still_reads(tmp_path):
    run = runs.RunFolder(tmp_path)
    assert run.read_resume() == {}
    (tmp_path / "state.json").write_text(json.dumps({"stage": "vae", "epoch": 3, "best": 1.5, "wait": 1}))
    assert run.read_resume()["epoch"] == 3 and runs.read_state(tmp_path)["best"] == 1.5
    run.write_resume(epoch=4)  # carried over into resume.json; state.json goes
    assert not (tmp_path / "state.json").exists()
    data = json.loads((tmp_path / "resume.json").read_text())
    assert data["epoch"] == 4 and data["best"] == 1.5 and data["stage"] == "vae"
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 99}))  # resume.json wins
    assert run.read_resume()["epoch"] == 4


def test_cancel_flag_and_its_age(tmp_path):
    import os
    import time

    run = runs.RunFolder(tmp_path)
    assert not run.cancel_requested()
    run.request_cancel()
    assert run.cancel_requested()
    os.utime(run.cancel_path, (time.time() - 60, time.time() - 60))
    run.clear_cancel(older_than=time.time() - 120)  # newer than that: kept
    assert run.cancel_requested()
    run.clear_cancel(older_than=time.time())
    assert not run.cancel_requested()
    run.clear_cancel()  # no flag: no error


def test_old_runs_with_state_json_are_listed_and_loadable(trained_vae, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(trained_vae, old)
    (old / "resume.json").rename(old / "state.json")  # as written before the rename
    assert runs.read_state(old)["epoch"] == 2
    assert [r["name"] for r in runs.list_runs(tmp_path)] == ["old-run"]
    assert checkpoints.load_run_model(old).sample(1, seed=0).shape == (1, 32, 32, 1)
