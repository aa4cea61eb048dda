"""The run folder: its name, its files, and reading and writing them (:class:`RunFolder`).

A run folder ``<runs>/<name>/`` holds (see docs/architecture.md)::

    config.json         what to train: preset, hyper-parameters, dataset path + hash (written once)
    status.json         lifecycle: state, stage, epoch, epochs, pid, message, updated, device, ETA
    resume.json         resume point: last checkpointed epoch per stage, early-stopping state
                        (called state.json before; an old run's state.json is still read)
    metrics.csv         one row per epoch: epoch, train terms, val_ terms, seconds
    prior_metrics.csv   the same for a VQ-VAE's prior (second stage)
    model.keras         latest good model; prior.keras for a VQ-VAE's prior (core.training.checkpoints)
    samples/            epoch_NNNN.png, recon_NNNN.png, prior_NNNN.png
    train.log           log lines of the job
    cancel              flag file: asks the job to stop after the current batch
    run.lock            pid of the job training this run (one job per run folder)

Every JSON file a reader may see mid-write is replaced atomically (:mod:`core.atomic`), so a
kill never leaves a half-written config, status or resume point behind.  The module-level
functions (``read_config``, ``read_status``, ``read_metrics``, ``list_runs``...) are thin
shortcuts over :class:`RunFolder` for callers that hold a path.

:class:`RunData` is what every *reader* of a trained run goes through (training, evaluation,
the latent explorer, the pages, the CLI, the benchmarks): the run's config, its dataset
(folder, manifest, split arrays, per-slice metadata and conditions), a stamp of its model
files for caches, the model itself and the aggregate posterior kept beside it.  Nothing
else opens a run's dataset or model by hand.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import settings
from core.atomic import read_json, write_json_atomic, write_text_atomic
from core.errors import UserError
from core.processes import pid_alive
from core.models.aggregate import AGGREGATE
from core.training.checkpoints import MODEL, PRIOR, load_run_model, model_stamp

__all__ = [
    "RunData",
    "SplitData",
    "DatasetMissing",
    "META_COLUMNS",
    "attach_run_aggregate",
    "STATES",
    "ACTIVE_STATES",
    "RunFolder",
    "validate_run_name",
    "run_path",
    "default_run_name",
    "create_run",
    "prepare_run",
    "read_config",
    "update_config",
    "write_status",
    "read_status",
    "read_state",
    "write_state",
    "read_metrics",
    "trim_metrics",
    "list_runs",
    "pid_alive",
    "acquire_lock",
    "release_lock",
    "lock_owner",
    "latest_image",
]

STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_NAME = 80
#: A run still ``queued`` without a process after this many seconds never started.
NEVER_STARTED_S = 120

CONFIG = "config.json"
STATUS = "status.json"
RESUME = "resume.json"
#: The resume point's name before it was renamed; read when ``resume.json`` is absent.
LEGACY_RESUME = "state.json"
METRICS = "metrics.csv"
PRIOR_METRICS = "prior_metrics.csv"
LOCK = "run.lock"
CANCEL = "cancel"
LOG = "train.log"
SAMPLES = "samples"


# ---------------------------------------------------------------------------- names
def validate_run_name(name) -> str:
    """Return ``name`` if it is a safe run-folder name, else raise UserError.

    Letters, digits, ``.``, ``_`` and ``-`` only (no path separators), not ``.``/``..``,
    at most 80 characters.

    >>> validate_run_name("vae-demo_1.2")
    'vae-demo_1.2'
    >>> validate_run_name("../x")
    Traceback (most recent call last):
    ...
    core.errors.UserError: run name '../x' is not allowed: use letters, digits, '.', '_' and '-' (no spaces or path separators)
    """
    if not isinstance(name, str) or not name:
        raise UserError(f"run name must be a non-empty string, got {name!r}")
    if len(name) > _MAX_NAME:
        raise UserError(f"run name must be at most {_MAX_NAME} characters, got {len(name)}: {name[:20]!r}…")
    if name in (".", "..") or not _NAME_RE.match(name):
        raise UserError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(no spaces or path separators)"
        )
    return name


def run_path(name: str, runs_dir: str | Path | None = None) -> Path:
    """Folder of run ``name`` (validated) under ``runs_dir`` (default ``settings.runs_dir()``).

    >>> run_path("r1", "/tmp/runs").as_posix()
    '/tmp/runs/r1'
    """
    root = Path(runs_dir) if runs_dir is not None else settings.runs_dir()
    return root / validate_run_name(name)


def default_run_name(model_type: str, preset: str) -> str:
    """A fresh name like ``vae-demo-20240131-154502``."""
    return f"{model_type}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _status_fields(**fields) -> dict:
    base = {
        "state": "queued",
        "stage": None,
        "epoch": 0,
        "epochs": None,
        "pid": None,
        "message": "",
        "device": None,
        "updated": _now(),
        "updated_ts": time.time(),
    }
    base.update(fields)
    return base


def _format_cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


# ---------------------------------------------------------------------------- the folder
class RunFolder:
    """One run folder: its files as properties, and the only code that reads or writes them.

    ``RunFolder(path)`` only names the folder; nothing is read or checked until asked.

    >>> import tempfile
    >>> run = RunFolder(Path(tempfile.mkdtemp()) / "r1")
    >>> run.name, run.config_path.name, run.resume_path.name
    ('r1', 'config.json', 'resume.json')
    >>> run.exists()
    False
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @classmethod
    def named(cls, name: str, runs_dir: str | Path | None = None) -> "RunFolder":
        """The run folder of run ``name`` (validated) under ``runs_dir``."""
        return cls(run_path(name, runs_dir))

    # ------------------------------------------------------------------ files
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    @property
    def resume_path(self) -> Path:
        return self.path / RESUME

    @property
    def legacy_resume_path(self) -> Path:
        return self.path / LEGACY_RESUME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def prior_metrics_path(self) -> Path:
        return self.path / PRIOR_METRICS

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def prior_path(self) -> Path:
        return self.path / PRIOR

    @property
    def aggregate_path(self) -> Path:
        return self.path / AGGREGATE

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    @property
    def cancel_path(self) -> Path:
        return self.path / CANCEL

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def exists(self) -> bool:
        """Whether this is a run folder (it has a ``config.json``)."""
        return self.config_path.is_file()

    # ------------------------------------------------------------------ creation, config
    def create(self, config: dict) -> "RunFolder":
        """Make the folder with its ``config.json`` and a ``queued`` status; returns ``self``.

        ``config`` must already be checked (:func:`core.training.config.make_config`).
        Raises UserError if the folder exists (a run is never overwritten; resume it or choose
        another name).  The folder appears complete or not at all.
        """
        validate_run_name(self.name)
        if self.path.exists():
            raise UserError(
                f"run {self.name!r} already exists in {self.path.parent}: resume it or choose another name"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = RunFolder(tempfile.mkdtemp(prefix=f".{self.name}.", dir=self.path.parent))
        try:
            tmp.samples_dir.mkdir()
            write_json_atomic(tmp.config_path, {**config, "run_name": self.name, "created": _now()})
            write_json_atomic(tmp.status_path, _status_fields(state="queued", epochs=config.get("epochs")))
            os.rename(tmp.path, self.path)  # fails if someone created it meanwhile
        except OSError as exc:
            shutil.rmtree(tmp.path, ignore_errors=True)
            if self.path.exists():
                raise UserError(f"run {self.name!r} already exists in {self.path.parent}") from exc
            raise UserError(f"cannot create run dir {self.path}: {exc}") from exc
        return self

    def read_config(self) -> dict:
        """The run's ``config.json``; UserError if missing or unreadable."""
        if not self.config_path.is_file():
            raise UserError(f"{self.path} is not a run dir: {CONFIG} is missing")
        data = read_json(self.config_path)
        if not isinstance(data, dict) or "model_type" not in data:
            raise UserError(f"run config {self.config_path} is unreadable or incomplete")
        return data

    def update_config(self, changes: dict) -> dict:
        """Merge ``changes`` (already checked) into ``config.json`` atomically; returns the config.

        More ``epochs``/``prior_epochs`` also lift an earlier early stop of that stage, so a
        resume trains on.
        """
        config = {**self.read_config(), **changes}
        write_json_atomic(self.config_path, config)
        if self.read_resume():
            lifted = {}
            if "epochs" in changes:
                lifted.update(stopped_early=False, wait=0)
            if "prior_epochs" in changes:
                lifted.update(prior_stopped_early=False, prior_wait=0)
            if lifted:
                self.write_resume(**lifted)
        return config

    # ------------------------------------------------------------------ status
    def write_status(self, state: str | None = None, **fields) -> dict:
        """Update ``status.json`` atomically: previous fields, then ``fields``; returns it.

        ``state`` must be one of queued|running|finished|failed|cancelled.
        """
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        status = read_json(self.status_path) or _status_fields()
        if state is not None:
            fields["state"] = state
        status.update(fields, updated=_now(), updated_ts=time.time())
        write_json_atomic(self.status_path, status)
        return status

    def read_status(self) -> dict:
        """The run's status, honest about dead jobs.

        A status that says ``queued``/``running`` while its process is gone is reported as
        ``failed`` with ``interrupted=True`` and a message saying to resume.
        """
        status = read_json(self.status_path)
        if not isinstance(status, dict):
            return _status_fields(state="failed", message="status.json is missing or unreadable")
        status.setdefault("interrupted", False)
        if status.get("state") == "queued" and status.get("pid") is None:
            if time.time() - float(status.get("updated_ts") or 0) > NEVER_STARTED_S:
                status["state"] = "failed"
                status["interrupted"] = True
                status["message"] = "the training process never started — resume to start it"
        elif status.get("state") in ACTIVE_STATES and status.get("pid") is not None:
            if not pid_alive(status["pid"]):
                status["state"] = "failed"
                status["interrupted"] = True
                status["message"] = (
                    f"interrupted: process {status['pid']} is gone after epoch {status.get('epoch', 0)}"
                    " — resume to continue from the last checkpoint"
                )
        return status

    # ------------------------------------------------------------------ resume point
    def read_resume(self) -> dict:
        """Resume point: ``{"stage", "epoch", "prior_epoch", "best", "wait", ...}``; empty if none.

        Reads ``resume.json``, or an older run's ``state.json`` when there is no ``resume.json``.
        """
        data = read_json(self.resume_path)
        if data is None:
            data = read_json(self.legacy_resume_path)
        return data if isinstance(data, dict) else {}

    def write_resume(self, **fields) -> dict:
        """Update the resume point (``resume.json``, atomically) with ``fields``; returns it.

        An older run's ``state.json`` is carried over into ``resume.json`` and then removed, so
        the two can never disagree.
        """
        resume = {**self.read_resume(), **fields, "updated": _now()}
        write_json_atomic(self.resume_path, resume)
        with contextlib.suppress(FileNotFoundError):
            self.legacy_resume_path.unlink()
        return resume

    # ------------------------------------------------------------------ metrics
    def _metrics_file(self, name: str) -> Path:
        return self.path / name

    def append_metrics(self, row: dict, name: str = METRICS) -> None:
        """Append one epoch's ``row`` (``epoch``, terms, ``val_`` terms, ``seconds``) to the CSV.

        The first row fixes the header (``epoch``, train terms, ``val_`` terms, ``seconds``);
        later rows follow it (missing cells empty, new keys dropped).  Floats keep 6
        significant digits, NaN is an empty cell.  The line is flushed at once.
        """
        path = self._metrics_file(name)
        header = self._metrics_header(path)
        new = header is None
        if new:
            train = [k for k in row if k not in ("epoch", "seconds") and not k.startswith("val_")]
            header = ["epoch", *train, *[k for k in row if k.startswith("val_")], "seconds"]
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _format_cell(v) for k, v in row.items()})
            f.flush()

    @staticmethod
    def _metrics_header(path: Path) -> list | None:
        try:
            with open(path, newline="") as f:
                return next(csv.reader(f), None) or None
        except OSError:
            return None

    def read_metrics(self, name: str = METRICS) -> pd.DataFrame:
        """Rows of ``metrics.csv`` (or ``prior_metrics.csv``) as a DataFrame; empty if none.

        Tolerates a last line still being written (it is dropped) and malformed lines.
        """
        try:
            text = self._metrics_file(name).read_text()
        except OSError:
            return pd.DataFrame()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        if not text.strip():
            return pd.DataFrame()
        try:
            frame = pd.read_csv(io.StringIO(text), on_bad_lines="skip")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
            return pd.DataFrame()
        if "epoch" in frame:
            frame = frame[pd.to_numeric(frame["epoch"], errors="coerce").notna()]
            frame["epoch"] = frame["epoch"].astype(int)
        return frame.reset_index(drop=True)

    def trim_metrics(self, last_epoch: int, name: str = METRICS) -> int:
        """Keep only rows with ``epoch <= last_epoch`` (rows of epochs not checkpointed before a
        kill); rewrites the file atomically.  Returns how many rows were dropped."""
        path = self._metrics_file(name)
        if not path.is_file():
            return 0
        lines = path.read_text().splitlines(keepends=True)
        if not lines:
            return 0
        header, kept, dropped = lines[0], [], 0
        if not header.endswith("\n"):
            path.unlink()  # only a partial header: nothing was logged yet
            return 0
        for line in lines[1:]:
            if not line.endswith("\n"):
                dropped += 1
                continue
            try:
                epoch = int(line.split(",", 1)[0])
            except ValueError:
                dropped += 1
                continue
            if epoch <= last_epoch:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            write_text_atomic(path, header + "".join(kept))
        return dropped

    def clear_metrics(self, name: str) -> None:
        """Remove a stage's CSV (a stage that starts over)."""
        with contextlib.suppress(FileNotFoundError):
            self._metrics_file(name).unlink()

    # ------------------------------------------------------------------ cancel flag
    def request_cancel(self) -> None:
        """Ask the job to stop after its current batch (touch the ``cancel`` flag)."""
        self.cancel_path.touch()

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def clear_cancel(self, older_than: float | None = None) -> None:
        """Remove the ``cancel`` flag (only if written before ``older_than``, a time stamp)."""
        with contextlib.suppress(FileNotFoundError):
            if older_than is None or self.cancel_path.stat().st_mtime < older_than:
                self.cancel_path.unlink()

    # ------------------------------------------------------------------ lock
    def lock_owner(self) -> int | None:
        """pid holding the run's lock if that process is alive, else None."""
        try:
            pid = int(self.lock_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def acquire_lock(self, pid: int | None = None) -> Path:
        """Take the run's lock for ``pid`` (default this process); one job per run folder.

        A lock left by a dead process is taken over.  Raises UserError
        ``run X is already training (pid N)`` if a live process holds it.
        """
        path = self.lock_path
        pid = os.getpid() if pid is None else int(pid)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.lock_owner()
                if owner is not None and owner != pid:
                    raise UserError(f"run {self.name} is already training (pid {owner})") from None
                # Stale (dead owner) or our own: remove and retry.  A rename makes the takeover
                # atomic against a second process doing the same.
                stale = path.with_name(f".{LOCK}.{pid}.stale")
                with contextlib.suppress(OSError):
                    os.replace(path, stale)
                    os.unlink(stale)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(pid))
            return path
        raise UserError(f"could not lock run {self.name}: {path} keeps reappearing")

    def release_lock(self, pid: int | None = None) -> None:
        """Remove the lock if ``pid`` (default this process) holds it."""
        pid = os.getpid() if pid is None else int(pid)
        try:
            if int(self.lock_path.read_text().strip() or 0) == pid:
                self.lock_path.unlink()
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ images
    def latest_image(self, prefix: str) -> Path | None:
        """Newest ``samples/<prefix>_NNNN.png`` of the run (highest NNNN), or None."""
        files = sorted(self.samples_dir.glob(f"{prefix}_[0-9]*.png"))
        return files[-1] if files else None

    def image_path(self, prefix: str, epoch: int) -> Path:
        """``samples/<prefix>_NNNN.png`` of ``epoch``."""
        return self.samples_dir / f"{prefix}_{epoch:04d}.png"

    # ------------------------------------------------------------------ listing
    def summary(self) -> dict:
        """One row of :func:`list_runs` (UserError if the config is unreadable)."""
        config = self.read_config()
        status = self.read_status()
        return {
            "name": self.name,
            "path": str(self.path),
            "model_type": config.get("model_type"),
            "preset": config.get("preset"),
            "state": status.get("state"),
            "stage": status.get("stage"),
            "epoch": status.get("epoch", 0),
            "epochs": status.get("epochs") or config.get("epochs"),
            "message": status.get("message", ""),
            "updated": status.get("updated", ""),
            "created": config.get("created", ""),
            "dataset": (config.get("dataset") or {}).get("path"),
        }


