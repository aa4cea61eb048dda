"""Quality benchmark: our ELBO against the thesis' loss, same architecture, same wall time.

On the demo cohort (the thesis' slice range, 64 px), train the ``demo`` VAE twice for the
same wall-clock budget — once with our loss (summed reconstruction + beta·KL with warm-up
and free bits), once with the 2023 thesis' ``1000·mean-MSE + KL`` — and the ``demo`` VQ-VAE
with its PixelCNN prior.  Measured on the *test subjects* (never seen in training):

- reconstruction SSIM and PSNR,
- active latent units (mean KL per unit > 0.01 nats) and KL in nats per image,
- sample sharpness: mean Laplacian variance of 64 samples ÷ that of the real test slices.

Usage: ``python bench/quality.py [--quick] [--budget-s 240] [--figures DIR]``.
Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from core.data.dataset import build_dataset, load_split_images  # noqa: E402
from core.data.demo import build_demo_cohort  # noqa: E402
from core.data.slices import thesis_spec  # noqa: E402
from core.data.volumes import load_volume, scan_source  # noqa: E402
from core.evaluation import compute_psnr, compute_sharpness, compute_ssim  # noqa: E402
from core.models import active_units, build_model, build_prior, get_preset, kl_beta_schedule, kl_per_unit  # noqa: E402
from core.viz.images import grid_png  # noqa: E402


class _WallClock(keras.callbacks.Callback):
    """Stop training once ``budget_s`` seconds have passed (checked after each batch)."""

    def __init__(self, budget_s: float):
        super().__init__()
        self.budget_s = budget_s
        self.epochs = 0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started > self.budget_s:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1


class _BetaSchedule(keras.callbacks.Callback):
    """The KL warm-up the training engine applies, epoch by epoch."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config

    def on_epoch_begin(self, epoch, logs=None):
        c = self.config
        self.model.beta.assign(kl_beta_schedule(epoch, c["kl_schedule"], c["warmup_epochs"], c["beta"],
                                                c["cycle_epochs"]))


def demo_dataset(size: int) -> Path:
    """The thesis' slice range on the demo cohort, split by subject 70/10/20."""
    cohort = build_demo_cohort()
    entries = scan_source(cohort)
    spec = thesis_spec(load_volume(entries[0]), size=size)
    return build_dataset(entries, spec, fractions=(0.7, 0.1, 0.2), seed=0).path


def train_vae(train, config, budget_s):
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    clock = _WallClock(budget_s)
    callbacks = [clock] + ([_BetaSchedule(config)] if config.get("loss_mode") != "thesis" else [])
    started = time.perf_counter()
    history = model.fit(train, batch_size=config["batch_size"], epochs=10_000, verbose=0,
                        shuffle=True, callbacks=callbacks)
    return model, clock.epochs, time.perf_counter() - started, history.history


def evaluate_vae(model, test):
    recon = model.reconstruct(test)
    kl_units = kl_per_unit(model, test)
    samples = model.sample(64, seed=0)
    return {
        "ssim": float(compute_ssim(test, recon).mean()),
        "psnr_db": float(compute_psnr(test, recon).mean()),
        "active_units": active_units(model, test),
        "kl_nats": float(kl_units.sum()),
        "sharpness": compute_sharpness(samples, test),
    }, recon, samples


