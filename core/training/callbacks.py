"""Keras callbacks that keep a run folder up to date while a model trains.

They share one :class:`RunContext` (run folder, stage, file names, timings, cancel state), and
are meant to be used in this order (the checkpoint is the commit point of an epoch)::

    KLBetaSchedule, CancelFlag, StatusReporter, MetricsCSV, EarlyStoppingOnVal,
    SampleGrid, Checkpoint

Keras' own callbacks are used where they do the job: early stopping is Keras'
``EarlyStopping`` (extended to carry its state across a resume), and ``TensorBoard`` is added
by the trainer when asked.  The others stay custom for the reason given at each class.

An epoch is "done" once :class:`Checkpoint` wrote the resume point; rows of ``metrics.csv``
beyond that epoch (a kill between the two) are trimmed when the run resumes.  Epoch numbers
in files are 1-based (``epoch`` = epochs completed); Keras' own indices are 0-based.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from core.atomic import write_bytes_atomic
from core.training import checkpoints, runs
from core.training.runs import RunFolder

__all__ = [
    "RunContext",
    "KLBetaSchedule",
    "AdversarialWarmup",
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
        run_dir: the run folder (``run`` is its :class:`RunFolder`).
        stage: ``"vae"``, ``"vqvae"`` or ``"prior"``.
        epochs: last epoch of this stage (1-based count).
        metrics_file: CSV file name inside the run folder.
        model_file: ``.keras`` file name inside the run folder.
        state_prefix: key prefix in the resume point (``""`` or ``"prior_"``).
        progress: optional ``callable(event: dict)`` (the CLI's progress bar).
        batches: training batches per epoch (for progress and ETA).
        best, wait: early-stopping state (restored on resume).
    """

    run_dir: Path
    stage: str
    epochs: int
    metrics_file: str = runs.METRICS
    model_file: str = checkpoints.MODEL
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

    def __post_init__(self):
        self.run = self.run_dir if isinstance(self.run_dir, RunFolder) else RunFolder(self.run_dir)
        self.run_dir = self.run.path

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
    """Sets the VAE's ``beta`` variable at the start of each epoch (KL warm-up).

    Custom: Keras schedules only the learning rate; β is a variable of our model.
    """

    def __init__(self, kind="linear", warmup_epochs=10, beta_max=1.0, cycle_epochs=10):
        super().__init__()
        self.kind, self.warmup_epochs = kind, warmup_epochs
        self.beta_max, self.cycle_epochs = beta_max, cycle_epochs

    def on_epoch_begin(self, epoch, logs=None):
        from core.models.vae import kl_beta_schedule

        beta = kl_beta_schedule(epoch, self.kind, self.warmup_epochs, self.beta_max, self.cycle_epochs)
        self.model.beta.assign(beta)


