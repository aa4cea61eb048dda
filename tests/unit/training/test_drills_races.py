"""Fault drills: two launches of one run at the same moment.

Two browser sessions are two threads of one Streamlit server; the CLI is another process. Whatever
the mix, exactly one launch wins, every other one gets a clear message, and the run is trained
once (each epoch logged exactly once).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import UserError
from core.training import jobs, runs

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _wait_idle(run_dir, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = runs.read_status(run_dir)
        if status["state"] not in runs.ACTIVE_STATES:
            return status
        time.sleep(0.2)
    raise AssertionError(f"run still {runs.read_status(run_dir)}")


def _race(calls):
    """Run ``calls`` at the same instant; returns (results, errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), [None] * len(calls)

    def go(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except UserError as exc:
            errors[i] = str(exc)

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_same_run_name_from_two_sessions_and_the_cli(tmp_path, tiny_dataset, tiny_vae):
    overrides = {**tiny_vae, "epochs": 3}
    cli = [sys.executable, "-m", "core", "train", "--dataset", str(tiny_dataset), "--model", "vae",
           "--preset", "demo", "--run", "twice", "--runs-dir", str(tmp_path), "--quiet"]
    for key, value in overrides.items():
        cli += ["--set", f"{key}={value}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def from_cli():
        done = subprocess.run(cli, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise UserError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        return "cli"

    def from_page():
        return jobs.launch_training(tiny_dataset, "vae", "demo", "twice", overrides, runs_dir=tmp_path)

    results, errors = _race([from_page, from_page, from_cli])
    winners = [r for r in results if r is not None]
    assert len(winners) == 1, (results, errors)
    for message in filter(None, errors):
        assert "already" in message and "twice" in message, message  # says what happened, by name
        assert "Traceback" not in message
    run_dir = tmp_path / "twice"
    final = _wait_idle(run_dir)
    assert final["state"] == "finished", final
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2, 3]


def test_two_resumes_at_once_train_once(tmp_path, trained_vae, tiny_vae):
    # A finished 2-epoch run of the tiny VAE (a copy of the session's, instead of training one here first).
    run_dir = Path(shutil.copytree(trained_vae, tmp_path / "resumed"))
    assert tiny_vae["epochs"] == 2 and _wait_idle(run_dir)["state"] == "finished"
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2]
    results, errors = _race([lambda: jobs.resume(run_dir, {"epochs": 4})] * 3)
    assert sum(r is not None for r in results) >= 1
    final = _wait_idle(run_dir)
    # However many resumes got through the door, the lock lets one job train: the run ends
    # finished, not failed by a loser, and no epoch is trained twice.
    assert final["state"] == "finished", (final, errors, (run_dir / "train.log").read_text()[-1500:])
    assert list(runs.read_metrics(run_dir)["epoch"]) == [1, 2, 3, 4]
    for message in filter(None, errors):
        assert "already" in message, message
