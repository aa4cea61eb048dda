"""Background training jobs: launch, cancel, resume, count.

A job trains one run folder: ``python -m core train --run-dir RUN_DIR``, started with
``start_new_session=True`` and its output going to the run's ``train.log``, so it outlives the
Streamlit session that started it (page reloads, closed tabs).  The run folder's
``config.json`` is the job's only input (checked when the run was made), so nothing is turned
back into command-line flags.  Nothing here keeps a handle on the process: everything a page
needs is read back from the run folder (:meth:`core.training.runs.RunFolder.read_status`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from core import settings
from core.errors import UserError
from core.training import runs
from core.training.config import make_config, revise_config
from core.training.runs import RunFolder

__all__ = ["MAX_JOBS", "max_jobs", "active_jobs", "launch_training", "launch_run", "cancel", "resume"]

#: Lock file (``flock``) that makes checking and starting a run's job one step.
LAUNCH_GUARD = ".launch.lock"

#: Default bound on training jobs running at once (env ``LATENTBRAIN_MAX_JOBS``).
MAX_JOBS = 2


def max_jobs() -> int:
    """How many training jobs may run at once (``LATENTBRAIN_MAX_JOBS``, default 2)."""
    try:
        return max(1, int(os.environ.get("LATENTBRAIN_MAX_JOBS", MAX_JOBS)))
    except ValueError:
        return MAX_JOBS


def active_jobs(runs_dir: str | Path | None = None) -> list[dict]:
    """Runs whose job is queued or running with a live process."""
    return [r for r in runs.list_runs(runs_dir) if r["state"] in runs.ACTIVE_STATES]


def _check_capacity(runs_dir, run: RunFolder) -> None:
    others = [r for r in active_jobs(runs_dir) if Path(r["path"]) != run.path]
    if len(others) >= max_jobs():
        names = ", ".join(r["name"] for r in others)
        raise UserError(
            f"{len(others)} training jobs are already running ({names}); at most {max_jobs()} "
            "at once — stop one or wait for it to finish"
        )


@contextlib.contextmanager
def _launch_guard(run: RunFolder):
    """Serialise launches of one run (threads of one server, several servers, the CLI).

    Without it two sessions pressing Resume together both pass the status check and both
    start a job; the loser's job exits on the run lock, but its "queued" status has already
    overwritten the winner's. ``flock`` is released by the kernel if the holder dies.
    """
    with open(run.path / LAUNCH_GUARD, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _spawn(run: RunFolder) -> int:
    """Start the job of an existing run folder, unless one is already queued or training;
    returns its pid.  The check and the start are one step (:func:`_launch_guard`)."""
    with _launch_guard(run):
        owner = run.lock_owner()
        if owner is not None:
            raise UserError(f"run {run.name} is already training (pid {owner})")
        status = run.read_status()
        if status["state"] in runs.ACTIVE_STATES and status.get("pid") is not None:
            raise UserError(f"run {run.name} is already {status['state']} (pid {status['pid']})")
        return _start_process(run)


def _start_process(run: RunFolder) -> int:
    command = [sys.executable, "-m", "core", "train", "--run-dir", str(run.path), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    env["KERAS_BACKEND"] = "tensorflow"  # the training step is TensorFlow (tf.data input, device setup)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.REPO_ROOT), env.get("PYTHONPATH")) if p)
    run.write_status("queued", pid=None, message="starting the training process")
    run.clear_cancel()
    env["LATENTBRAIN_JOB_STARTED"] = repr(time.time())
    with open(run.log_path, "ab") as log:
        process = subprocess.Popen(
            command, cwd=settings.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    # The job writes its own status when it starts; until then show its pid (if it has not
    # already got further).
    if run.read_status().get("pid") is None:
        run.write_status("queued", pid=process.pid, message="waiting for the training process")
    return process.pid


def launch_run(run_dir: str | Path) -> Path:
    """Start the background job of a run folder (made by :func:`core.training.runs.prepare_run`,
    or stopped earlier: it continues from its last checkpoint).

    Raises:
        UserError: not a run folder, run already queued or training, too many jobs running.
    """
    run = RunFolder(run_dir)
    run.read_config()  # UserError if not a run folder
    status = run.read_status()
    if status["state"] in runs.ACTIVE_STATES and status.get("pid") is not None:
        raise UserError(f"run {run.name} is already {status['state']} (pid {status.get('pid')})")
    _check_capacity(run.path.parent, run)
    _spawn(run)
    return run.path


def launch_training(dataset_dir: str | Path, model_type: str, preset: str, run_name: str,
                    overrides: dict | None = None, runs_dir: str | Path | None = None,
                    resume: bool = False) -> Path:
    """Create a run folder (or reuse it with ``resume``) and start its training in the background.

    Args:
        dataset_dir: dataset folder (``manifest.json`` + arrays).
        model_type, preset: ``vae``/``vqvae`` and ``demo``/``thesis``/``quality``.
        run_name: name of the run folder (validated).
        overrides: hyper-parameters over the preset's (e.g. ``{"epochs": 5, "beta": 0.5}``);
            with ``resume`` they update the stored config (e.g. more epochs).
        runs_dir: folder of run folders (default ``settings.runs_dir()``).
        resume: continue an existing run from its last checkpoint.

    Returns:
        The run folder.

    Raises:
        UserError: bad name or hyper-parameter, existing run (without ``resume``), run
        already training, too many jobs running.
    """
    run = RunFolder.named(run_name, runs_dir)
    if resume:
        return _resume(run, overrides)
    config = make_config(dataset_dir, model_type, preset, overrides)
    _check_capacity(runs_dir, run)
    run.create(config)
    _spawn(run)
    return run.path


def resume(run_dir: str | Path, overrides: dict | None = None) -> Path:
    """Restart a stopped, failed or interrupted run from its last checkpoint, in the background.

    ``overrides`` (e.g. ``{"epochs": 80}``) are checked like a new run's and stored first.
    """
    return _resume(RunFolder(run_dir), overrides)


def _resume(run: RunFolder, overrides: dict | None) -> Path:
    status = run.read_status()
    if status["state"] in runs.ACTIVE_STATES:
        raise UserError(f"run {run.name} is already {status['state']} (pid {status.get('pid')})")
    if overrides:
        run.update_config(revise_config(run.read_config(), overrides))
    return launch_run(run.path)


def cancel(run_dir: str | Path) -> dict:
    """Ask the run's job to stop after its current batch (writes the ``cancel`` flag).

    The job saves the model and sets the state to ``cancelled``.  A job that never started
    (or is gone) is marked ``cancelled`` at once.  Returns the status.
    """
    run = RunFolder(run_dir)
    run.read_config()  # UserError if not a run folder
    status = run.read_status()
    if status["state"] not in runs.ACTIVE_STATES:
        return status
    run.request_cancel()
    if run.lock_owner() is None and not runs.pid_alive(status.get("pid")):
        return run.write_status("cancelled", message="cancelled before training started")
    return run.write_status(message="stopping after the current batch…")
