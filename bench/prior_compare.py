"""Which prior over the VQ-VAE's code grid (issue 20): gated PixelCNN, causal transformer or latent diffusion.

One trained VQ-VAE (a run folder that ``bench/quality.py --runs-dir`` kept, or one trained here
like quality.py's ``vqvae_prior`` row) is held fixed; its training slices are encoded to code
grids once and each prior kind is trained on them from seed 0 with the preset's batch size and
learning rate: the autoregressive ones for the SAME number of epochs (``--prior-epochs``, the
preset's by default); the diffusion prior, which learns from one random noise level per grid and
step and so needs many more steps, for the SAME training seconds as the baseline (the first kind)
took in this process.
Each prior is then attached to a copy of the run and judged by the strict judge
(``core.evaluation.run.evaluate_run``, as quality.py does): held-out two-sample accuracy with the
real-vs-real bar, near-copies beside real strangers', MS-SSIM diversity beside the real spread,
sharpness.  Also per prior: held-out NLL (bits per code on the test subjects' grids; none for
diffusion, which gives no likelihood per code), parameters,
seconds per training epoch, and the sampling time per image (prior draw + decode, 256 images,
measured in this process one after the other, with the PixelCNN's as the baseline ratio).

With ``--conditional`` (cohorts whose subjects all have age and sex) each kind is also trained as
a conditional prior on the same grids and asked for the test slices' own age, sex and slice
position; obedience is quality.py's (Pearson r of requested vs read age, slice MAE, beside the
regressors' figures on real test slices).

Usage: ``python bench/prior_compare.py --cohort real_dev [--run DIR] [--prior-epochs 30]
[--conditional] [--figures DIR] [--quick]``.  Prints provenance, a table and, as its last line,
one JSON object; on ``real_dev`` every key starts with ``real_dev_``, and a run at another size
than 64 px adds e.g. ``128px_``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cohorts import COHORTS, cohort_dataset  # noqa: E402
from quality import codebook_figures, judge, judge_figures, obedience, train_vqvae, write_run  # noqa: E402
from run_all import machine_label  # noqa: E402

from core.data.dataset import load_manifest, load_split_images  # noqa: E402
from core.models import build_model, get_preset, prior_for  # noqa: E402
from core.models.conditions import dataset_conditions  # noqa: E402
from core.training import runs  # noqa: E402
from core.training.checkpoints import MODEL, PRIOR, load_run_model, save_model_atomic  # noqa: E402
from core.viz.images import grid_png  # noqa: E402

#: The kinds compared, the first the baseline; each is the run's config with ``prior_type`` set.
KINDS = ("pixelcnn", "transformer", "diffusion")
#: Kinds trained for the baseline's seconds rather than its epochs.
BY_THE_CLOCK = ("diffusion",)
LN2 = float(np.log(2.0))


class _EpochClock(keras.callbacks.Callback):
    """Seconds per epoch; with ``budget_s``, stops training once that many seconds have passed."""

    def __init__(self, budget_s=None):
        super().__init__()
        self.budget_s = budget_s

    def on_train_begin(self, logs=None):
        self.seconds, self.started_training = [], time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)
        if self.budget_s is not None and time.perf_counter() - self.started_training >= self.budget_s:
            self.model.stop_training = True


def train_prior(config, codes, epochs, vqvae, conditions=None, budget_s=None):
    """A prior built from ``config`` for ``vqvae`` and fitted from seed 0 for ``epochs`` epochs, or
    for ``budget_s`` seconds when given: (prior, median s/epoch, epochs, total training s)."""
    keras.utils.set_random_seed(0)
    prior = prior_for(config, vqvae)
    prior.compile(optimizer=keras.optimizers.Adam(config["prior_learning_rate"]))
    clock = _EpochClock(budget_s)
    epochs = 100_000 if budget_s is not None else epochs
    if conditions is None:
        prior.fit(codes, batch_size=config["prior_batch_size"], epochs=epochs, verbose=0, shuffle=True,
                  callbacks=[clock])
    else:
        prior.fit(codes, conditions, batch_size=config["prior_batch_size"], epochs=epochs, verbose=0,
                  shuffle=True, callbacks=[clock])
    return prior, float(np.median(clock.seconds)), len(clock.seconds), float(sum(clock.seconds))


def sampling_seconds(model, n, repeats=2):
    """Best of ``repeats`` wall times for ``n`` images (prior draw + decode), after a warm-up draw."""
    model.sample(2, seed=1)  # trace the compiled sampler first
    best = float("inf")
    for r in range(repeats):
        started = time.perf_counter()
        model.sample(n, seed=r)
        best = min(best, time.perf_counter() - started)
    return best


def stack_top_halves(paths) -> bytes:
    """PNG of the top half (first 16 samples) of each grid, one kind above the next, 8 px apart."""
    import io

    from PIL import Image

    halves = []
    for path in paths:
        with Image.open(path) as im:
            halves.append(im.convert("L").crop((0, 0, im.width, im.height // 2)))
    out = Image.new("L", (max(h.width for h in halves), sum(h.height + 8 for h in halves) - 8))
    y = 0
    for half in halves:
        out.paste(half, (0, y))
        y += half.height + 8
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()


def _fmt(value, spec=".2f"):
    return "–" if value is None else format(value, spec)


def copy_run(source: Path, target: Path, config_updates: dict) -> Path:
    """A copy of ``source`` without its evaluation, with ``config_updates`` in its config.json."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("evaluation*", "samples", "*.lock", "cancel"))
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    config.update(config_updates, run_name=target.name)
    config_path.write_text(json.dumps(config, indent=1))
    return target


