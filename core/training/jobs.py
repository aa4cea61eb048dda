"""Background training jobs: launch, cancel, resume, count.

A job is ``python -m core train ... --resume`` started with ``start_new_session=True`` and its
output going to the run's ``train.log``, so it outlives the Streamlit session that started it
(page reloads, closed tabs).  Nothing here keeps a handle on the process: everything a page
needs is read back from the run dir (:func:`core.training.runs.read_status`).
"""

from __future__ import annotations

import contextlib
import time
import os
import subprocess
import sys
from pathlib import Path

from core import settings
from core.errors import UserError
from core.training import runs

__all__ = ["MAX_JOBS", "max_jobs", "active_jobs", "launch_training", "cancel", "resume"]

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


def _check_capacity(runs_dir, run_dir: Path) -> None:
    others = [r for r in active_jobs(runs_dir) if Path(r["path"]) != run_dir]
    if len(others) >= max_jobs():
        names = ", ".join(r["name"] for r in others)
        raise UserError(
            f"{len(others)} training jobs are already running ({names}); at most {max_jobs()} "
            "at once — stop one or wait for it to finish"
        )


def _spawn(run_dir: Path, config: dict) -> int:
    """Start the job for an existing run dir; returns its pid."""
    owner = runs.lock_owner(run_dir)
    if owner is not None:
        raise UserError(f"run {run_dir.name} is already training (pid {owner})")
    command = [
        sys.executable, "-m", "core", "train",
        "--dataset", config["dataset"]["path"],
        "--model", config["model_type"],
        "--preset", config["preset"],
        "--run", run_dir.name,
        "--runs-dir", str(run_dir.parent),
        "--resume", "--quiet",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.REPO_ROOT), env.get("PYTHONPATH")) if p)
    runs.write_status(run_dir, "queued", pid=None, message="starting the training process")
    with contextlib.suppress(FileNotFoundError):
        (run_dir / runs.CANCEL).unlink()
    env["LATENTBRAIN_JOB_STARTED"] = repr(time.time())
    with open(run_dir / runs.LOG, "ab") as log:
        process = subprocess.Popen(
            command, cwd=settings.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    # The job writes its own status when it starts; until then show its pid (if it has not
    # already got further).
    if runs.read_status(run_dir).get("pid") is None:
        runs.write_status(run_dir, "queued", pid=process.pid, message="waiting for the training process")
    return process.pid


def launch_training(dataset_dir: str | Path, model_type: str, preset: str, run_name: str,
                    overrides: dict | None = None, runs_dir: str | Path | None = None,
                    resume: bool = False) -> Path:
    """Create a run dir (or reuse it with ``resume``) and start its training in the background.

    Args:
        dataset_dir: dataset folder (``manifest.json`` + arrays).
        model_type, preset: ``vae``/``vqvae`` and ``demo``/``thesis``/``quality``.
        run_name: name of the run dir (validated).
        overrides: hyper-parameters over the preset's (e.g. ``{"epochs": 5, "beta": 0.5}``);
            with ``resume`` they update the stored config (e.g. more epochs).
        runs_dir: folder of run dirs (default ``settings.runs_dir()``).
        resume: continue an existing run from its last checkpoint.

    Returns:
        The run dir.

    Raises:
        UserError: bad name or hyper-parameter, existing run (without ``resume``), run
        already training, too many jobs running.
    """
    run_dir = runs.run_path(run_name, runs_dir)
    if resume:
        return _resume(run_dir, overrides or {})
    config = runs.make_config(dataset_dir, model_type, preset, overrides)
    _check_capacity(runs_dir, run_dir)
    runs.create_run(run_dir, config)
    _spawn(run_dir, config)
    return run_dir


def _resume(run_dir: Path, overrides: dict) -> Path:
    config = runs.read_config(run_dir)
    status = runs.read_status(run_dir)
    if status["state"] in runs.ACTIVE_STATES:
        raise UserError(f"run {run_dir.name} is already {status['state']} (pid {status.get('pid')})")
    if overrides:
        hyper = {k: v for k, v in config.items()
                 if k not in ("dataset", "run_name", "created", "model_type", "preset")}
        changed = runs.make_config(config["dataset"]["path"], config["model_type"], config["preset"],
                                   {**hyper, **overrides})
        config = runs.update_config(run_dir, {k: changed[k] for k in overrides})
    _check_capacity(run_dir.parent, run_dir)
    _spawn(run_dir, config)
    return run_dir


def resume(run_dir: str | Path, overrides: dict | None = None) -> Path:
    """Restart a stopped, failed or interrupted run from its last checkpoint, in the background."""
    return _resume(Path(run_dir), overrides or {})


def cancel(run_dir: str | Path) -> dict:
    """Ask the run's job to stop after its current batch (writes the ``cancel`` flag).

    The job saves the model and sets the state to ``cancelled``.  A job that never started
    (or is gone) is marked ``cancelled`` at once.  Returns the status.
    """
    run_dir = Path(run_dir)
    runs.read_config(run_dir)  # UserError if not a run dir
    status = runs.read_status(run_dir)
    if status["state"] not in runs.ACTIVE_STATES:
        return status
    (run_dir / runs.CANCEL).touch()
    if runs.lock_owner(run_dir) is None and not runs.pid_alive(status.get("pid")):
        return runs.write_status(run_dir, "cancelled", message="cancelled before training started")
    return runs.write_status(run_dir, message="stopping after the current batch…")