# ---------------------------------------------------------------------------- shortcuts
def create_run(run_dir: str | Path, config: dict) -> Path:
    """:meth:`RunFolder.create`: a new ``queued`` run folder with a checked ``config``."""
    return RunFolder(run_dir).create(config).path


def prepare_run(run_dir: str | Path, dataset_dir: str | Path, model_type: str, preset: str,
                overrides: dict | None = None) -> Path:
    """A new ``queued`` run folder: :func:`core.training.config.make_config`, then create it."""
    from core.training.config import make_config

    return create_run(run_dir, make_config(dataset_dir, model_type, preset, overrides))


def read_config(run_dir: str | Path) -> dict:
    """The run's ``config.json``; UserError if missing or unreadable."""
    return RunFolder(run_dir).read_config()


def update_config(run_dir: str | Path, changes: dict) -> dict:
    """:meth:`RunFolder.update_config`."""
    return RunFolder(run_dir).update_config(changes)


def write_status(run_dir: str | Path, state: str | None = None, **fields) -> dict:
    """:meth:`RunFolder.write_status`."""
    return RunFolder(run_dir).write_status(state, **fields)


def read_status(run_dir: str | Path) -> dict:
    """The run's status, honest about dead jobs (:meth:`RunFolder.read_status`)."""
    return RunFolder(run_dir).read_status()


