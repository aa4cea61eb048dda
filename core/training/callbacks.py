"""Keras callbacks that keep a run dir up to date while a model trains.

They share one :class:`RunContext` (run dir, stage, files, timings, cancel state), and are
meant to be used in this order (the checkpoint is the commit point of an epoch)::

    KLBetaSchedule, CancelFlag, StatusReporter, MetricsCSV, EarlyStoppingOnVal,
    SampleGrid, Checkpoint

An epoch is "done" once :class:`Checkpoint` wrote ``state.json``; rows of ``metrics.csv``
beyond that epoch (a kill between the two) are trimmed when the run resumes.  Epoch numbers
in files are 1-based (``epoch`` = epochs completed); Keras' own indices are 0-based.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from core.training import runs

__all__ = [
    "RunContext",
    "KLBetaSchedule",
    "CancelFlag",
    "StatusReporter",
    "MetricsCSV",
    "EarlyStoppingOnVal",
    "SampleGrid",
    "Checkpoint",
    "write_grids",
]


@dataclass
class RunContext:
    """State shared by the callbacks of one training stage.

    Attributes:
        run_dir: the run dir.
        stage: ``"vae"``, ``"vqvae"`` or ``"prior"``.
        epochs: last epoch of this stage (1-based count).
        metrics_file: CSV file name inside the run dir.
        model_file: ``.keras`` file name inside the run dir.
        state_prefix: key prefix in ``state.json`` (``""`` or ``"prior_"``).
        progress: optional ``callable(event: dict)`` (the CLI's progress bar).
        batches: training batches per epoch (for progress and ETA).
        best, wait: early-stopping state (restored on resume).
    """

    run_dir: Path
    stage: str
    epochs: int
    metrics_file: str = runs.METRICS
    model_file: str = runs.MODEL
    state_prefix: str = ""
    progress: Callable | None = None
    batches: int | None = None
    best: float | None = None
    wait: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    epoch_started: float = 0.0
    epoch_seconds: list = field(default_factory=list)
    last_logs: dict = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("latentbrain.training"))

    @property
    def cancel_path(self) -> Path:
        return self.run_dir / runs.CANCEL

    def eta_s(self, done_epochs: int) -> float | None:
        """Seconds left in this stage from the mean epoch time so far."""
        if not self.epoch_seconds:
            return None
        recent = self.epoch_seconds[-5:]
        return float(np.mean(recent)) * max(0, self.epochs - done_epochs)

    def emit(self, **event) -> None:
        if self.progress is not None:
            self.progress({"stage": self.stage, "epochs": self.epochs, "batches": self.batches, **event})


def _scalar_logs(logs) -> dict:
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(np.asarray(value))
        except (TypeError, ValueError):
            continue
    return out


class KLBetaSchedule(keras.callbacks.Callback):
    """Sets the VAE's ``beta`` variable at the start of each epoch (KL warm-up)."""

    def __init__(self, kind="linear", warmup_epochs=10, beta_max=1.0, cycle_epochs=10):
        super().__init__()
        self.kind, self.warmup_epochs = kind, warmup_epochs
        self.beta_max, self.cycle_epochs = beta_max, cycle_epochs

    def on_epoch_begin(self, epoch, logs=None):
        from core.models.vae import kl_beta_schedule

        beta = kl_beta_schedule(epoch, self.kind, self.warmup_epochs, self.beta_max, self.cycle_epochs)
        self.model.beta.assign(beta)


class CancelFlag(keras.callbacks.Callback):
    """Stops training after the current batch once the run's ``cancel`` file exists."""

    def __init__(self, ctx: RunContext):
        super().__init__()
        self.ctx = ctx

    def _check(self):
        if not self.ctx.cancelled and self.ctx.cancel_path.exists():
            self.ctx.cancelled = True
            self.model.stop_training = True
            self.ctx.logger.info("cancel flag seen: stopping after the current batch")

    def on_epoch_begin(self, epoch, logs=None):
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        self._check()


class StatusReporter(keras.callbacks.Callback):
    """Writes ``status.json`` (epoch, batch, ETA) at most every ``every_s`` seconds and at
    each epoch's start; forwards batch progress to ``ctx.progress``."""

    def __init__(self, ctx: RunContext, every_s: float = 2.0):
        super().__init__()
        self.ctx, self.every_s = ctx, every_s
        self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.ctx.epoch_started = time.perf_counter()
        self._epoch = epoch
        runs.write_status(
            self.ctx.run_dir, "running", stage=self.ctx.stage, epoch=epoch, epochs=self.ctx.epochs,
            batch=0, batches=self.ctx.batches, eta_s=self.ctx.eta_s(epoch),
            message=f"training the {self.ctx.stage} (epoch {epoch + 1} of {self.ctx.epochs})",
        )
        self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.ctx.emit(kind="batch", epoch=self._epoch, batch=batch + 1, batches=self.ctx.batches)
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            eta = self.ctx.eta_s(self._epoch)
            if self.ctx.batches and self.ctx.epoch_seconds:
                eta = (eta or 0.0) + np.mean(self.ctx.epoch_seconds[-5:]) * (1 - (batch + 1) / self.ctx.batches)
            elif self.ctx.batches:  # first epoch: extrapolate from this epoch's batches
                per_batch = (now - self.ctx.epoch_started) / (batch + 1)
                eta = per_batch * (self.ctx.batches * (self.ctx.epochs - self._epoch) - batch - 1)
            runs.write_status(self.ctx.run_dir, batch=batch + 1, eta_s=eta)


class MetricsCSV(keras.callbacks.Callback):
    """Appends one row per completed epoch (``epoch``, train terms, ``val_`` terms, ``seconds``)
    to the stage's CSV and flushes it.  A cancelled (partial) epoch gets no row."""

    def __init__(self, ctx: RunContext):
        super().__init__()
        self.ctx = ctx

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.ctx.epoch_started
        logs = _scalar_logs(logs)
        self.ctx.last_logs = logs
        if self.ctx.cancelled:
            return
        self.ctx.epoch_seconds.append(seconds)
        path = self.ctx.run_dir / self.ctx.metrics_file
        row = {"epoch": epoch + 1, **logs, "seconds": round(seconds, 3)}
        fields = self._header(path, row)
        new = not path.is_file() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})
            f.flush()
        self.ctx.logger.info(
            "%s epoch %d/%d: %s (%.1f s)", self.ctx.stage, epoch + 1, self.ctx.epochs,
            ", ".join(f"{k}={v:.4g}" for k, v in logs.items()), seconds,
        )

    @staticmethod
    def _header(path: Path, row: dict) -> list:
        if path.is_file() and path.stat().st_size:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                return header
        train = [k for k in row if k not in ("epoch", "seconds") and not k.startswith("val_")]
        val = [k for k in row if k.startswith("val_")]
        return ["epoch", *train, *val, "seconds"]


