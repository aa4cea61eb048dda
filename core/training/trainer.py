"""Train a run folder in the foreground: input pipeline, device, callbacks, resume, VQ-VAE prior.

:func:`train_run` is what ``python -m core train`` (and so every background job) runs.  It
takes the run's lock, reads ``config.json`` (already checked when the run was made: it is not
checked again here), trains the model (a VQ-VAE then its PixelCNN prior), and keeps
``status.json``/``metrics.csv``/``model.keras`` current so the Train page can follow it from
another process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import UserError
from core.training import checkpoints
from core.training.runs import PRIOR_METRICS, RunData, RunFolder

__all__ = ["train_run", "image_dataset", "index_dataset", "fixed_slices", "grid_conditions"]

#: Arrays up to this size are put in memory as one tensor; larger ones are read per batch
#: from the memory-mapped cache.
IN_MEMORY_BYTES = 512 * 2**20


# ---------------------------------------------------------------------------- input pipeline
def image_dataset(images: np.ndarray, batch_size: int, shuffle: bool = True, seed: int | None = 0,
                  drop_remainder: bool = False, conditions: np.ndarray | None = None,
                  augment: dict | None = None):
    """``tf.data`` pipeline of ``(B, S, S, 1)`` float32 batches from ``(N, S, S)`` images.

    Small arrays become one in-memory tensor (``from_tensor_slices``); large memory-mapped
    caches are shuffled by index and gathered per batch (sorted indices, so reads are mostly
    sequential).  Shuffled each epoch, batched, prefetched (``AUTOTUNE``).  With
    ``conditions`` (``(N, C)`` float32, one row per image) the batches are
    ``(images, conditions)`` pairs, shuffled together (a conditional VAE).  With ``augment``
    (strengths, :data:`core.training.augment.AUGMENT_DEFAULTS`) each batch is augmented anew
    every epoch (:func:`core.training.augment.augment_batch`); training data only.
    """
    import tensorflow as tf

    n, h, w = images.shape
    if conditions is not None:
        conditions = np.ascontiguousarray(conditions, dtype=np.float32)
        if len(conditions) != n:
            raise UserError(f"{len(conditions)} conditions for {n} images")
    if images.nbytes <= IN_MEMORY_BYTES:
        x = np.ascontiguousarray(images, dtype=np.float32)
        ds = tf.data.Dataset.from_tensor_slices(x if conditions is None else (x, conditions))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if conditions is None:
            ds = ds.map(lambda x: x[..., None], num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda x, c: (x[..., None], c), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        def gather(idx):
            idx = np.sort(idx)
            return np.asarray(images[idx], dtype=np.float32)[..., None]

        def gather_with(idx):
            idx = np.sort(idx)
            return np.asarray(images[idx], dtype=np.float32)[..., None], conditions[idx]

        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if conditions is None:
            ds = ds.map(
                lambda idx: tf.ensure_shape(tf.numpy_function(gather, [idx], tf.float32), [None, h, w, 1]),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            dim = conditions.shape[1]

            def pair(idx):
                x, c = tf.numpy_function(gather_with, [idx], (tf.float32, tf.float32))
                return tf.ensure_shape(x, [None, h, w, 1]), tf.ensure_shape(c, [None, dim])

            ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        from core.training.augment import augment_batch

        # One generator whose state advances across epochs (a global seed would make plain
        # tf.random ops repeat their draws every epoch); a sequential map keeps it reproducible.
        rng = tf.random.Generator.from_seed(0 if seed is None else int(seed))
        if conditions is None:
            ds = ds.map(lambda x: augment_batch(x, augment, rng=rng))
        else:
            ds = ds.map(lambda x, c: (augment_batch(x, augment, rng=rng), c))
    return ds.prefetch(tf.data.AUTOTUNE)


def index_dataset(indices: np.ndarray, batch_size: int, shuffle: bool = True, seed: int | None = 0,
                  drop_remainder: bool = False, conditions: np.ndarray | None = None):
    """``tf.data`` pipeline of ``(B, h, w)`` int32 code grids for the prior; with ``conditions``
    (``(N, C)`` float32, one row per grid) ``(grids, conditions)`` pairs, shuffled together
    (a conditional prior)."""
    import tensorflow as tf

    indices = np.asarray(indices, dtype=np.int32)
    if conditions is not None:
        conditions = np.ascontiguousarray(conditions, dtype=np.float32)
        if len(conditions) != len(indices):
            raise UserError(f"{len(conditions)} conditions for {len(indices)} code grids")
    ds = tf.data.Dataset.from_tensor_slices(indices if conditions is None else (indices, conditions))
    if shuffle:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _fixed_index(train, val, n: int = 8) -> tuple[str, np.ndarray]:
    split, source = ("val", val) if len(val) else ("train", train)
    return split, np.unique(np.linspace(0, len(source) - 1, num=min(n, len(source))).round().astype(int))


def fixed_slices(train: np.ndarray, val: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` evenly spaced validation images (training images if there is no validation split),
    the same every epoch: ``(n, S, S)`` float32."""
    split, idx = _fixed_index(train, val, n)
    return np.asarray((val if split == "val" else train)[idx], dtype=np.float32)