def read_state(run_dir: str | Path) -> dict:
    """The run's resume point (:meth:`RunFolder.read_resume`); empty if none."""
    return RunFolder(run_dir).read_resume()


def write_state(run_dir: str | Path, **fields) -> dict:
    """Update the run's resume point (:meth:`RunFolder.write_resume`)."""
    return RunFolder(run_dir).write_resume(**fields)


def read_metrics(run_dir: str | Path, name: str = METRICS) -> pd.DataFrame:
    """Rows of ``metrics.csv`` (or ``prior_metrics.csv``) as a DataFrame (:meth:`RunFolder.read_metrics`)."""
    return RunFolder(run_dir).read_metrics(name)


def trim_metrics(run_dir: str | Path, last_epoch: int, name: str = METRICS) -> int:
    """:meth:`RunFolder.trim_metrics`."""
    return RunFolder(run_dir).trim_metrics(last_epoch, name)


def lock_owner(run_dir: str | Path) -> int | None:
    """:meth:`RunFolder.lock_owner`."""
    return RunFolder(run_dir).lock_owner()


def acquire_lock(run_dir: str | Path, pid: int | None = None) -> Path:
    """:meth:`RunFolder.acquire_lock`."""
    return RunFolder(run_dir).acquire_lock(pid)


def release_lock(run_dir: str | Path, pid: int | None = None) -> None:
    """:meth:`RunFolder.release_lock`."""
    RunFolder(run_dir).release_lock(pid)


