"""VQ-VAE ablation curves on real heads (issue 20): codebook health and reconstruction per epoch.

Each variant is the ``demo`` VQ-VAE with one setting changed, trained for the same number of
epochs from the same seed on ``real_dev`` (12 real heads, ``bench/cohorts.py``); every
``--every`` epochs it records, on the **test subjects** (never trained on): SSIM, PSNR and
sharpness of the reconstructions (Laplacian variance ÷ real), and on the training slices the
codebook perplexity (effective number of codes) and the fraction of codes used.  Samples are
not judged here (``bench/quality.py`` does that with the strict judge); this is where the
choices of the ``demo`` preset come from and what limits them.

Variants (``VARIANTS``): ``before`` (issue 17's codebook: 32-d codes, dead-code restarts
below 3 % of a code's share, squared error), ``codebook`` (8-d codes, restarts below 50 %),
``l1`` (+ L1), ``adversarial`` (+ discriminator and feature matching, today's preset),
``adversarial_strong`` (weight 0.5 instead of 0.1), ``augment`` (today's preset + augmentation),
``wide`` (``l1`` with twice the channels).

Usage: ``python bench/vq_ablation.py [--variants before,l1] [--epochs 80] [--every 10]``.
Prints provenance, a table, and as its last line a JSON object (keys ``vq_ablation_<variant>_<figure>``
for the last epoch, plus ``..._curve`` lists).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cohorts import REAL_DEV, cohort_dataset  # noqa: E402
from quality import VQ_BEFORE, codebook_figures  # noqa: E402
from run_all import machine_label  # noqa: E402

from core.data.dataset import load_split_images  # noqa: E402
from core.evaluation import compute_psnr, compute_sharpness, compute_ssim  # noqa: E402
from core.models import build_model, get_preset  # noqa: E402
from core.training.augment import check_augment  # noqa: E402
from core.training.callbacks import AdversarialWarmup  # noqa: E402
from core.training.trainer import image_dataset  # noqa: E402

_CODEBOOK = {**VQ_BEFORE, "embedding_dim": 8, "restart_threshold": 0.5}
_L1 = {**_CODEBOOK, "recon_loss": "l1"}
_ADVERSARIAL = {**_L1, "adversarial_weight": 0.1, "feature_matching_weight": 1.0}
VARIANTS = {
    "before": VQ_BEFORE,
    "codebook": _CODEBOOK,
    "l1": _L1,
    "adversarial": _ADVERSARIAL,
    "adversarial_strong": {**_ADVERSARIAL, "adversarial_weight": 0.5},
    "augment": {**_ADVERSARIAL, "augment": True},
    "wide": {**_L1, "filters": [64, 128], "res_filters": 128},
}


class _Probe(keras.callbacks.Callback):
    """Test-subject reconstruction and training-slice codebook figures every ``every`` epochs."""

    def __init__(self, train, test, every):
        super().__init__()
        self.train, self.test, self.every = train, test, every
        self.rows = []

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        recon = self.model.reconstruct(self.test)
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self.started, 1),
               "ssim": float(compute_ssim(self.test, recon).mean()),
               "psnr_db": float(compute_psnr(self.test, recon).mean()),
               "sharpness_ratio": float(compute_sharpness(recon, self.test)),
               **codebook_figures(self.model, self.train)}
        self.rows.append(row)
        print(f"    epoch {row['epoch']:>3}: SSIM {row['ssim']:.3f}, PSNR {row['psnr_db']:.2f}, "
              f"sharpness {row['sharpness_ratio']:.2f}, perplexity {row['perplexity']:.1f}, "
              f"used {row['codes_used']:.2f}", flush=True)


def run_variant(overrides, train, test, epochs, every):
    config = {**get_preset("vqvae", "demo"), **overrides}
    config["augment"] = check_augment(config.get("augment"))
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    probe = _Probe(train, test, every)
    callbacks = [probe]
    if model.adversary is not None:
        callbacks.append(AdversarialWarmup(config["adversarial_start_epoch"]))
    data = image_dataset(train[..., 0], config["batch_size"], seed=0, augment=config["augment"])
    model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    return probe.rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    print(f"# command: python bench/vq_ablation.py {shlex.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# started: {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# machine: {machine_label()}", flush=True)
    dataset = cohort_dataset("real_dev")
    if dataset is None:
        print(f"{REAL_DEV} is absent here, nothing measured")
        print(json.dumps({}))
        return 0
    train = np.asarray(load_split_images(dataset, "train"))[..., None]
    test = np.asarray(load_split_images(dataset, "test"))[..., None]
    print(f"real_dev: {len(train)} train / {len(test)} test slices (test subjects unseen); "
          f"{args.epochs} epochs per variant", flush=True)
    out, last = {"vq_ablation_epochs": args.epochs}, {}
    for name in names:
        print(f"  {name}: {json.dumps({k: v for k, v in VARIANTS[name].items() if k != 'augment'} | {'augment': bool(VARIANTS[name].get('augment'))})}", flush=True)
        rows = run_variant(VARIANTS[name], train, test, args.epochs, args.every)
        last[name] = rows[-1]
        for key in ("ssim", "psnr_db", "sharpness_ratio", "perplexity", "codes_used", "seconds"):
            out[f"vq_ablation_{name}_{key}"] = round(rows[-1][key], 4)
            out[f"vq_ablation_{name}_{key}_curve"] = [round(r[key], 4) for r in rows]
        out[f"vq_ablation_{name}_epoch_curve"] = [r["epoch"] for r in rows]
    print("\n| variant | test SSIM | PSNR dB | sharpness ÷ real | perplexity | codes used |\n|---|---|---|---|---|---|")
    for name, r in last.items():
        print(f"| {name} | {r['ssim']:.3f} | {r['psnr_db']:.2f} | {r['sharpness_ratio']:.2f} | "
              f"{r['perplexity']:.1f} | {r['codes_used']:.2f} |")
    print(f"# finished: {time.strftime('%Y-%m-%d %H:%M')}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
