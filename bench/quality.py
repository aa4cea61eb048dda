"""Quality benchmark: our ELBO against the thesis' loss, same architecture, same wall time.

On the demo cohort (the thesis' slice range, 64 px), train the ``demo`` VAE twice for the
same wall-clock budget — once with our loss (summed reconstruction + beta·KL with warm-up
and free bits), once with the 2023 thesis' ``1000·mean-MSE + KL`` — and the ``demo`` VQ-VAE
with its PixelCNN prior.  Measured on the *test subjects* (never seen in training):

- reconstruction SSIM and PSNR,
- active latent units (mean KL per unit > 0.01 nats) and KL in nats per image,
- sample sharpness: mean Laplacian variance of 64 samples ÷ that of the real test slices,
- (issue 10) on 256 samples: MS-SSIM among samples beside real–real (different subjects),
  Fréchet distance in the slice-position net's features and in the run's own encoder's,
  the classifier two-sample test accuracy; for the VAE also sampled from the aggregate
  posterior (a Gaussian mixture on the training latents); for the VQ-VAE the blotch rate
  (``core.evaluation.blotches``) at temperature 1 and 0.85;
- (issue 10) a conditional VAE: obedience to requested age (Pearson r, requested vs an age
  regressor's reading) and slice position (MAE in slices), each regressor's figure on real
  test slices as the ceiling;
- (issue 10) a conditional VQ-VAE: the ``vqvae_prior`` row's VQ-VAE (a conditional VQ-VAE's
  encoder and decoder are not conditioned) with a conditional PixelCNN prior trained for the
  same prior budget; the same obedience figures, read by the same regressors.

Rows: ``ours`` (the ``demo`` preset: Bernoulli decoder), ``sigma01`` (Gaussian, sigma = 0.1,
the previous default), ``thesis_loss``, ``vqvae_prior``, ``cvae``, ``cvqvae``.

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

from core.data.cohort import build_cohort_dataset, load_cohort  # noqa: E402
from core.data.dataset import load_manifest, load_split_images  # noqa: E402
from core.data.demo import build_demo_cohort  # noqa: E402
from core.data.slices import thesis_spec  # noqa: E402
from core.data.volumes import load_volume  # noqa: E402
from core.evaluation import compute_psnr, compute_sharpness, compute_ssim  # noqa: E402
from core.models import active_units, build_model, build_prior, get_preset, kl_beta_schedule, kl_per_unit  # noqa: E402
from core.viz.images import grid_png  # noqa: E402
from core.evaluation.blotches import BlotchDetector  # noqa: E402
from core.evaluation.c2st import classifier_two_sample_test  # noqa: E402
from core.evaluation.distances import frechet_distance  # noqa: E402
from core.evaluation.diversity import pairwise_ms_ssim  # noqa: E402
from core.evaluation.features import encoder_features, train_slice_position_net  # noqa: E402
from core.evaluation.obedience import agreement, train_attribute_regressor  # noqa: E402
from core.models.aggregate import fit_aggregate_posterior  # noqa: E402
from core.models.conditions import condition_array, dataset_conditions  # noqa: E402


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
    cohort = load_cohort(build_demo_cohort())  # with demographics.csv: age, sex, site per subject
    spec = thesis_spec(load_volume(cohort.entries[0]), size=size)
    return build_cohort_dataset(cohort, spec, fractions=(0.7, 0.1, 0.2), seed=0).path


def train_vae(train, config, budget_s, conditions=None):
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    clock = _WallClock(budget_s)
    callbacks = [clock] + ([_BetaSchedule(config)] if config.get("loss_mode") != "thesis" else [])
    started = time.perf_counter()
    history = model.fit(train, conditions, batch_size=config["batch_size"], epochs=10_000, verbose=0,
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


def train_conditional_prior(vq, train, conditions, config, budget_s):
    """A conditional VQ-VAE: ``vq``'s encoder, codebook and decoder (not conditioned, so shared)
    with a conditional PixelCNN prior fitted on its code grids and ``conditions`` for ``budget_s``."""
    keras.utils.set_random_seed(0)
    model = build_model(config)
    for part in ("encoder", "decoder", "quantizer"):
        getattr(model, part).set_weights(getattr(vq, part).get_weights())
    indices = model.code_indices(train)
    prior = build_prior(config)
    prior.compile(optimizer=keras.optimizers.Adam(config["prior_learning_rate"]))
    clock = _WallClock(budget_s)
    started = time.perf_counter()
    prior.fit(indices, conditions, batch_size=config["prior_batch_size"], epochs=10_000, verbose=0,
              shuffle=True, callbacks=[clock])
    model.attach_prior(prior)
    return model, clock.epochs, time.perf_counter() - started


class _SampleJudge:
    """The issue-10 sample figures against one dataset, with its slice-position net trained once."""

    def __init__(self, dataset, train, test, n_samples, c2st_epochs):
        manifest = load_manifest(dataset)
        subjects = manifest["subjects"]
        slices = manifest["splits"]["train"]["slices"]
        self.train, self.test, self.n, self.c2st_epochs = train[..., 0], test[..., 0], n_samples, c2st_epochs
        self.net = train_slice_position_net(self.train, [i for _, i in slices],
                                            [subjects[s]["site"] for s, _ in slices])
        self.real_features = self.net.features(self.test)
        test_groups = [s for s, _ in manifest["splits"]["test"]["slices"]]
        self.real_ms_ssim = pairwise_ms_ssim(self.test, n_pairs=500, groups=test_groups)["mean"]
        self.blotches = BlotchDetector(self.train)

    def judge(self, model, samples, blotches=False):
        s = samples[..., 0]
        out = {
            "ms_ssim": pairwise_ms_ssim(s, n_pairs=500)["mean"],
            "fd_posnet": frechet_distance(self.real_features, self.net.features(s)),
            "fd_own": frechet_distance(encoder_features(model, self.test), encoder_features(model, s))
            if not getattr(model, "conditional", False) else None,
            "c2st": classifier_two_sample_test(self.train, s, self.test, epochs=self.c2st_epochs)["accuracy"],
        }
        if blotches:
            out["blotch_rate"] = self.blotches.rate(s)["rate"]
        return out


def obedience(dataset, train, test, model, budget_epochs, n_samples, regressors=None):
    """Requested-vs-read age and slice position of a conditional model, with the regressors'
    ceilings; ``regressors`` (age, slice) from an earlier call are reused, else trained."""
    manifest = load_manifest(dataset)
    c_train, c_test = dataset_conditions(manifest, "train"), dataset_conditions(manifest, "test")
    ages = {split: np.array([manifest["subjects"][s]["age"] for s, _ in manifest["splits"][split]["slices"]])
            for split in ("train", "test")}
    pos = {split: np.array([i for _, i in manifest["splits"][split]["slices"]], float) for split in ("train", "test")}
    if regressors is None:
        regressors = (train_attribute_regressor(train, ages["train"], epochs=budget_epochs),
                      train_attribute_regressor(train, pos["train"], epochs=budget_epochs, seed=1))
    age_reg, pos_reg = regressors
    # Requests: the test slices' own (age, sex, slice), so the ceiling and the test see one mix.
    pick = np.random.default_rng(0).choice(len(c_test), min(n_samples, len(c_test)), replace=False)
    samples = model.sample(len(pick), seed=0, condition=c_test[pick])
    return {
        "age_r": agreement(ages["test"][pick], age_reg.predict(samples))["pearson_r"],
        "age_regressor_test_r": agreement(ages["test"], age_reg.predict(test))["pearson_r"],
        "slice_mae": agreement(pos["test"][pick], pos_reg.predict(samples))["mae"],
        "slice_regressor_test_mae": agreement(pos["test"], pos_reg.predict(test))["mae"],
        "slice_mae_if_ignored": float(np.abs(pos["test"][pick] - pos["train"].mean()).mean()),
    }, samples, c_train, regressors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute per model")
    parser.add_argument("--budget-s", type=float, default=240.0, help="training seconds per VAE")
    parser.add_argument("--figures", type=Path, default=None, help="save sample/recon grids here")
    args = parser.parse_args(argv)
    budget = 20.0 if args.quick else args.budget_s
    n_samples, c2st_epochs, reg_epochs = (64, 4, 10) if args.quick else (256, 8, 20)

    dataset = demo_dataset(size=64)
    train = np.asarray(load_split_images(dataset, "train"))[..., None]
    test = np.asarray(load_split_images(dataset, "test"))[..., None]
    print(f"dataset {dataset}: {len(train)} train / {len(test)} test slices (test subjects unseen)")

    judge = _SampleJudge(dataset, train, test, n_samples, c2st_epochs)
    rows, figures, extra = {}, {}, {}
    for name, overrides in (("ours", {}), ("sigma01", {"recon_loss": "gaussian", "sigma": 0.1}),
                            ("thesis_loss", {"loss_mode": "thesis"})):
        config = {**get_preset("vae", "demo"), **overrides}
        model, epochs, wall, history = train_vae(train, config, budget)
        metrics, recon, samples = evaluate_vae(model, test)
        rows[name] = {"epochs": epochs, "wall_s": wall, **metrics}
        figures[name] = (recon, samples)
        extra[name] = judge.judge(model, model.sample(n_samples, seed=0))
        if name == "ours":
            z_mean, _ = model.encode(train)
            model.attach_aggregate(fit_aggregate_posterior(z_mean, n_components=10))
            agg = model.sample(n_samples, seed=0, source="aggregate")
            extra["ours_aggregate"] = {"sharpness": compute_sharpness(agg[:64], test), **judge.judge(model, agg)}
            figures["ours_aggregate"] = (recon, agg)
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
    extra["vqvae_prior"] = judge.judge(vq, vq.sample(n_samples, seed=0), blotches=True)
    extra["vqvae_prior_t085"] = judge.judge(vq, vq.sample(n_samples, seed=0, temperature=0.85), blotches=True)

    manifest = load_manifest(dataset)
    c_train = dataset_conditions(manifest, "train")
    cvae_config = {**get_preset("vae", "demo"), "conditional": True,
                   "slice_range": [manifest["spec"]["start"], manifest["spec"]["stop"]]}
    cvae, c_epochs, c_wall, _ = train_vae(train, cvae_config, budget, conditions=c_train)
    obey, cvae_samples, _, regressors = obedience(dataset, train, test, cvae, reg_epochs, n_samples)
    rows["cvae"] = {"epochs": c_epochs, "wall_s": c_wall, "ssim": float(compute_ssim(
        test, cvae.reconstruct(test, condition=dataset_conditions(manifest, "test"))).mean()),
        "psnr_db": float("nan"), "active_units": None, "kl_nats": None,
        "sharpness": compute_sharpness(cvae_samples[:64], test)}
    extra["cvae"] = obey
    print(f"  trained conditional VAE {c_epochs} epochs in {c_wall:.0f} s", flush=True)

    cvq_config = {**vq_config, "conditional": True, "slice_range": cvae_config["slice_range"]}
    cvq, cq_epochs, cq_wall = train_conditional_prior(vq, train, c_train, cvq_config, budget / 2)
    cq_obey, cvq_samples, _, _ = obedience(dataset, train, test, cvq, reg_epochs, n_samples, regressors)
    cvq_recon = cvq.reconstruct(test)  # the same VQ-VAE as vqvae_prior: its encoder/decoder take no condition
    rows["cvqvae"] = {"epochs": epochs, "prior_epochs": cq_epochs, "wall_s": cq_wall,
                      "ssim": float(compute_ssim(test, cvq_recon).mean()),
                      "psnr_db": float(compute_psnr(test, cvq_recon).mean()), "active_units": None, "kl_nats": None,
                      "sharpness": compute_sharpness(cvq_samples[:64], test)}
    extra["cvqvae"] = cq_obey
    figures["cvqvae"] = (cvq_recon, cvq_samples)
    print(f"  trained a conditional prior for the VQ-VAE, {cq_epochs} epochs in {cq_wall:.0f} s", flush=True)

    header = f"{'model':<14}{'epochs':>8}{'wall s':>8}{'SSIM':>8}{'PSNR dB':>9}{'active':>8}{'KL nats':>9}{'sharp':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in rows.items():
        active = "–" if r["active_units"] is None else f"{r['active_units']}/{get_preset('vae', 'demo')['latent_dim']}"
        kl = "–" if r["kl_nats"] is None else f"{r['kl_nats']:.1f}"
        print(f"{name:<14}{r['epochs']:>8}{r['wall_s']:>8.0f}{r['ssim']:>8.3f}{r['psnr_db']:>9.2f}"
              f"{active:>8}{kl:>9}{r['sharpness']:>7.2f}")

    print(f"\nsamples ({n_samples}); real–real MS-SSIM {judge.real_ms_ssim:.3f}")
    header2 = f"{'sampler':<18}{'MS-SSIM':>9}{'FD posnet':>11}{'FD own':>9}{'C2ST acc':>10}{'blotch':>8}"
    print(header2 + "\n" + "-" * len(header2))
    for name, e in extra.items():
        if "c2st" not in e:
            continue
        fd_own = "–" if e["fd_own"] is None else f"{e['fd_own']:.2f}"
        blotch = f"{e['blotch_rate']:.2f}" if "blotch_rate" in e else "–"
        print(f"{name:<18}{e['ms_ssim']:>9.3f}{e['fd_posnet']:>11.3f}{fd_own:>9}{e['c2st']:>10.2f}{blotch:>8}")
    o = extra["cvae"]
    print(f"\nconditional VAE: age r {o['age_r']:.2f} (regressor on real test {o['age_regressor_test_r']:.2f}); "
          f"slice MAE {o['slice_mae']:.1f} (real test {o['slice_regressor_test_mae']:.1f}, "
          f"a model ignoring the request {o['slice_mae_if_ignored']:.1f})")
    o = extra["cvqvae"]
    print(f"conditional VQ-VAE (conditional prior): age r {o['age_r']:.2f} (real test "
          f"{o['age_regressor_test_r']:.2f}); slice MAE {o['slice_mae']:.1f} (real test "
          f"{o['slice_regressor_test_mae']:.1f}, ignoring the request {o['slice_mae_if_ignored']:.1f})")

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
        "ours_epochs": ours["epochs"], "thesis_loss_epochs": thesis["epochs"],
        "sigma01_ssim": round(rows["sigma01"]["ssim"], 4),
        "sigma01_sharpness_ratio": round(rows["sigma01"]["sharpness"], 3),
        "ours_aggregate_sharpness_ratio": round(extra["ours_aggregate"]["sharpness"], 3),
        "vqvae_epochs": rows["vqvae_prior"]["epochs"], "vqvae_prior_epochs": rows["vqvae_prior"]["prior_epochs"],
        "real_ms_ssim": round(judge.real_ms_ssim, 4),
        "n_samples": n_samples,
    }
    for name in ("ours", "ours_aggregate", "sigma01", "thesis_loss", "vqvae_prior", "vqvae_prior_t085"):
        e = extra[name]
        summary[f"{name}_ms_ssim"] = round(e["ms_ssim"], 4)
        summary[f"{name}_fd_posnet"] = round(e["fd_posnet"], 4)
        summary[f"{name}_fd_own"] = None if e["fd_own"] is None else round(e["fd_own"], 3)
        summary[f"{name}_c2st_accuracy"] = round(e["c2st"], 3)
        if "blotch_rate" in e:
            summary[f"{name}_blotch_rate"] = round(e["blotch_rate"], 3)
    summary.update({f"cvae_{k}": (None if v is None else round(v, 3)) for k, v in extra["cvae"].items()})
    summary["cvae_epochs"] = rows["cvae"]["epochs"]
    summary.update({f"cvqvae_{k}": (None if v is None else round(v, 3)) for k, v in extra["cvqvae"].items()})
    summary["cvqvae_prior_epochs"] = rows["cvqvae"]["prior_epochs"]
    summary["cvqvae_sharpness_ratio"] = round(rows["cvqvae"]["sharpness"], 3)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