# ---------------------------------------------------------------------------- grids
def _upscale(size: int) -> int:
    return max(1, 128 // max(1, size))


def _sample_png(model, n=16, seed=0, condition=None):
    from core.viz.images import grid_png

    images = model.sample(n, seed=seed) if condition is None else model.sample(n, seed=seed, condition=condition)
    return grid_png(images, ncols=8, upscale=_upscale(images.shape[1]))


def _recon_png(model, originals, condition=None):
    """Originals (top row) above their reconstructions (bottom row)."""
    from core.viz.images import grid_png

    recon = (model.reconstruct(originals) if condition is None
             else model.reconstruct(originals, condition=condition))[..., 0]
    both = np.concatenate([originals, recon])
    return grid_png(both, ncols=len(originals), upscale=_upscale(originals.shape[1]))


# ---------------------------------------------------------------------------- logging, signals
def _run_logger(run: RunFolder) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger("latentbrain.training")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(run.log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return logger, handler


@contextlib.contextmanager
def _sigterm_cancels(run: RunFolder):
    """While training, SIGTERM asks for a clean stop (same as the cancel flag)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        run.request_cancel()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- training
def train_run(run_dir: str | Path, resume: bool = False, progress: Callable | None = None) -> dict:
    """Train the run in ``run_dir`` (made by :func:`core.training.runs.prepare_run`) in this process.

    Args:
        run_dir: the run folder; its ``config.json`` says what to train on which dataset.
        resume: continue from the last checkpoint (``resume.json`` + ``model.keras``); without
            it a run that already has a checkpoint is refused.
        progress: optional ``callable(event: dict)`` with ``kind`` ``"batch"``/``"epoch"``/
            ``"stage"`` events (the CLI's progress bar).

    Returns:
        The final status dict (``state`` finished or cancelled).

    Raises:
        UserError: locked run, changed or corrupt dataset, bad config...  The status says
        ``failed`` with the message; the last good model is kept.
    """
    data = RunData.open(run_dir)
    run = data.folder
    run.acquire_lock()
    logger, handler = _run_logger(run)
    try:
        with _sigterm_cancels(run):
            return _train_locked(data, resume, progress, logger)
    except KeyboardInterrupt:
        run.write_status("cancelled", pid=os.getpid(), message="interrupted (Ctrl-C); resume to continue")
        logger.info("interrupted by Ctrl-C")
        raise
    except UserError as exc:
        run.write_status("failed", pid=os.getpid(), message=str(exc))
        logger.error("failed: %s", exc)
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        run.write_status("failed", pid=os.getpid(), message=message[:500])
        logger.exception("failed")
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()
        run.release_lock()


def _train_locked(data: RunData, resume, progress, logger) -> dict:
    from core.training.device import setup_device

    run, config = data.folder, data.config
    state = run.read_resume()
    if state and not resume:
        raise UserError(
            f"run {run.name} already has a checkpoint (epoch {state.get('epoch', 0)}): resume it"
        )
    _drop_old_cancel_flag(run)

    dataset = data.dataset_info
    data.check_dataset()
    train = data.images("train")
    val = data.images("val")
    if len(train) < config["batch_size"]:
        raise UserError(f"batch_size ({config['batch_size']}) is larger than the training set ({len(train)} images)")
    conditions = _conditions(data) if data.conditional else None

    setup = setup_device(config.get("mixed_precision", False))
    run.write_status("running", pid=os.getpid(), device=setup.description,
                     message="resuming" if state else "starting", started=time.time())
    logger.info("run %s: %s %s on %s (%d train, %d val images), device %s%s", run.name,
                config["model_type"], config["preset"], dataset["path"], len(train), len(val),
                setup.description, "; resuming" if state else "")
    for note in setup.notes:
        logger.info(note)

    fixed = fixed_slices(train, val)
    if conditions is not None:
        split, idx = _fixed_index(train, val)
        conditions["fixed"] = conditions[split][idx]
        logger.info("conditional on age, sex and slice position (slices %d..%d); sample grid: %s",
                    config["slice_range"][0], config["slice_range"][1] - 1, GRID_CONDITION_NOTE)
    ctx = _stage_one(run, config, state, setup, train, val, fixed, progress, logger, conditions)
    if ctx.cancelled:
        return _finish(run, "cancelled", ctx, logger)
    if config["model_type"] == "vqvae" and config.get("prior_epochs", 0) > 0:
        ctx = _stage_prior(run, config, setup, train, val, progress, logger, conditions)
        if ctx.cancelled:
            return _finish(run, "cancelled", ctx, logger)
    return _finish(run, "finished", ctx, logger)


#: What the per-epoch sample grid of a conditional run shows (see :func:`grid_conditions`).
GRID_CONDITION_NOTE = "8 slice positions left to right; top row age 35 F, bottom row age 75 M"


def grid_conditions(slice_range, ncols: int = 8) -> list[dict]:
    """The fixed conditions of a conditional run's per-epoch sample grid (2 rows of ``ncols``):
    slice positions evenly spaced over ``slice_range`` left to right, the top row a 35-year-old
    woman, the bottom row a 75-year-old man.  The same every epoch, so grids compare.

    >>> [c["slice"] for c in grid_conditions((0, 8), 4)]
    [0, 2, 5, 7, 0, 2, 5, 7]
    """
    start, stop = (int(v) for v in slice_range)
    slices = [int(v) for v in np.linspace(start, stop - 1, ncols).round()]
    return ([{"age": 35, "sex": "F", "slice": s} for s in slices]
            + [{"age": 75, "sex": "M", "slice": s} for s in slices])


def _conditions(data: RunData) -> dict:
    """Condition vectors of the train and val slices of a conditional run, read (and refused
    with a UserError if demographics are missing) before any training starts."""
    config, manifest = data.config, data.manifest
    spec_range = [int(manifest["spec"]["start"]), int(manifest["spec"]["stop"])]
    if list(config.get("slice_range") or spec_range) != spec_range:
        raise UserError(f"run slice_range {config['slice_range']} does not match the dataset's {spec_range}")
    config["slice_range"] = spec_range
    try:
        return {split: data.conditions(split) for split in ("train", "val")}
    except UserError as exc:
        raise UserError(f"conditional=true needs the age and sex of every subject: {exc}") from exc


def _drop_old_cancel_flag(run: RunFolder) -> None:
    """Remove a stop request left by an earlier job (older than this job's launch); a request
    made while this job was starting up is kept."""
    try:
        started = float(os.environ.get("LATENTBRAIN_JOB_STARTED", "inf"))
    except ValueError:
        started = math.inf
    run.clear_cancel(older_than=started)


def _finish(run: RunFolder, state, ctx, logger) -> dict:
    done = run.read_resume().get(f"{ctx.state_prefix}epoch", 0)
    if state == "cancelled":
        message = f"cancelled in the {ctx.stage} stage after epoch {done}; resume to continue"
    elif ctx.stopped_early:
        best = "" if ctx.best is None else f" (best val loss {ctx.best:.5g})"
        message = f"finished: early stopping at {ctx.stage} epoch {done}{best}"
    else:
        message = "finished"
    logger.info(message)
    return run.write_status(state, message=message, eta_s=0 if state == "finished" else None)


def _compile(model, learning_rate, config):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=config.get("jit_compile", "auto"))


def _load_or_build(path, resumed_epoch, build, learning_rate, config, setup, logger):
    with setup.strategy.scope():
        if resumed_epoch > 0 and path.is_file():
            model = checkpoints.load_keras(path, compile=True)
            if getattr(model, "optimizer", None) is None:
                _compile(model, learning_rate, config)
            logger.info("resumed %s after epoch %d", path.name, resumed_epoch)
        else:
            model = build()
            _compile(model, learning_rate, config)
    return model


def _callbacks(ctx, grids, every=1, patience=0, tensorboard_dir=None):
    from core.training import callbacks as cb

    out = [cb.CancelFlag(ctx), cb.StatusReporter(ctx), cb.MetricsCSV(ctx),
           cb.EarlyStoppingOnVal(ctx, patience), cb.SampleGrid(ctx, grids, every),
           cb.Checkpoint(ctx)]
    if tensorboard_dir is not None:
        import keras

        out.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    return out


def _stage_one(run: RunFolder, config, state, setup, train, val, fixed, progress, logger, conditions=None):
    """The VAE, or the VQ-VAE before its prior."""
    from core.models.factory import build_model
    from core.training import callbacks as cb

    stage = config["model_type"]
    done = int(state.get("epoch", 0)) if state else 0
    run.trim_metrics(done)
    epochs = int(config["epochs"])
    batches = len(train) // config["batch_size"]
    ctx = cb.RunContext(run, stage, epochs, progress=progress, batches=batches, logger=logger,
                        best=state.get("best"), wait=int(state.get("wait") or 0))
    if state.get("stage") == "prior" or state.get("vqvae_done") or state.get("stopped_early"):
        ctx.stopped_early = bool(state.get("stopped_early"))
        return ctx  # this stage is complete
    if done >= epochs:
        return ctx
    model = _load_or_build(run.model_path, done, lambda: build_model(config),
                           config["learning_rate"], config, setup, logger)
    # A conditional VQ-VAE conditions only its prior (next stage): its VQ-VAE trains on images alone.
    cond = (conditions or {}) if stage == "vae" else {}
    grids = {"recon": lambda: _recon_png(model, fixed, cond.get("fixed"))}
    if stage == "vae":
        grid = grid_conditions(config["slice_range"]) if conditions is not None else None
        grids["epoch"] = lambda: _sample_png(model, condition=grid)
    else:  # no prior yet: show reconstructions of the fixed validation slices
        grids["epoch"] = grids["recon"]
    callbacks = _callbacks(ctx, grids, patience=config["early_stopping_patience"],
                           tensorboard_dir=run.path / "tensorboard" / stage if config.get("tensorboard") else None)
    if stage == "vae":
        callbacks.insert(0, cb.KLBetaSchedule(config["kl_schedule"], config["warmup_epochs"],
                                              config["beta"], config["cycle_epochs"]))
    if getattr(model, "adversary", None) is not None:
        callbacks.insert(0, cb.AdversarialWarmup(config.get("adversarial_start_epoch", 0)))
    train_ds = image_dataset(train, config["batch_size"], seed=config.get("seed"), drop_remainder=True,
                             conditions=cond.get("train"), augment=config.get("augment") or None)
    val_ds = image_dataset(val, config["batch_size"], shuffle=False, conditions=cond.get("val")) if len(val) else None
    ctx.emit(kind="stage", epoch=done)
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=done, callbacks=callbacks, shuffle=False, verbose=0)
    if ctx.stopped_early:
        run.write_resume(stopped_early=True)
    return ctx


def _stage_prior(run: RunFolder, config, setup, train, val, progress, logger, conditions=None):
    """Encode the data to code grids with the trained VQ-VAE and fit its prior
    (a conditional prior on the grids' ``conditions["train"]``/``["val"]``)."""
    from core.models.factory import prior_for
    from core.training import callbacks as cb

    state = run.read_resume()
    done = int(state.get("prior_epoch", 0))
    if state.get("stage") != "prior":
        run.write_resume(stage="prior", vqvae_done=True, prior_epoch=0)
        run.clear_metrics(PRIOR_METRICS)
        done = 0
    run.trim_metrics(done, PRIOR_METRICS)
    epochs = int(config["prior_epochs"])
    run.write_status("running", stage="prior", epoch=done, epochs=epochs,
                     message="encoding the dataset to code grids")
    vqvae = checkpoints.load_keras(run.model_path, compile=False)
    t0 = time.perf_counter()
    train_codes = vqvae.code_indices(train)
    val_codes = vqvae.code_indices(val) if len(val) else None
    logger.info("encoded %d train and %d val images to %s code grids in %.1f s", len(train_codes),
                0 if val_codes is None else len(val_codes), train_codes.shape[1:], time.perf_counter() - t0)
    cond = conditions or {}
    grid = grid_conditions(config["slice_range"]) if conditions is not None else None
    batch = min(int(config["prior_batch_size"]), len(train_codes))
    ctx = cb.RunContext(run, "prior", epochs, metrics_file=PRIOR_METRICS, model_file=checkpoints.PRIOR,
                        state_prefix="prior_", progress=progress, batches=len(train_codes) // batch,
                        logger=logger, best=state.get("prior_best"), wait=int(state.get("prior_wait") or 0))
    if state.get("prior_stopped_early"):
        ctx.stopped_early = True
    if done < epochs and not ctx.stopped_early:
        prior = _load_or_build(run.prior_path, done, lambda: prior_for(config, vqvae),
                               config["prior_learning_rate"], config, setup, logger)

        def prior_samples():
            vqvae.attach_prior(prior)
            return _sample_png(vqvae, condition=grid)

        callbacks = _callbacks(ctx, {"prior": prior_samples}, every=5,
                               patience=config["prior_early_stopping_patience"],
                               tensorboard_dir=run.path / "tensorboard" / "prior" if config.get("tensorboard") else None)
        ctx.emit(kind="stage", epoch=done)
        prior.fit(index_dataset(train_codes, batch, seed=config.get("seed"), drop_remainder=True,
                                conditions=cond.get("train")),
                  validation_data=None if val_codes is None else index_dataset(
                      val_codes, batch, shuffle=False, conditions=cond.get("val")),
                  epochs=epochs, initial_epoch=done, callbacks=callbacks, shuffle=False, verbose=0)
        if ctx.cancelled:
            return ctx
        if ctx.stopped_early:
            run.write_resume(prior_stopped_early=True)
    # The generative model: VQ-VAE with its prior attached, saved as one file too.
    prior = checkpoints.load_keras(run.prior_path, compile=False)
    vqvae.attach_prior(prior)
    checkpoints.save_model_atomic(vqvae, run.model_path)
    final = run.read_resume().get("prior_epoch", epochs)
    cb.write_grids(run, {"prior": lambda: _sample_png(vqvae, condition=grid)}, final, logger)
    return ctx