def latest_image(run_dir: str | Path, prefix: str) -> Path | None:
    """:meth:`RunFolder.latest_image`."""
    return RunFolder(run_dir).latest_image(prefix)


def list_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Every run folder under ``runs_dir``, newest first: name, path, model, preset, state,
    epoch, epochs, stage, message, updated, created, dataset."""
    root = Path(runs_dir) if runs_dir is not None else settings.runs_dir()
    if not root.is_dir():
        return []
    rows = []
    for child in root.iterdir():
        run = RunFolder(child)
        if not child.is_dir() or child.name.startswith(".") or not run.exists():
            continue
        try:
            rows.append(run.summary())
        except UserError:
            continue
    return sorted(rows, key=lambda r: r["created"] or r["updated"], reverse=True)


# ---------------------------------------------------------------------------- run data
#: Columns of :meth:`RunData.metadata`: one row per slice in global row order (train, val, test).
META_COLUMNS = ["row", "split", "index", "subject", "slice", "age", "sex", "site"]


class DatasetMissing(UserError):
    """The run's dataset folder is gone; ``spec`` (and ``config``) say how to rebuild it."""

    def __init__(self, message: str, spec: dict | None = None, config: dict | None = None):
        super().__init__(message)
        self.spec = spec or {}
        self.config = config or {}


