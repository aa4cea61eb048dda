"""Run dirs: names, config, status, metrics, checkpoints and the one-job-per-run lock.

A run dir ``<runs>/<name>/`` holds (see design.md)::

    config.json         preset, hyper-parameters, dataset path + hash (written once)
    status.json         state, epoch, epochs, stage, pid, message, updated, device, ETA (atomic)
    state.json          resume point: last checkpointed epoch per stage, early-stopping state
    metrics.csv         one row per epoch: epoch, train terms, val_ terms, seconds
    prior_metrics.csv   the same for a VQ-VAE's prior (second stage)
    model.keras         latest good model (atomic); prior.keras for a VQ-VAE's prior
    samples/            epoch_NNNN.png, recon_NNNN.png, prior_NNNN.png
    train.log           log lines of the job
    cancel              flag file: asks the job to stop after the current batch
    run.lock            pid of the job training this run (one job per run dir)

Every file a reader may see mid-write is replaced atomically (temp file in the same folder,
then ``os.replace``), so a kill never leaves a half-written config, status or model behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd

from core import settings
from core.errors import UserError

__all__ = [
    "STATES",
    "ACTIVE_STATES",
    "validate_run_name",
    "run_path",
    "default_run_name",
    "create_run",
    "make_config",
    "prepare_run",
    "read_config",
    "update_config",
    "write_json_atomic",
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
    "save_model_atomic",
    "load_keras",
    "load_run_model",
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
STATE = "state.json"
METRICS = "metrics.csv"
PRIOR_METRICS = "prior_metrics.csv"
MODEL = "model.keras"
PRIOR = "prior.keras"
LOCK = "run.lock"
CANCEL = "cancel"
LOG = "train.log"
SAMPLES = "samples"


# ---------------------------------------------------------------------------- names, paths
def validate_run_name(name) -> str:
    """Return ``name`` if it is a safe run-dir name, else raise UserError.

    Letters, digits, ``.``, ``_`` and ``-`` only (no path separators), not ``.``/``..``,
    at most 80 characters.

    >>> validate_run_name("vae-demo_1.2")
    'vae-demo_1.2'
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
    """Folder of run ``name`` under ``runs_dir`` (default ``settings.runs_dir()``)."""
    root = Path(runs_dir) if runs_dir is not None else settings.runs_dir()
    return root / validate_run_name(name)


def default_run_name(model_type: str, preset: str) -> str:
    """A fresh name like ``vae-demo-20240131-154502``."""
    return f"{model_type}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------------------- json files