def _fmt(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


class EarlyStoppingOnVal(keras.callbacks.Callback):
    """Stops when ``val_loss`` (``loss`` without a validation split) has not improved for
    ``patience`` epochs (0 disables).  Its best/wait live in ``ctx`` so resume keeps them."""

    def __init__(self, ctx: RunContext, patience: int, min_delta: float = 0.0):
        super().__init__()
        self.ctx, self.patience, self.min_delta = ctx, int(patience), min_delta

    def on_epoch_end(self, epoch, logs=None):
        if self.ctx.cancelled or self.patience <= 0:
            return
        logs = _scalar_logs(logs)
        value = logs.get("val_loss", logs.get("loss"))
        if value is None or not math.isfinite(value):
            return
        if self.ctx.best is None or value < self.ctx.best - self.min_delta:
            self.ctx.best, self.ctx.wait = value, 0
            return
        self.ctx.wait += 1
        if self.ctx.wait >= self.patience:
            self.ctx.stopped_early = True
            self.model.stop_training = True
            self.ctx.logger.info(
                "early stopping after epoch %d: no val_loss improvement for %d epochs (best %.5g)",
                epoch + 1, self.patience, self.ctx.best,
            )


class SampleGrid(keras.callbacks.Callback):
    """Writes ``samples/<prefix>_NNNN.png`` grids after completed epochs.

    Args:
        ctx: the run context.
        grids: ``{prefix: callable() -> PNG bytes}``, e.g. ``{"epoch": samples, "recon": recons}``;
            the callables use fixed seeds / fixed validation slices so epochs compare.
        every: write every ``every`` epochs and always at the stage's last epoch.
    """

    def __init__(self, ctx: RunContext, grids: dict, every: int = 1):
        super().__init__()
        self.ctx, self.grids, self.every = ctx, grids, max(1, int(every))

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if self.ctx.cancelled:
            return
        last = done >= self.ctx.epochs or self.ctx.stopped_early
        if done % self.every and not last:
            return
        write_grids(self.ctx.run_dir, self.grids, done, self.ctx.logger)


def write_grids(run_dir: Path, grids: dict, epoch: int, logger=None) -> None:
    """Write each ``{prefix: callable() -> PNG bytes}`` to ``samples/<prefix>_NNNN.png``."""
    folder = Path(run_dir) / runs.SAMPLES
    folder.mkdir(exist_ok=True)
    for prefix, make in grids.items():
        try:
            data = make()
        except Exception as exc:  # noqa: BLE001 — a sample grid must never stop training
            if logger:
                logger.warning("could not draw %s grid at epoch %d: %s", prefix, epoch, exc)
            continue
        target = folder / f"{prefix}_{epoch:04d}.png"
        tmp = folder / f".{target.name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(target)


class Checkpoint(keras.callbacks.Callback):
    """Commit point of an epoch: saves the model atomically, then ``state.json`` (epoch,
    early-stopping state), then ``status.json`` (epoch, ETA).

    A cancelled partial epoch still saves the model (its weights moved on) but not the
    epoch count, so a resume redoes that epoch with continuous numbering.
    """

    def __init__(self, ctx: RunContext, extra_state: dict | None = None):
        super().__init__()
        self.ctx = ctx
        self.extra_state = extra_state or {}

    def on_epoch_end(self, epoch, logs=None):
        ctx, p = self.ctx, self.ctx.state_prefix
        runs.save_model_atomic(self.model, ctx.run_dir / ctx.model_file)
        if ctx.cancelled:
            return
        done = epoch + 1
        runs.write_state(
            ctx.run_dir, stage=ctx.stage, **{f"{p}epoch": done, f"{p}best": ctx.best, f"{p}wait": ctx.wait},
            **self.extra_state,
        )
        runs.write_status(
            ctx.run_dir, "running", stage=ctx.stage, epoch=done, epochs=ctx.epochs,
            batch=ctx.batches, batches=ctx.batches, eta_s=ctx.eta_s(done),
            last={k: v for k, v in ctx.last_logs.items()},
        )
        ctx.emit(kind="epoch", epoch=done, logs=ctx.last_logs)