@dataclass(frozen=True, eq=False)
class SplitData:
    """One split of a run's dataset, in image order.

    ``images`` ``(N, S, S)`` float32 in [0, 1] (backed by the memory-mapped cache file);
    ``subjects`` and ``sites`` one string per slice; ``positions`` the slice indices as
    float32; ``conditions`` ``(N, 3)`` condition vectors of a conditional run, else None.
    """

    name: str
    images: np.ndarray
    subjects: list
    positions: np.ndarray
    sites: list
    conditions: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)

    def as_dict(self) -> dict:
        """The split as :func:`core.evaluation.run.run_context` has always returned it."""
        return {"images": self.images, "subjects": self.subjects, "positions": self.positions,
                "sites": self.sites, "conditions": self.conditions}


class RunData:
    """Everything a reader takes from a run folder: the one owner of a run's data.

    ``RunData.open(run_dir)`` reads the config (nothing else); the dataset's manifest, each
    split's arrays, the per-slice metadata and conditions are read on first use and kept on
    the instance.  The model files are never cached here: :attr:`stamp` and :attr:`status`
    are read afresh on every access, and :meth:`load_model` loads the current model.
    Callers that cache (the pages) key on ``(path, stamp)``.

    Errors are :class:`UserError` with a readable message: not a run folder, unreadable
    config, no model yet, dataset not recorded; :class:`DatasetMissing` (a UserError that
    carries the dataset's spec, so the Latent page can offer a rebuild) when the dataset's
    folder is gone from the cache.
    """

    def __init__(self, folder: RunFolder, config: dict):
        self.folder = folder
        self.config = config
        self._manifest: dict | None = None
        self._images: dict = {}
        self._splits: dict = {}
        self._conditions: dict = {}
        self._meta: pd.DataFrame | None = None

    @classmethod
    def open(cls, run: "str | Path | RunFolder | RunData") -> "RunData":
        """The run in folder ``run`` (a path or a :class:`RunFolder`; a RunData is returned as is).

        Raises UserError when the folder is not a run (``config.json`` missing) or its config
        is unreadable or incomplete.
        """
        if isinstance(run, RunData):
            return run
        folder = run if isinstance(run, RunFolder) else RunFolder(run)
        return cls(folder, folder.read_config())

    def __repr__(self) -> str:
        return f"RunData({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ the run
    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def model_type(self) -> str:
        """``"vae"`` or ``"vqvae"``."""
        return self.config["model_type"]

    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on age, sex and slice position."""
        return bool(self.config.get("conditional"))

    @property
    def status(self) -> dict:
        """The run's status, read now (:meth:`RunFolder.read_status`)."""
        return self.folder.read_status()

    # ------------------------------------------------------------------ the model
    @property
    def stamp(self) -> tuple[int, int]:
        """``(model mtime ns, prior mtime ns)``, 0 for a missing file; read now.

        The cache key of anything made from the saved model: it changes when training writes
        a new model, or a VQ-VAE's prior appears or is rewritten.
        """
        return model_stamp(self.path)

    def has_model(self) -> bool:
        """Whether the run has saved a model yet."""
        return self.folder.model_path.is_file()

    @property
    def fingerprint(self) -> str:
        """``"<run name>@<model mtime ns>"``: names the model a view or encoding was made with.

        Raises UserError when the run has no model yet.
        """
        if not self.has_model():
            raise UserError(f"run {self.name} has no model yet ({MODEL} is missing); "
                            "wait for its first epoch or train it on the Train page")
        return f"{self.name}@{self.stamp[0]}"

    def load_model(self, compile: bool = False):
        """The run's latest model, a VQ-VAE with its prior attached when there is one
        (:func:`core.training.checkpoints.load_run_model`); UserError without a model."""
        return load_run_model(self.path, compile=compile)

    def decoder_export(self, model=None):
        """The model's decoder as ONNX for the browser (:func:`core.models.export.export_decoder`),
        written on first use to ``export/decoder-<model mtime ns>.onnx`` with a ``.json`` record
        beside it (a failed export is recorded too, so it is not retried until the model changes);
        older exports are removed.  ``model``: the loaded model, to avoid loading it again.
        Returns a :class:`core.models.export.DecoderExport`."""
        from core.atomic import read_json, write_json_atomic
        from core.models.export import DecoderExport, export_decoder

        if not self.has_model():
            raise UserError(f"run {self.name} has no model yet ({MODEL} is missing)")
        folder = self.path / "export"
        stem = f"decoder-{self.stamp[0]}"
        record = read_json(folder / f"{stem}.json")
        if record and (not record.get("available") or (folder / f"{stem}.onnx").is_file()):
            return DecoderExport.from_json(record)
        folder.mkdir(exist_ok=True)
        for old in folder.glob("decoder-*"):
            old.unlink(missing_ok=True)
        result = export_decoder(model if model is not None else self.load_model(), folder / f"{stem}.onnx")
        write_json_atomic(folder / f"{stem}.json", result.to_json())
        return result

    # ------------------------------------------------------------------ the dataset
    @property
    def dataset_info(self) -> dict:
        """The config's ``dataset`` entry: path, hash, spec, fractions, seed."""
        return self.config.get("dataset") or {}

    @property
    def dataset_dir(self) -> Path:
        """The dataset folder the run was trained on.

        Raises UserError when the config names none, :class:`DatasetMissing` when the folder
        (its ``manifest.json``) is gone.
        """
        info = self.dataset_info
        path = info.get("path")
        if not path:
            raise UserError(f"run {self.name} does not record its dataset in {CONFIG}")
        folder = Path(path)
        if not (folder / "manifest.json").is_file():
            spec = info.get("spec") or {}
            raise DatasetMissing(
                f"the dataset of run {self.name} ({folder}) is gone from the cache; rebuild it from "
                f"its spec (axis {spec.get('axis')}, slices {spec.get('start')}–{spec.get('stop')}, "
                f"{spec.get('size')} px)", info.get("spec"), self.config)
        return folder

    @property
    def manifest(self) -> dict:
        """The dataset's manifest (read once)."""
        if self._manifest is None:
            from core.data.dataset import load_manifest

            self._manifest = load_manifest(self.dataset_dir)
        return self._manifest

    def check_dataset(self) -> dict:
        """The manifest, after checking it is the dataset the run was made on (same hash) with
        the run's image size; UserError otherwise."""
        manifest, info = self.manifest, self.dataset_info
        if manifest["hash"] != info.get("hash"):
            raise UserError(f"dataset {info.get('path')} changed since run {self.name} was created "
                            f"(hash {manifest['hash']} != {info.get('hash')})")
        if "image_size" in self.config and int(manifest["spec"]["size"]) != int(self.config["image_size"]):
            raise UserError(f"dataset images are {manifest['spec']['size']} px, run {self.name} expects "
                            f"{self.config['image_size']} px")
        return manifest

    def has_split(self, split: str) -> bool:
        """Whether the dataset has ``split`` with at least one slice."""
        entry = self.manifest["splits"].get(split)
        return bool(entry and entry.get("slices"))

    def images(self, split: str) -> np.ndarray:
        """``(N, S, S)`` float32 images of ``split``, memory-mapped (read when indexed); kept."""
        if split not in self._images:
            from core.data.dataset import load_split_images

            self.manifest  # noqa: B018 — DatasetMissing before load_split_images' own message
            self._images[split] = load_split_images(self.dataset_dir, split)
        return self._images[split]

    def conditions(self, split: str) -> np.ndarray | None:
        """``(N, 3)`` condition vectors (age, sex, slice position) of ``split``'s slices for a
        conditional run, None otherwise; UserError where a subject lacks age or sex."""
        if not self.conditional:
            return None
        if split not in self._conditions:
            from core.models.conditions import dataset_conditions

            self._conditions[split] = dataset_conditions(self.manifest, split)
        return self._conditions[split]

    def split(self, name: str) -> SplitData:
        """Images, subjects, slice positions, sites and conditions of split ``name`` (kept)."""
        if name not in self._splits:
            manifest = self.manifest
            info = manifest.get("subjects") or {}
            entry = manifest["splits"].get(name) or {"slices": []}
            slices = entry.get("slices") or []
            subjects = [s[0] for s in slices]
            self._splits[name] = SplitData(
                name=name,
                images=np.asarray(self.images(name), dtype=np.float32),
                subjects=subjects,
                positions=np.array([s[1] for s in slices], dtype=np.float32),
                sites=[str((info.get(s) or {}).get("site") or "unknown") for s in subjects],
                conditions=self.conditions(name),
            )
        return self._splits[name]

    def metadata(self) -> pd.DataFrame:
        """One row per slice of every split (global row order: train, val, test) with
        :data:`META_COLUMNS`: row, split, index in its split, subject, slice, age, sex, site.
        A copy of the kept table (callers may add columns)."""
        if self._meta is None:
            from core.data.dataset import SPLITS

            subjects = self.manifest.get("subjects") or {}
            rows = []
            for split in SPLITS:
                entry = self.manifest["splits"].get(split) or {"slices": []}
                for i, (subject, index) in enumerate(entry["slices"]):
                    info = subjects.get(subject) or {}
                    age = info.get("age")
                    rows.append({"split": split, "index": i, "subject": str(subject), "slice": int(index),
                                 "age": float(age) if age is not None else np.nan,
                                 "sex": info.get("sex") or "", "site": info.get("site") or ""})
            table = pd.DataFrame(rows, columns=META_COLUMNS[1:])
            table.insert(0, "row", np.arange(len(table)))
            self._meta = table
        return self._meta.copy()

    # ------------------------------------------------------------------ aggregate posterior
    def attach_aggregate(self, model, n_components: int = 10, covariance_type: str = "full",
                         refit: bool = False):
        """Attach the run's aggregate posterior to its VAE ``model``; returns the mixture.

        Read from ``aggregate_posterior.npz`` beside the model, or fitted on the posterior
        means of the training split (:func:`core.models.aggregate.fit_model_aggregate`, seeded
        with the run's seed) and written there when missing, when ``refit``, or when older than
        the model (trained on since).
        """
        from core.models.aggregate import AggregatePosterior, fit_model_aggregate

        path = self.folder.aggregate_path
        model_ns = self.stamp[0]
        stale = path.is_file() and model_ns and path.stat().st_mtime_ns < model_ns
        if path.is_file() and not (refit or stale):
            mixture = AggregatePosterior.load(path)
        else:
            condition = self.conditions("train") if getattr(model, "conditional", False) else None
            mixture = fit_model_aggregate(model, self.images("train"), condition, n_components,
                                          covariance_type, seed=int(self.config.get("seed") or 0))
            mixture.save(path)
        model.attach_aggregate(mixture)
        return mixture


def attach_run_aggregate(model, run, n_components: int = 10, covariance_type: str = "full",
                         refit: bool = False):
    """:meth:`RunData.attach_aggregate` of run ``run`` (a folder or a RunData)."""
    return RunData.open(run).attach_aggregate(model, n_components, covariance_type, refit)
