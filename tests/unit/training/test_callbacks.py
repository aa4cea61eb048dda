"""Callbacks in isolation: early stopping state, KL warm-up, metrics rows."""

from __future__ import annotations

import types

import numpy as np

from core.training import callbacks as cb
from core.training import runs


def _ctx(tmp_path, epochs=10):
    return cb.RunContext(tmp_path, "vae", epochs)


def test_early_stopping_counts_epochs_without_improvement(tmp_path):
    ctx = _ctx(tmp_path)
    stop = cb.EarlyStoppingOnVal(ctx, patience=2)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    for epoch, value in enumerate([5.0, 4.0, 4.5, 4.2]):
        stop.on_epoch_end(epoch, {"loss": 1.0, "val_loss": value})
    assert ctx.stopped_early and stop.model.stop_training and ctx.best == 4.0 and ctx.wait == 2


def test_early_stopping_resumes_from_saved_state(tmp_path):
    ctx = _ctx(tmp_path)
    ctx.best, ctx.wait = 1.0, 1  # as restored from state.json
    stop = cb.EarlyStoppingOnVal(ctx, patience=2)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    stop.on_epoch_end(5, {"val_loss": 1.5})
    assert ctx.stopped_early


def test_patience_zero_never_stops(tmp_path):
    ctx = _ctx(tmp_path)
    stop = cb.EarlyStoppingOnVal(ctx, patience=0)
    stop.set_model(types.SimpleNamespace(stop_training=False))
    for epoch in range(5):
        stop.on_epoch_end(epoch, {"val_loss": 1.0 + epoch})
    assert not ctx.stopped_early


def test_kl_beta_schedule_sets_the_variable():
    import keras

    model = types.SimpleNamespace(beta=keras.Variable(0.0))
    schedule = cb.KLBetaSchedule("linear", warmup_epochs=4, beta_max=2.0)
    schedule.set_model(model)
    schedule.on_epoch_begin(1)
    assert float(np.asarray(model.beta)) == 1.0


def test_metrics_rows_keep_their_header_and_skip_partial_epochs(tmp_path):
    ctx = _ctx(tmp_path)
    writer = cb.MetricsCSV(ctx)
    writer.on_epoch_end(0, {"loss": 2.0, "val_loss": 3.0, "kl": 1.0})
    writer.on_epoch_end(1, {"kl": 0.5, "loss": 1.0, "val_loss": 2.0})
    ctx.cancelled = True
    writer.on_epoch_end(2, {"kl": 0.1, "loss": 0.5, "val_loss": 1.0})
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,kl,val_loss,seconds"
    frame = runs.read_metrics(tmp_path)
    assert list(frame["epoch"]) == [1, 2] and list(frame["kl"]) == [1.0, 0.5]