def train_vqvae(train, config, budget_s, prior_budget_s):
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    clock = _WallClock(budget_s)
    started = time.perf_counter()
    history = model.fit(train, batch_size=config["batch_size"], epochs=10_000, verbose=0, shuffle=True,
                        callbacks=[clock])
    indices = model.code_indices(train)
    prior = build_prior(config)
    prior.compile(optimizer=keras.optimizers.Adam(config["prior_learning_rate"]))
    prior_clock = _WallClock(prior_budget_s)
    prior.fit(indices, batch_size=config["prior_batch_size"], epochs=10_000, verbose=0, shuffle=True,
              callbacks=[prior_clock])
    model.attach_prior(prior)
    return model, clock.epochs, prior_clock.epochs, time.perf_counter() - started, history.history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute per model")
    parser.add_argument("--budget-s", type=float, default=240.0, help="training seconds per VAE")
    parser.add_argument("--figures", type=Path, default=None, help="save sample/recon grids here")
    args = parser.parse_args(argv)
    budget = 20.0 if args.quick else args.budget_s

    dataset = demo_dataset(size=64)
    train = np.asarray(load_split_images(dataset, "train"))[..., None]
    test = np.asarray(load_split_images(dataset, "test"))[..., None]
    print(f"dataset {dataset}: {len(train)} train / {len(test)} test slices (test subjects unseen)")

    rows, figures = {}, {}
    for name, overrides in (("ours", {}), ("thesis_loss", {"loss_mode": "thesis"})):
        config = {**get_preset("vae", "demo"), **overrides}
        model, epochs, wall, history = train_vae(train, config, budget)
        metrics, recon, samples = evaluate_vae(model, test)
        rows[name] = {"epochs": epochs, "wall_s": wall, **metrics}
        figures[name] = (recon, samples)
        print(f"  trained VAE ({name}) {epochs} epochs in {wall:.0f} s", flush=True)

    vq_config = get_preset("vqvae", "demo")
    vq, epochs, prior_epochs, wall, _ = train_vqvae(train, vq_config, budget, budget / 2)
    vq_recon = vq.reconstruct(test)
    vq_samples = vq.sample(64, seed=0)
    rows["vqvae_prior"] = {
        "epochs": epochs, "prior_epochs": prior_epochs, "wall_s": wall,
        "ssim": float(compute_ssim(test, vq_recon).mean()),
        "psnr_db": float(compute_psnr(test, vq_recon).mean()),
        "active_units": None, "kl_nats": None,
        "sharpness": compute_sharpness(vq_samples, test),
    }
    figures["vqvae_prior"] = (vq_recon, vq_samples)

    header = f"{'model':<14}{'epochs':>8}{'wall s':>8}{'SSIM':>8}{'PSNR dB':>9}{'active':>8}{'KL nats':>9}{'sharp':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in rows.items():
        active = "–" if r["active_units"] is None else f"{r['active_units']}/{get_preset('vae', 'demo')['latent_dim']}"
        kl = "–" if r["kl_nats"] is None else f"{r['kl_nats']:.1f}"
        print(f"{name:<14}{r['epochs']:>8}{r['wall_s']:>8.0f}{r['ssim']:>8.3f}{r['psnr_db']:>9.2f}"
              f"{active:>8}{kl:>9}{r['sharpness']:>7.2f}")

    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for name, (recon, samples) in figures.items():
            (args.figures / f"quality_{name}_samples.png").write_bytes(grid_png(samples[:32], ncols=8, upscale=2))
            pairs = np.concatenate([test[:8], recon[:8]])
            (args.figures / f"quality_{name}_recon.png").write_bytes(grid_png(pairs, ncols=8, upscale=2))

    ours, thesis = rows["ours"], rows["thesis_loss"]
    summary = {
        "budget_s": budget,
        "ours_ssim": round(ours["ssim"], 4), "thesis_loss_ssim": round(thesis["ssim"], 4),
        "ours_active_units": ours["active_units"], "thesis_loss_active_units": thesis["active_units"],
        "ours_kl_nats": round(ours["kl_nats"], 2), "thesis_loss_kl_nats": round(thesis["kl_nats"], 2),
        "ours_sharpness_ratio": round(ours["sharpness"], 3),
        "thesis_loss_sharpness_ratio": round(thesis["sharpness"], 3),
        "vqvae_ssim": round(rows["vqvae_prior"]["ssim"], 4),
        "vqvae_sharpness_ratio": round(rows["vqvae_prior"]["sharpness"], 3),
        "ssim_gain_ratio": round(ours["ssim"] / max(thesis["ssim"], 1e-9), 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