def trained_run(cohort: str, dataset: Path, runs_dir: Path, epochs: int | None, prior_epochs: int) -> Path:
    """quality.py's ``vqvae_prior`` row trained here (``epochs``: the preset's when None)."""
    from quality import EPOCH_BUDGET

    config = get_preset("vqvae", "demo")
    EPOCH_BUDGET.update(model=epochs or config["epochs"], prior=prior_epochs)
    train = np.asarray(load_split_images(dataset, "train"))[..., None]
    vq, prior, n_epochs, n_prior, wall = train_vqvae(train, config, 0.0, 0.0)
    print(f"  trained the VQ-VAE {n_epochs} epochs + PixelCNN {n_prior} in {wall:.0f} s", flush=True)
    return write_run(runs_dir, f"{cohort}-vqvae-{time.strftime('%Y%m%d-%H%M%S')}", dataset, "vqvae", {}, vq,
                     n_epochs, prior, n_prior)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=COHORTS, default="real_dev")
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained VQ-VAE run to hold fixed (default: train quality.py's vqvae_prior row here)")
    parser.add_argument("--epochs", type=int, default=None, help="VQ-VAE epochs when training one here")
    parser.add_argument("--prior-epochs", type=int, default=None, help="epochs of every prior (default: the run's)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated prior kinds, the first the baseline")
    parser.add_argument("--conditional", action="store_true", help="also conditional priors, with obedience")
    parser.add_argument("--clock-s", type=float, default=None,
                        help="training seconds of the kinds trained by the clock (diffusion); default: what the "
                             "first kind took here (a longer budget shows whether the budget is the limit)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--figures", type=Path, default=None, help="sample grids per kind here")
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the judged run copies here")
    parser.add_argument("--quick", action="store_true", help="2 prior epochs, 64 samples, short two-sample tests")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    n_samples = 64 if args.quick else args.samples
    c2st_options = {"max_epochs": 10} if args.quick else {}
    wall_started = time.perf_counter()
    print(f"# command: python bench/prior_compare.py {shlex.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# started: {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# machine: {machine_label()}", flush=True)

    keep = args.runs_dir is not None
    runs_dir = args.runs_dir.resolve() if keep else Path(tempfile.mkdtemp(prefix="prior-compare-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.run is None:
            dataset = cohort_dataset(args.cohort)
            if dataset is None:
                print(f"cohort {args.cohort} is absent here, nothing measured")
                print(json.dumps({}))
                return 0
            prior_epochs = args.prior_epochs or (2 if args.quick else get_preset("vqvae", "demo")["prior_epochs"])
            source = trained_run(args.cohort, dataset, runs_dir, 2 if args.quick else args.epochs, prior_epochs)
        else:
            source = args.run.resolve()
        data = runs.RunData.open(source)
        base_config = {k: v for k, v in data.config.items()
                       if k not in ("dataset", "run_name", "created", "mixed_precision", "tensorboard", "jit_compile")}
        prior_epochs = args.prior_epochs or (2 if args.quick else int(base_config["prior_epochs"]))
        dataset = data.dataset_dir
        manifest = load_manifest(dataset)
        model = load_run_model(source)
        split = {name: np.asarray(load_split_images(dataset, name))[..., None] for name in ("train", "val", "test")}
        codes = {name: model.code_indices(images) for name, images in split.items()}
        print(f"cohort {args.cohort}: VQ-VAE run {source.name}, {len(codes['train'])} training grids of "
              f"{codes['train'].shape[1]}x{codes['train'].shape[2]}, {model.num_embeddings} codes; priors "
              f"{', '.join(kinds)} for {prior_epochs} epochs each (diffusion: the first's seconds)", flush=True)

        results, grids, train_seconds = {}, {}, {}
        for kind in kinds:
            config = {**base_config, "prior_type": kind, "conditional": False}
            budget = (args.clock_s or train_seconds.get(kinds[0])) if kind in BY_THE_CLOCK else None
            prior, epoch_s, epochs_run, train_seconds[kind] = train_prior(config, codes["train"], prior_epochs, model,
                                                                           budget_s=budget)
            row = {"params": int(prior.count_params()), "epoch_s": epoch_s, "epochs": epochs_run,
                   "train_s": train_seconds[kind]}
            for split_name in ("val", "test", "train"):
                nll = prior.log_likelihood(codes[split_name])
                row[f"{split_name}_bits_per_code"] = None if nll is None else nll / LN2
            model.attach_prior(prior)
            row["sample_s_per_image"] = sampling_seconds(model, 256) / 256
            run_dir = copy_run(source, runs_dir / f"{source.name}-{kind}",
                               {"prior_type": kind, "prior_epochs": epochs_run})
            save_model_atomic(prior, run_dir / PRIOR)
            save_model_atomic(model, run_dir / MODEL)
            row.update(judge_figures(judge(run_dir, n_samples, "prior", c2st_options, kind)))
            grids[kind] = model.sample(32, seed=0)
            results[kind] = row
            print(f"  {kind}: {row['params']} parameters, {epochs_run} epochs in {train_seconds[kind]:.0f} s, test "
                  f"{_fmt(row['test_bits_per_code'])} bits/code, "
                  f"held-out two-sample {row['c2st_heldout_accuracy']}, {row['sample_s_per_image'] * 1000:.0f} ms "
                  "per image", flush=True)

        subjects = manifest["subjects"].values()
        conditional = args.conditional and all(s.get("age") is not None and s.get("sex") in ("F", "M")
                                               for s in subjects)
        regressors = None
        if conditional:
            slice_range = [manifest["spec"]["start"], manifest["spec"]["stop"]]
            c_train = dataset_conditions(manifest, "train")
            for kind in kinds:
                config = {**base_config, "prior_type": kind, "conditional": True, "slice_range": slice_range}
                cmodel = build_model(config)
                for part in ("encoder", "decoder", "quantizer"):  # the same VQ-VAE; only the prior is conditioned
                    getattr(cmodel, part).set_weights(getattr(model, part).get_weights())
                budget = (args.clock_s or train_seconds.get(kinds[0])) if kind in BY_THE_CLOCK else None
                cprior = train_prior(config, codes["train"], prior_epochs, model, c_train, budget)[0]
                cmodel.attach_prior(cprior)
                obey, _, regressors = obedience(dataset, split["train"], split["test"], cmodel,
                                                5 if args.quick else 20, n_samples, regressors)
                results[kind].update({f"conditional_{k}": v for k, v in obey.items()})
                print(f"  conditional {kind}: age r {obey['age_r']:.2f} (real test {obey['age_regressor_test_r']:.2f}),"
                      f" slice MAE {obey['slice_mae']:.1f} (real {obey['slice_regressor_test_mae']:.1f}, ignoring "
                      f"the request {obey['slice_mae_if_ignored']:.1f})", flush=True)
    finally:
        if not keep:
            shutil.rmtree(runs_dir, ignore_errors=True)

    base = kinds[0]
    print(f"\n{'prior':12s} {'params':>8s} {'s/epoch':>8s} {'test b/c':>9s} {'held-out acc [95 %]':>22s} "
          f"{'real-real':>9s} {'near-copies (real)':>19s} {'MS-SSIM [real]':>22s} {'sharp':>6s} {'ms/img':>7s}")
    for kind, r in results.items():
        print(f"{kind:12s} {r['params']:8d} {r['epoch_s']:8.2f} {_fmt(r['test_bits_per_code']):>9s} "
              f"{r['c2st_heldout_accuracy']:.3f} [{r['c2st_heldout_ci95_low']:.2f}, {r['c2st_heldout_ci95_high']:.2f}]"
              f"{'':6s}{r['c2st_real_baseline_accuracy']:9.3f} {r['near_copy_fraction']:9.3f} "
              f"({r['real_near_copy_fraction']:.3f})    {r['ms_ssim']:.3f} [{r['ms_ssim_real_p05']:.3f}, "
              f"{r['ms_ssim_real_p95']:.3f}] {r['sharpness_ratio']:6.2f} {r['sample_s_per_image'] * 1000:7.1f}")
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        paths = []
        for kind, samples in grids.items():
            paths.append(args.figures / f"prior_{kind}_samples.png")
            paths[-1].write_bytes(grid_png(samples, ncols=8, upscale=1))
        (args.figures / "priors_samples.png").write_bytes(stack_top_halves(paths))
        print(f"figures in {args.figures}")

    summary = {"cohort": args.cohort, "run": source.name, "dataset_hash": manifest.get("hash"),
               "image_size": int(split["train"].shape[1]), "prior_epochs": prior_epochs, "n_samples": n_samples,
               "n_train_grids": int(len(codes["train"])), "grid": int(codes["train"].shape[1]),
               "num_embeddings": int(model.num_embeddings),
               **{f"codebook_{k}": round(float(v), 4) for k, v in codebook_figures(model, split["train"]).items()}}
    for kind, r in results.items():
        for key, value in r.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                summary[f"prior_{kind}_{key}"] = round(float(value), 4) if isinstance(value, float) else value
            elif isinstance(value, (bool, str)) or value is None:
                summary[f"prior_{kind}_{key}"] = value
        if kind != base:
            summary[f"prior_{kind}_sample_time_ratio"] = round(
                r["sample_s_per_image"] / results[base]["sample_s_per_image"], 2)
    prefix = ("" if args.cohort == "demo" else f"{args.cohort}_") + (
        "" if summary["image_size"] == 64 else f"{summary['image_size']}px_")
    print(f"# finished: {time.strftime('%Y-%m-%d %H:%M')}, wall {time.perf_counter() - wall_started:.0f} s")
    print(json.dumps({f"{prefix}{k}": v for k, v in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
