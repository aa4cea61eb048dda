"""Background jobs: the real CLI process, SIGKILL and resume, cancel, bounded concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from core.errors import UserError
from core.training import jobs, runs


def _wait(predicate, timeout=90, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _idle(run_dir):
    status = runs.read_status(run_dir)
    return status if status["state"] not in runs.ACTIVE_STATES else None


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.mark.slow
def test_resume_after_sigkill_keeps_every_epoch_once(tmp_path, tiny_dataset, tiny_vae):
    run_dir = jobs.launch_training(tiny_dataset, "vae", "demo", "killed", {**tiny_vae, "epochs": 500},
                                   runs_dir=tmp_path)
    with pytest.raises(UserError, match="already"):
        jobs.launch_training(tiny_dataset, "vae", "demo", "killed", tiny_vae, runs_dir=tmp_path, resume=True)
    _wait(lambda: runs.read_state(run_dir).get("epoch", 0) >= 2, what="two checkpoints")
    pid = runs.read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not runs.pid_alive(pid), timeout=10, what="the job to die")
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and status["interrupted"], status
    checkpointed = runs.read_state(run_dir)["epoch"]

    jobs.resume(run_dir, {"epochs": checkpointed + 2})
    final = _wait(lambda: _idle(run_dir), what="the resumed job")
    assert final["state"] == "finished", (final, (run_dir / "train.log").read_text()[-2000:])
    epochs = list(runs.read_metrics(run_dir)["epoch"])
    assert epochs == list(range(1, checkpointed + 3)), epochs  # no duplicate, no gap
    assert runs.read_status(run_dir)["epoch"] == checkpointed + 2


@pytest.mark.slow
def test_cancel_a_background_job(tmp_path, tiny_dataset, tiny_vae):
    run_dir = jobs.launch_training(tiny_dataset, "vae", "demo", "stopme", {**tiny_vae, "epochs": 500},
                                   runs_dir=tmp_path)
    jobs.cancel(run_dir)  # asked while the process is still starting: still honoured
    final = _wait(lambda: _idle(run_dir), what="the cancelled job")
    assert final["state"] == "cancelled", final
    assert runs.read_state(run_dir).get("epoch", 0) < 500


def test_bounded_number_of_jobs(tmp_path, tiny_dataset, tiny_vae, sleeper, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_MAX_JOBS", "1")
    busy = runs.prepare_run(tmp_path / "busy", tiny_dataset, "vae", "demo", tiny_vae)
    runs.write_status(busy, "running", pid=sleeper)
    with pytest.raises(UserError, match="already running \\(busy\\); at most 1"):
        jobs.launch_training(tiny_dataset, "vae", "demo", "second", tiny_vae, runs_dir=tmp_path)
    assert not (tmp_path / "second").exists()


def test_existing_run_is_not_overwritten(tmp_path, tiny_dataset, tiny_vae):
    runs.prepare_run(tmp_path / "taken", tiny_dataset, "vae", "demo", tiny_vae)
    with pytest.raises(UserError, match="already exists"):
        jobs.launch_training(tiny_dataset, "vae", "demo", "taken", tiny_vae, runs_dir=tmp_path)


def test_cancel_of_a_dead_queued_job_marks_it_cancelled(tmp_path, tiny_dataset, tiny_vae):
    run_dir = runs.prepare_run(tmp_path / "q", tiny_dataset, "vae", "demo", tiny_vae)
    assert jobs.cancel(run_dir)["state"] == "cancelled"  # queued, no process
    assert jobs.cancel(run_dir)["state"] == "cancelled"  # idempotent


def test_resume_refuses_a_running_job(tmp_path, tiny_dataset, tiny_vae, sleeper):
    run_dir = runs.prepare_run(tmp_path / "r", tiny_dataset, "vae", "demo", tiny_vae)
    runs.write_status(run_dir, "running", pid=sleeper)
    with pytest.raises(UserError, match="already running"):
        jobs.resume(run_dir)


@pytest.mark.slow
def test_a_job_is_launched_by_its_run_folder_alone(tmp_path, tiny_dataset, tiny_vae, monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def record(command, **kwargs):
        started.append(list(command))
        return real_popen(command, **kwargs)

    monkeypatch.setattr(jobs.subprocess, "Popen", record)
    run_dir = runs.prepare_run(tmp_path / "folder", tiny_dataset, "vae", "demo", {**tiny_vae, "epochs": 1})
    assert jobs.launch_run(run_dir) == run_dir
    # config.json is the job's only input: no --dataset/--model/--preset rebuilt from it.
    assert started[0][1:] == ["-m", "core", "train", "--run-dir", str(run_dir), "--quiet"]
    final = _wait(lambda: _idle(run_dir), what="the job")
    assert final["state"] == "finished", (final, (run_dir / "train.log").read_text()[-2000:])
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1]
    jobs.resume(run_dir, {"epochs": 2})  # a resume launches the same way, after checking the change
    assert started[1] == started[0]
    final = _wait(lambda: _idle(run_dir), what="the resumed job")
    assert final["state"] == "finished" and list(runs.read_metrics(run_dir)["epoch"]) == [1, 2]


def test_launch_run_refuses_what_is_not_a_stopped_run_folder(tmp_path, tiny_dataset, tiny_vae, sleeper):
    with pytest.raises(UserError, match="not a run dir"):
        jobs.launch_run(tmp_path)
    run_dir = runs.prepare_run(tmp_path / "busy", tiny_dataset, "vae", "demo", tiny_vae)
    runs.write_status(run_dir, "running", pid=sleeper)
    with pytest.raises(UserError, match=f"run busy is already running \\(pid {sleeper}\\)"):
        jobs.launch_run(run_dir)
    with pytest.raises(UserError, match="epochs must be >= 1, got 0"):
        runs.write_status(run_dir, "cancelled")
        jobs.resume(run_dir, {"epochs": 0})
    assert runs.read_config(run_dir)["epochs"] == tiny_vae["epochs"]  # a refused change is not stored