class AdversarialWarmup(keras.callbacks.Callback):
    """Switches a model's adversarial terms on from epoch ``start_epoch`` (0-based) onwards.

    A discriminator that starts with the autoencoder tells noise from images and its gradient
    only disturbs the reconstruction; VQGAN starts it once reconstructions are recognisable.
    Set at every epoch's start, so a resumed run is switched the same way.
    """

    def __init__(self, start_epoch=0):
        super().__init__()
        self.start_epoch = int(start_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_adversarial_active(epoch >= self.start_epoch)


class CancelFlag(keras.callbacks.Callback):
    """Stops training after the current batch once the run's ``cancel`` file exists.

    Custom: Keras has no callback that watches for a stop request from another process.
    """

    def __init__(self, ctx: RunContext):
        super().__init__()
        self.ctx = ctx

    def _check(self):
        if not self.ctx.cancelled and self.ctx.run.cancel_requested():
            self.ctx.cancelled = True
            self.model.stop_training = True
            self.ctx.logger.info("cancel flag seen: stopping after the current batch")

    def on_epoch_begin(self, epoch, logs=None):
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        self._check()


class StatusReporter(keras.callbacks.Callback):
    """Writes ``status.json`` (epoch, batch, ETA) at most every ``every_s`` seconds and at
    each epoch's start; forwards batch progress to ``ctx.progress``.

    Custom: the status file is how the Train page (another process) follows the job.
    """

    def __init__(self, ctx: RunContext, every_s: float = 2.0):
        super().__init__()
        self.ctx, self.every_s = ctx, every_s
        self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.ctx.epoch_started = time.perf_counter()
        self._epoch = epoch
        self.ctx.run.write_status(
            "running", stage=self.ctx.stage, epoch=epoch, epochs=self.ctx.epochs,
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
            self.ctx.run.write_status(batch=batch + 1, eta_s=eta)


class MetricsCSV(keras.callbacks.Callback):
    """Appends one row per completed epoch (``epoch``, train terms, ``val_`` terms, ``seconds``)
    to the stage's CSV through :meth:`RunFolder.append_metrics`.  A cancelled (partial) epoch
    gets no row.

    Custom, not ``keras.callbacks.CSVLogger(append=True)``: that one writes 0-based epochs in
    sorted columns without the epoch time, and also the row of a cancelled partial epoch.
    """

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
        self.ctx.run.append_metrics({"epoch": epoch + 1, **logs, "seconds": round(seconds, 3)},
                                    self.ctx.metrics_file)
        self.ctx.logger.info(
            "%s epoch %d/%d: %s (%.1f s)", self.ctx.stage, epoch + 1, self.ctx.epochs,
            ", ".join(f"{k}={v:.4g}" for k, v in logs.items()), seconds,
        )


class EarlyStoppingOnVal(keras.callbacks.EarlyStopping):
    """Keras' ``EarlyStopping`` on ``val_loss`` (``loss`` without a validation split).

    What it adds, so a run behaves the same whether or not it was stopped and resumed:
    ``best``/``wait`` start from ``ctx`` (Keras resets them at each ``fit``) and go back to it
    for the resume point; ``patience`` 0 disables it; a cancelled partial epoch and a
    non-finite loss are not counted.  The best weights are not restored: they would not
    survive a resume, so the model is always the last checkpoint.
    """

    def __init__(self, ctx: RunContext, patience: int, min_delta: float = 0.0):
        super().__init__(monitor="val_loss", patience=int(patience), min_delta=min_delta, mode="min")
        self.ctx = ctx
        self.best, self.wait = ctx.best, ctx.wait

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best, self.wait = self.ctx.best, self.ctx.wait

    def get_monitor_value(self, logs):
        logs = _scalar_logs(logs)
        value = logs.get("val_loss", logs.get("loss"))
        return value if value is not None and math.isfinite(value) else None

    def on_epoch_end(self, epoch, logs=None):
        if self.ctx.cancelled or self.patience <= 0:
            return
        super().on_epoch_end(epoch, logs)
        self.ctx.best = None if self.best is None else float(self.best)
        self.ctx.wait = int(self.wait)
        if self.model.stop_training and not self.ctx.stopped_early:
            self.ctx.stopped_early = True
            self.ctx.logger.info(
                "early stopping after epoch %d: no val_loss improvement for %d epochs (best %.5g)",
                epoch + 1, self.patience, self.ctx.best,
            )


class SampleGrid(keras.callbacks.Callback):
    """Writes ``samples/<prefix>_NNNN.png`` grids after completed epochs.

    Custom: Keras has no image-writing callback (``TensorBoard`` logs images only to its own files).

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
        write_grids(self.ctx.run, self.grids, done, self.ctx.logger)


def write_grids(run: RunFolder | str | Path, grids: dict, epoch: int, logger=None) -> None:
    """Write each ``{prefix: callable() -> PNG bytes}`` to ``samples/<prefix>_NNNN.png`` (atomically)."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    run.samples_dir.mkdir(exist_ok=True)
    for prefix, make in grids.items():
        try:
            data = make()
        except Exception as exc:  # noqa: BLE001 — a sample grid must never stop training
            if logger:
                logger.warning("could not draw %s grid at epoch %d: %s", prefix, epoch, exc)
            continue
        write_bytes_atomic(run.image_path(prefix, epoch), data)


class Checkpoint(keras.callbacks.Callback):
    """Commit point of an epoch: saves the model atomically, then the resume point (epoch,
    early-stopping state), then ``status.json`` (epoch, ETA).

    A cancelled partial epoch still saves the model (its weights moved on) but not the
    epoch count, so a resume redoes that epoch with continuous numbering.

    Custom, not ``keras.callbacks.BackupAndRestore``: that one overwrites its weights file in
    place (a ``kill -9`` mid-write tears it), keeps no early-stopping state and deletes its
    backup when ``fit`` ends; the app reads ``model.keras``, which must be whole at every moment.
    """

    def __init__(self, ctx: RunContext, extra_state: dict | None = None):
        super().__init__()
        self.ctx = ctx
        self.extra_state = extra_state or {}

    def on_epoch_end(self, epoch, logs=None):
        ctx, p = self.ctx, self.ctx.state_prefix
        checkpoints.save_model_atomic(self.model, ctx.run.path / ctx.model_file)
        if ctx.cancelled:
            return
        done = epoch + 1
        ctx.run.write_resume(
            stage=ctx.stage, **{f"{p}epoch": done, f"{p}best": ctx.best, f"{p}wait": ctx.wait},
            **self.extra_state,
        )
        ctx.run.write_status(
            "running", stage=ctx.stage, epoch=done, epochs=ctx.epochs,
            batch=ctx.batches, batches=ctx.batches, eta_s=ctx.eta_s(done),
            last={k: v for k, v in ctx.last_logs.items()},
        )
        ctx.emit(kind="epoch", epoch=done, logs=ctx.last_logs)
