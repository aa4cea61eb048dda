"""VQ-VAE prior ablation (issue 10): does a wider receptive field stop the end-of-raster drift?

On a copy of the dev VQ-VAE run (default ``/work/devruns/vqvae-demo``, never modified) the
training, validation and test slices are encoded to code grids once; then PixelCNN priors of
several shapes are trained from the same seed for the SAME fixed number of epochs (so machine
load changes the seconds, not the result), each built by ``core.models.build_prior`` from the
run's config with ``prior_layers`` / ``prior_kernel_size`` overridden:

- ``L8k3``: the old ``demo`` prior (a position sees 9 rows up: not the top of a 16-row grid);
- ``L8k5``: the same depth with 5x5 masks (17 rows up: the whole grid);
- ``L16k3``: twice the depth with 3x3 masks (17 rows up); as slow as ``L8k5``, so only with
  ``--variants L8k3,L8k5,L16k3``.

Each is sampled at temperature 1.0 and 0.9 (same seed) and judged with the project's metric
functions: validation and test NLL (bits per code), the blotch rate
(``core.evaluation.blotches``, envelope from the training slices), the Fréchet distance in
the slice-position net's features to the test slices, and optionally (``--c2st``) the
classifier two-sample accuracy.  The run's own saved prior is judged too, as a reference.

Usage: ``python bench/prior.py [--variants L8k3,L8k5] [--epochs 6] [--samples 128] [--quick] [--c2st]``.
Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from core.data.dataset import load_manifest  # noqa: E402
from core.evaluation.blotches import BlotchDetector  # noqa: E402
from core.evaluation.c2st import classifier_two_sample_test  # noqa: E402
from core.evaluation.distances import frechet_distance  # noqa: E402
from core.evaluation.features import train_slice_position_net  # noqa: E402
from core.models import build_prior  # noqa: E402
from core.models.prior import raster_reach  # noqa: E402
from core.training.runs import RunData  # noqa: E402
from core.training.trainer import index_dataset  # noqa: E402

#: name -> (prior_layers, prior_kernel_size); the first is the baseline (the old demo prior).
VARIANTS = {"L8k3": (8, 3), "L8k5": (8, 5), "L16k3": (16, 3)}
DEFAULT_VARIANTS = "L8k3,L8k5"
TEMPERATURES = (1.0, 0.9)
LN2 = math.log(2.0)


class _EpochClock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t0)


def _load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def train_prior(config, layers_, kernel, train_codes, epochs):
    """A prior of the given shape, trained from seed 0 for ``epochs`` epochs: (prior, s/epoch list)."""
    keras.utils.set_random_seed(0)
    prior = build_prior({**config, "prior_layers": layers_, "prior_kernel_size": kernel})
    prior.compile(optimizer=keras.optimizers.Adam(config["prior_learning_rate"]))
    clock = _EpochClock()
    batch = min(int(config["prior_batch_size"]), len(train_codes))
    prior.fit(index_dataset(train_codes, batch, seed=0, drop_remainder=True), epochs=epochs,
              callbacks=[clock], shuffle=False, verbose=0)
    return prior, clock.seconds


class Judge:
    """Sample figures against the run's dataset: blotch rate, FD (slice-position net), C2ST."""

    def __init__(self, dataset, train, test, c2st_epochs):
        manifest = load_manifest(dataset)
        subjects, slices = manifest["subjects"], manifest["splits"]["train"]["slices"]
        self.train, self.test, self.c2st_epochs = train, test, c2st_epochs
        self.test_subjects = [s for s, _ in manifest["splits"]["test"]["slices"]]
        self.blotches = BlotchDetector(train)
        self.net = train_slice_position_net(train, [i for _, i in slices], [subjects[s]["site"] for s, _ in slices])
        self.real_features = self.net.features(test)

    def judge(self, samples):
        s = np.asarray(samples)[..., 0]
        out = {"blotch_rate": self.blotches.rate(s)["rate"],
               "fd_posnet": frechet_distance(self.real_features, self.net.features(s))}
        if self.c2st_epochs:
            # The strict test: held-out (test) subjects split by subject, trained to convergence
            # (``c2st_epochs`` caps the CNN's epochs).
            out["c2st"] = classifier_two_sample_test(self.test, self.test_subjects, s,
                                                     max_epochs=self.c2st_epochs)["accuracy"]
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("/work/devruns/vqvae-demo"), help="a trained VQ-VAE run")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated, the first is the baseline")
    parser.add_argument("--epochs", type=int, default=6, help="prior epochs, the same for every variant")
    parser.add_argument("--samples", type=int, default=128, help="samples per variant and temperature")
    parser.add_argument("--c2st", action="store_true", help="also the classifier two-sample test (slower)")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 32 samples: a smoke run")
    args = parser.parse_args(argv)
    epochs, n = (1, 32) if args.quick else (args.epochs, args.samples)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")

    with tempfile.TemporaryDirectory(prefix="bench-prior-") as tmp:
        run_dir = Path(tmp) / args.run.name
        shutil.copytree(args.run, run_dir, ignore=shutil.ignore_patterns("samples", "tensorboard"))
        data = RunData.open(run_dir)
        config = data.config
        vq = data.load_model()
    dataset = data.dataset_dir
    split = {s: np.asarray(data.images(s)) for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    codes = {s: vq.code_indices(x[..., None]) for s, x in split.items()}
    grid = codes["train"].shape[1]
    print(f"run {args.run.name}: {len(codes['train'])}/{len(codes['val'])}/{len(codes['test'])} train/val/test "
          f"slices encoded to {grid}x{grid} code grids in {time.perf_counter() - t0:.1f} s; "
          f"{epochs} prior epochs per variant, {n} samples per temperature; load {_load_avg()}", flush=True)
    judge = Judge(dataset, split["train"], split["test"], 100 if args.c2st else 0)

    rows = {}
    saved = vq.prior
    if saved is not None:  # the run's own prior: how the dev run samples today
        rows["run_prior"] = {"layers": saved.n_layers, "kernel": saved.kernel_size,
                             "reach_rows": raster_reach(saved.n_layers, saved.kernel_size),
                             "epochs": int(config.get("prior_epochs", 0)), "s_per_epoch": None,
                             "nll_val": saved.log_likelihood(codes["val"]) / LN2,
                             "nll_test": saved.log_likelihood(codes["test"]) / LN2}
        for t in TEMPERATURES:
            rows["run_prior"][t] = judge.judge(vq.sample(n, seed=0, temperature=t))
        print(f"  run_prior judged; load {_load_avg()}", flush=True)
    for name in variants:
        layers_, kernel = VARIANTS[name]
        prior, seconds = train_prior(config, layers_, kernel, codes["train"], epochs)
        row = {"layers": layers_, "kernel": kernel, "reach_rows": raster_reach(layers_, kernel), "epochs": epochs,
               "s_per_epoch": float(np.median(seconds)),
               "nll_val": prior.log_likelihood(codes["val"]) / LN2,
               "nll_test": prior.log_likelihood(codes["test"]) / LN2}
        vq.attach_prior(prior)
        for t in TEMPERATURES:
            t1 = time.perf_counter()
            row[t] = judge.judge(vq.sample(n, seed=0, temperature=t))
            row[f"sample_s_{t}"] = time.perf_counter() - t1
        rows[name] = row
        print(f"  {name} trained ({row['s_per_epoch']:.1f} s/epoch) and judged; load {_load_avg()}", flush=True)

    c2 = args.c2st
    print(f"\nPrior variants on {args.run.name} ({grid}x{grid} codes, {epochs} epochs each, seed 0, "
          f"{n} samples; NLL in bits/code; load {_load_avg()})")
    head = f"{'prior':<10}{'rows up':>8}{'s/epoch':>8}{'NLL val':>8}{'NLL test':>9}"
    for t in TEMPERATURES:
        head += f"{f'blotch T{t}':>12}{f'FD T{t}':>9}" + (f"{f'C2ST T{t}':>10}" if c2 else "")
    print(head)
    for name, r in rows.items():
        spe = "–" if r["s_per_epoch"] is None else f"{r['s_per_epoch']:.1f}"
        line = f"{name:<10}{r['reach_rows']:>8}{spe:>8}{r['nll_val']:>8.3f}{r['nll_test']:>9.3f}"
        for t in TEMPERATURES:
            line += f"{r[t]['blotch_rate']:>12.3f}{r[t]['fd_posnet']:>9.3f}" + (f"{r[t]['c2st']:>10.2f}" if c2 else "")
        print(line)
    if "run_prior" in rows:
        print(f"(run_prior: the run's saved prior, {rows['run_prior']['epochs']} epochs; the others trained here)")

    trained = [k for k in rows if k != "run_prior"]
    base = trained[0]
    best = min(trained, key=lambda k: (rows[k][1.0]["blotch_rate"], rows[k]["nll_val"]))
    summary = {"grid_codes": grid, "prior_epochs": epochs, "samples_count": n, "baseline": base, "best": best,
               "blotch_rate_baseline_fraction": round(rows[base][1.0]["blotch_rate"], 4),
               "blotch_rate_best_fraction": round(rows[best][1.0]["blotch_rate"], 4),
               "blotch_rate_best_t09_fraction": round(rows[best][0.9]["blotch_rate"], 4)}
    for k, r in rows.items():
        summary[f"nll_val_{k}_bits_per_code"] = round(r["nll_val"], 4)
        summary[f"nll_test_{k}_bits_per_code"] = round(r["nll_test"], 4)
        if r["s_per_epoch"] is not None:
            summary[f"train_{k}_s_per_epoch"] = round(r["s_per_epoch"], 2)
        for t in TEMPERATURES:
            tag = f"{k}_t{str(t).replace('.', '')}"
            summary[f"blotch_rate_{tag}_fraction"] = round(r[t]["blotch_rate"], 4)
            summary[f"fd_posnet_{tag}"] = round(r[t]["fd_posnet"], 4)
            if c2:
                summary[f"c2st_{tag}_accuracy"] = round(r[t]["c2st"], 4)
    summary["blotch_rate_best_over_baseline_ratio"] = (
        round(summary["blotch_rate_best_fraction"] / summary["blotch_rate_baseline_fraction"], 3)
        if summary["blotch_rate_baseline_fraction"] else None)
    summary["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