def write_json_atomic(path: str | Path, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None


def create_run(run_dir: str | Path, config: dict) -> Path:
    """Create a new run dir with its ``config.json`` and a ``queued`` status.

    Raises UserError if the folder already exists (a run is never overwritten; resume it or
    choose another name).  The folder appears complete or not at all.
    """
    run_dir = Path(run_dir)
    validate_run_name(run_dir.name)
    if run_dir.exists():
        raise UserError(
            f"run {run_dir.name!r} already exists in {run_dir.parent}: resume it or choose another name"
        )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
    try:
        (tmp / SAMPLES).mkdir()
        write_json_atomic(tmp / CONFIG, {**config, "run_name": run_dir.name, "created": _now()})
        write_json_atomic(tmp / STATUS, _status_fields(state="queued", epochs=config.get("epochs")))
        os.rename(tmp, run_dir)  # fails if someone created it meanwhile
    except OSError as exc:
        _rmtree(tmp)
        if run_dir.exists():
            raise UserError(f"run {run_dir.name!r} already exists in {run_dir.parent}") from exc
        raise UserError(f"cannot create run dir {run_dir}: {exc}") from exc
    return run_dir


#: Training settings the engine adds to a model preset (defaults).
TRAINING_DEFAULTS = {"mixed_precision": False, "tensorboard": False, "jit_compile": "auto"}


def make_config(dataset_dir: str | Path, model_type: str, preset: str, overrides: dict | None = None) -> dict:
    """A checked full config for training ``model_type``/``preset`` on a dataset folder.

    The preset's values, then ``overrides`` (hyper-parameters from the page or CLI); the image
    size follows the dataset unless ``overrides`` sets it (then they must agree).  Adds
    ``dataset`` (path, hash, spec, counts) and the engine's settings (``mixed_precision``,
    ``tensorboard``, ``jit_compile``).  Raises UserError naming the bad value.
    """
    from core.data.dataset import load_manifest

    overrides = dict(overrides or {})
    dataset_dir = Path(dataset_dir).expanduser().resolve()
    manifest = load_manifest(dataset_dir)
    size = int(manifest["spec"]["size"])
    counts = {k: len(v.get("slices", [])) for k, v in manifest["splits"].items()}
    if counts.get("train", 0) == 0:
        raise UserError(f"dataset {dataset_dir} has no training images")
    if "image_size" in overrides and overrides["image_size"] != size:
        raise UserError(
            f"image_size {overrides['image_size']!r} does not match the dataset's {size} px images"
        )
    config = {**TRAINING_DEFAULTS, **overrides, "model_type": model_type, "preset": preset, "image_size": size}
    from core.models.presets import validate_config  # imports Keras: after the cheap checks

    config = validate_config(config, n_train=counts["train"])
    for key in ("mixed_precision", "tensorboard"):
        if not isinstance(config[key], bool):
            raise UserError(f"{key} must be true or false, got {config[key]!r}")
    if config["jit_compile"] not in ("auto", True, False):
        raise UserError(f"jit_compile must be 'auto', true or false, got {config['jit_compile']!r}")
    config["dataset"] = {
        "path": str(dataset_dir),
        "hash": manifest["hash"],
        "spec": manifest["spec"],
        "counts": counts,
    }
    return config


def prepare_run(run_dir: str | Path, dataset_dir: str | Path, model_type: str, preset: str,
                overrides: dict | None = None) -> Path:
    """:func:`make_config` then :func:`create_run`: a new ``queued`` run dir."""
    validate_run_name(Path(run_dir).name)
    return create_run(run_dir, make_config(dataset_dir, model_type, preset, overrides))


def read_config(run_dir: str | Path) -> dict:
    """The run's ``config.json``; UserError if missing or unreadable."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run dir: {CONFIG} is missing")
    data = _read_json(path)
    if not isinstance(data, dict) or "model_type" not in data:
        raise UserError(f"run config {path} is unreadable or incomplete")
    return data


def update_config(run_dir: str | Path, changes: dict) -> dict:
    """Merge ``changes`` into ``config.json`` (atomically) and return the new config.

    More ``epochs``/``prior_epochs`` also lift an earlier early stop of that stage, so a
    resume trains on.
    """
    config = {**read_config(run_dir), **changes}
    write_json_atomic(Path(run_dir) / CONFIG, config)
    if (Path(run_dir) / STATE).is_file():
        lifted = {}
        if "epochs" in changes:
            lifted.update(stopped_early=False, wait=0)
        if "prior_epochs" in changes:
            lifted.update(prior_stopped_early=False, prior_wait=0)
        if lifted:
            write_state(run_dir, **lifted)
    return config


# ---------------------------------------------------------------------------- status
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


def write_status(run_dir: str | Path, state: str | None = None, **fields) -> dict:
    """Update ``status.json`` atomically: previous fields, then ``fields``; returns it.

    ``state`` must be one of queued|running|finished|failed|cancelled.
    """
    if state is not None and state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    path = Path(run_dir) / STATUS
    status = _read_json(path) or _status_fields()
    if state is not None:
        fields["state"] = state
    status.update(fields, updated=_now(), updated_ts=time.time())
    write_json_atomic(path, status)
    return status


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def read_status(run_dir: str | Path) -> dict:
    """The run's status, honest about dead jobs.

    A status that says ``queued``/``running`` while its process is gone is reported as
    ``failed`` with ``interrupted=True`` and a message saying to resume.
    """
    run_dir = Path(run_dir)
    status = _read_json(run_dir / STATUS)
    if status is None:
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


def read_state(run_dir: str | Path) -> dict:
    """Resume point (``state.json``): ``{"stage", "epoch", "prior_epoch", ...}``; empty if none."""
    return _read_json(Path(run_dir) / STATE) or {}


def write_state(run_dir: str | Path, **fields) -> dict:
    """Update ``state.json`` atomically with ``fields``."""
    state = {**read_state(run_dir), **fields, "updated": _now()}
    write_json_atomic(Path(run_dir) / STATE, state)
    return state


# ---------------------------------------------------------------------------- metrics
def read_metrics(run_dir: str | Path, name: str = METRICS) -> pd.DataFrame:
    """Rows of ``metrics.csv`` (or ``prior_metrics.csv``) as a DataFrame; empty if none.

    Tolerates a last line still being written (it is dropped) and malformed lines.
    """
    path = Path(run_dir) / name
    try:
        text = path.read_text()
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


def trim_metrics(run_dir: str | Path, last_epoch: int, name: str = METRICS) -> int:
    """Keep only rows with ``epoch <= last_epoch`` (rows of epochs not checkpointed before a
    kill); rewrites the file atomically.  Returns how many rows were dropped."""
    path = Path(run_dir) / name
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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(header + "".join(kept))
        os.replace(tmp, path)
    return dropped


# ---------------------------------------------------------------------------- listing
def list_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Every run dir under ``runs_dir``, newest first: name, path, model, preset, state,
    epoch, epochs, stage, message, updated, dataset."""
    root = Path(runs_dir) if runs_dir is not None else settings.runs_dir()
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        if not child.is_dir() or child.name.startswith(".") or not (child / CONFIG).is_file():
            continue
        try:
            config = read_config(child)
        except UserError:
            continue
        status = read_status(child)
        runs.append(
            {
                "name": child.name,
                "path": str(child),
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
        )
    return sorted(runs, key=lambda r: r["created"] or r["updated"], reverse=True)


# ---------------------------------------------------------------------------- lock
def lock_owner(run_dir: str | Path) -> int | None:
    """pid holding the run's lock if that process is alive, else None."""
    try:
        pid = int((Path(run_dir) / LOCK).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def acquire_lock(run_dir: str | Path, pid: int | None = None) -> Path:
    """Take the run's lock for ``pid`` (default this process); one job per run dir.

    A lock left by a dead process is taken over.  Raises UserError
    ``run X is already training (pid N)`` if a live process holds it.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    pid = os.getpid() if pid is None else int(pid)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock_owner(run_dir)
            if owner is not None and owner != pid:
                raise UserError(f"run {run_dir.name} is already training (pid {owner})") from None
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
    raise UserError(f"could not lock run {run_dir.name}: {path} keeps reappearing")


def release_lock(run_dir: str | Path, pid: int | None = None) -> None:
    """Remove the lock if ``pid`` (default this process) holds it."""
    path = Path(run_dir) / LOCK
    pid = os.getpid() if pid is None else int(pid)
    try:
        if int(path.read_text().strip() or 0) == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------- models
def save_model_atomic(model, path: str | Path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) via a temp file in the same folder.

    A failure (disk full...) leaves the previous file intact and raises UserError.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"could not save {path} ({exc}); the previous model is kept") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path


def load_keras(path: str | Path, compile: bool = True):
    """Load a ``.keras`` file with ``safe_mode=True``; UserError if missing, corrupt or foreign."""
    import keras

    import core.models  # noqa: F401  (registers the custom classes)

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .keras model file (corrupt or another format)")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as exc:  # noqa: BLE001 — Keras raises many types for bad files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {path}: {first}") from exc


def load_run_model(run_dir: str | Path, compile: bool = False):
    """The run's latest model; a VQ-VAE gets its ``prior.keras`` attached when present.

    Raises UserError if the run has no model yet or the file is corrupt or foreign.
    """
    from core.models import VAE, VQVAE, PixelCNNPrior

    run_dir = Path(run_dir)
    path = run_dir / MODEL
    if not path.is_file():
        raise UserError(f"run {run_dir.name} has no model yet ({MODEL} is missing)")
    model = load_keras(path, compile=compile)
    if not isinstance(model, (VAE, VQVAE)):
        raise UserError(f"{path} holds a {type(model).__name__}, not a latentbrain VAE or VQ-VAE")
    if isinstance(model, VQVAE) and (run_dir / PRIOR).is_file():
        prior = load_keras(run_dir / PRIOR, compile=False)
        if not isinstance(prior, PixelCNNPrior):
            raise UserError(f"{run_dir / PRIOR} holds a {type(prior).__name__}, not a PixelCNN prior")
        model.attach_prior(prior)
    return model


def latest_image(run_dir: str | Path, prefix: str) -> Path | None:
    """Newest ``samples/<prefix>_NNNN.png`` of a run (highest NNNN), or None."""
    files = sorted((Path(run_dir) / SAMPLES).glob(f"{prefix}_[0-9]*.png"))
    return files[-1] if files else None


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
