"""Keras model files of a run: atomic save, safe load, and the run's generative model.

Models are only ever loaded with ``safe_mode=True`` (no arbitrary code from a ``.keras``
file); a missing, corrupt or foreign file raises the project's :class:`UserError`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from core.atomic import atomic_path
from core.errors import UserError

__all__ = ["MODEL", "PRIOR", "save_model_atomic", "load_keras", "load_run_model", "has_model", "model_stamp"]

MODEL = "model.keras"
PRIOR = "prior.keras"


def save_model_atomic(model, path: str | Path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) via a temp file in the same folder.

    A failure (disk full, read-only folder) leaves the previous file intact and raises UserError.
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp)
    except OSError as exc:
        raise UserError(f"could not save {path} ({exc}); the previous model is kept") from exc
    return path


def load_keras(path: str | Path, compile: bool = True):
    """Load a ``.keras`` file with ``safe_mode=True``; UserError if missing, corrupt or foreign."""
    import keras

    import core.models

    core.models.register()  # the package loads model modules lazily: register every class first

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


def has_model(run_dir: str | Path) -> bool:
    """Whether the run has saved a model yet."""
    return (Path(run_dir) / MODEL).is_file()


def model_stamp(run_dir: str | Path) -> tuple[int, int]:
    """Modification times (ns) of the run's model and prior files, 0 for a missing one.

    A cache key for anything made from the saved model: it changes when training writes a new
    model or a VQ-VAE's prior appears or is rewritten (once per prior epoch).
    """
    def mtime(name: str) -> int:
        try:
            return (Path(run_dir) / name).stat().st_mtime_ns
        except OSError:
            return 0

    return mtime(MODEL), mtime(PRIOR)


def load_run_model(run_dir: str | Path, compile: bool = False):
    """The run's latest model; a VQ-VAE gets its ``prior.keras`` attached when present.

    Raises UserError if the run has no model yet or the file is corrupt or foreign.
    """
    from core.models import VAE, VQVAE, CodePrior

    run_dir = Path(run_dir)
    path = run_dir / MODEL
    if not path.is_file():
        raise UserError(f"run {run_dir.name} has no model yet ({MODEL} is missing)")
    model = load_keras(path, compile=compile)
    if not isinstance(model, (VAE, VQVAE)):
        raise UserError(f"{path} holds a {type(model).__name__}, not a latentbrain VAE or VQ-VAE")
    if isinstance(model, VQVAE) and (run_dir / PRIOR).is_file():
        prior = load_keras(run_dir / PRIOR, compile=False)
        if not isinstance(prior, CodePrior):
            raise UserError(f"{run_dir / PRIOR} holds a {type(prior).__name__}, not a code-grid prior")
        model.attach_prior(prior)
    return model
