"""Quality benchmark: our ELBO against the thesis' loss, and every sample judged by the strict judge.

On one cohort (``--cohort demo``: the thesis' slice range of the demo cohort; ``real_dev``:
12 real heads, see ``bench/cohorts.py``), at 64 px, train the ``demo`` VAE for the same
wall-clock budget with our loss (summed reconstruction + beta·KL with warm-up and free bits),
with a Gaussian decoder (sigma = 0.1) and with the 2023 thesis' ``1000·mean-MSE + KL``, and the
``demo`` VQ-VAE with its PixelCNN prior (half the budget for the prior).

Each trained model is written into a real run folder (``core.training.runs.prepare_run``, the
model and the VQ-VAE's ``prior.keras``, a ``finished`` status) under a temporary runs dir, and
every sample figure comes from ``core.evaluation.run.evaluate_run`` on it — the strict judge:

- two-sample accuracy (CNN + slice-statistics classifier, split by subject, trained to
  convergence, Wilson 95 % interval) against the **held-out** subjects, against **training**
  slices (memorisation when much lower) and **real vs real** (held-out against training-split
  people: what a model drawing new people of the training population would score);
- near-copies of training slices beside the fraction of real strangers that are "copies";
- Fréchet distances (slice-position net, own encoder), MMD on handcrafted features and MS-SSIM
  diversity, each beside the by-subject real spread;
- the verdict: indistinguishable only when the held-out accuracy lies within the real-vs-real
  interval and the near-copies are no more than real strangers'.

Reconstruction SSIM and PSNR (test subjects) also come from ``evaluate_run``; active latent
units and KL per image (the thesis-loss comparison) are measured here on the test slices.

Rows: ``ours`` (Bernoulli decoder, N(0, I) prior), ``ours_aggregate`` (the same run sampled
from its aggregate posterior), ``sigma01``, ``thesis_loss``, ``vqvae_prior`` and
``vqvae_prior_t085`` (the blotch rate of the VQ-VAE's samples at temperature 1 and 0.85,
``core.evaluation.blotches``; not part of ``evaluate_run``).  On cohorts whose every subject has
an age and a sex (demo; real_dev since issue 19 matches its table): ``cvae`` (a conditional VAE) and ``cvqvae`` (``vqvae_prior``'s
VQ-VAE with a conditional PixelCNN prior), each with its obedience to the requested age
(Pearson r, requested vs an age regressor's reading) and slice position (MAE in slices), the
regressors' figures on real test slices as the ceiling.

Issue 20's ablation rows (``ABLATION_ROWS``): ``vq_before`` (the VQ-VAE as issue 17 left it),
``vq_codebook`` (8-dimensional codes, dead-code restarts below half a code's uniform share),
``vq_l1`` (+ L1 pixel loss), ``vq_adversarial`` (+ patch discriminator and feature matching),
``vq_adversarial_augment`` (+ augmentation), ``vq_resize`` (+ a resize-convolution decoder instead
of transposed convolutions: the checkerboard of the 128 px samples); ``vae_before`` / ``vae_adversarial`` (the VAE
without / with the adversarial term).  VQ rows report codebook perplexity and codes used.

Usage: ``python bench/quality.py [--cohort demo|real_dev] [--rows ours,vqvae_prior] [--quick]
[--budget-s 240] [--figures DIR] [--runs-dir DIR]``.  Prints provenance lines (``# command``,
``# started``, ``# machine``), the tables and, as its last line, one JSON object; on ``real_dev``
every key starts with ``real_dev_`` so the two cohorts' objects merge without clashes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # not the retracing warnings of every predict
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cohorts import COHORTS, REAL_DEV, cohort_dataset, demo_dataset  # noqa: E402,F401 (bench/vae_ablation.py imports demo_dataset from here)
from run_all import machine_label  # noqa: E402

from core.data.dataset import load_manifest, load_split_images  # noqa: E402
from core.data.preprocess import PreprocessSpec  # noqa: E402
from core.evaluation import compute_psnr, compute_sharpness, compute_ssim  # noqa: E402
from core.evaluation.blotches import BlotchDetector  # noqa: E402
from core.evaluation.obedience import agreement, train_attribute_regressor  # noqa: E402
from core.evaluation.run import evaluate_run  # noqa: E402
from core.models import active_units, build_model, build_prior, get_preset, kl_beta_schedule, kl_per_unit  # noqa: E402
from core.models.conditions import dataset_conditions  # noqa: E402
from core.training import runs  # noqa: E402
from core.training.checkpoints import MODEL, PRIOR, save_model_atomic  # noqa: E402
from core.viz.images import grid_png  # noqa: E402

#: Issue 20's ablation: the generators before it and one change at a time, each row the
#: previous row's config plus one change (overrides of today's ``demo`` preset), at the same
#: budget and judged like the others.  ``vqvae_prior`` and ``ours`` are today's presets.
VQ_BEFORE = {"embedding_dim": 32, "restart_threshold": 0.03, "recon_loss": "mse",
             "adversarial_weight": 0.0, "feature_matching_weight": 0.0, "augment": None}
_VQ_CODEBOOK = {**VQ_BEFORE, "embedding_dim": 8, "restart_threshold": 0.5}
_VQ_L1 = {**_VQ_CODEBOOK, "recon_loss": "l1"}
_VQ_ADVERSARIAL = {**_VQ_L1, "adversarial_weight": 0.1, "feature_matching_weight": 1.0}
ABLATION_ROWS = {
    "vq_before": ("vqvae", VQ_BEFORE),
    "vq_codebook": ("vqvae", _VQ_CODEBOOK),
    "vq_l1": ("vqvae", _VQ_L1),
    "vq_adversarial": ("vqvae", _VQ_ADVERSARIAL),
    "vq_adversarial_augment": ("vqvae", {**_VQ_ADVERSARIAL, "augment": True}),
    "vq_resize": ("vqvae", {**_VQ_ADVERSARIAL, "augment": True, "upsample": "resize"}),
    "vae_before": ("vae", {"adversarial_weight": 0.0, "feature_matching_weight": 0.0, "augment": None}),
    "vae_adversarial": ("vae", {"adversarial_weight": 0.1, "feature_matching_weight": 0.0, "augment": None}),
}
#: Every row, in the order they are trained and printed.
ROWS = ("ours", "ours_aggregate", "sigma01", "thesis_loss", "vqvae_prior", "vqvae_prior_t085", "cvae", "cvqvae",
        *ABLATION_ROWS)
#: Rows whose samples the strict judge (evaluate_run) measures.
JUDGED = ("ours", "ours_aggregate", "sigma01", "thesis_loss", "vqvae_prior", *ABLATION_ROWS)
#: The VAE rows: overrides of the ``demo`` preset.
VAE_ROWS = {"ours": {}, "sigma01": {"recon_loss": "gaussian", "sigma": 0.1}, "thesis_loss": {"loss_mode": "thesis"}}
CONDITIONAL = ("cvae", "cvqvae")


#: ``--preset``: the presets every row starts from (``demo`` at 64 px; ``cpu128`` at 128 px).
PRESET = {"name": "demo"}

#: ``--epochs``/``--prior-epochs``: budgets in epochs instead of seconds (None = by the clock).
EPOCH_BUDGET = {"model": None, "prior": None}


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


class _AdversaryAfter(keras.callbacks.Callback):
    """The adversarial warm-up by the clock: on from the first epoch that starts after
    ``after_s`` seconds (a budgeted run does not know its epoch count in advance)."""

    def __init__(self, after_s: float):
        super().__init__()
        self.after_s = after_s
        self.started_epoch = None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        active = time.perf_counter() - self.started >= self.after_s
        if active and self.started_epoch is None:
            self.started_epoch = epoch
        self.model.set_adversarial_active(active)


def fit_autoencoder(model, train, config, budget_s, conditions=None, extra_callbacks=(), adversary_after_s=None,
                    epochs=None):
    """Fit a compiled VAE or VQ-VAE for ``budget_s`` seconds as the training engine would: its
    KL warm-up (VAE), the adversarial warm-up (``adversarial_start_epoch``, or by the clock
    after ``adversary_after_s`` seconds) and augmentation when the config asks for them.
    With ``epochs`` the budget is that many epochs instead of seconds (``budget_s`` ignored): on
    a loaded machine a clock budget gives rows trained at different loads different amounts of
    training.  Returns ``(epochs begun, epoch the adversary started or None)``."""
    from core.training.callbacks import AdversarialWarmup
    from core.training.trainer import image_dataset

    clock = _WallClock(float("inf") if epochs else budget_s)
    callbacks = [clock, *extra_callbacks]
    if epochs:
        adversary_after_s = None  # the preset's adversarial_start_epoch
    warmup = None
    if getattr(model, "adversary", None) is not None:
        warmup = (_AdversaryAfter(adversary_after_s) if adversary_after_s is not None
                  else AdversarialWarmup(config.get("adversarial_start_epoch", 0)))
        callbacks.append(warmup)
    if config.get("augment"):  # the engine's pipeline (augmented batches); else plain arrays as before
        data = image_dataset(np.asarray(train)[..., 0], config["batch_size"], seed=0,
                             conditions=conditions, augment=config["augment"])
        model.fit(data, epochs=epochs or 10_000, verbose=0, shuffle=False, callbacks=callbacks)
    else:
        model.fit(train, conditions, batch_size=config["batch_size"], epochs=epochs or 10_000, verbose=0,
                  shuffle=True, callbacks=callbacks)
    started = getattr(warmup, "started_epoch", getattr(warmup, "start_epoch", None))
    return clock.epochs, started


def train_vae(train, config, budget_s, conditions=None, adversary_after_s=None):
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    started = time.perf_counter()
    schedule = [_BetaSchedule(config)] if config.get("loss_mode") != "thesis" else []
    epochs, model.adversary_started_epoch = fit_autoencoder(model, train, config, budget_s, conditions, schedule,
                                                            adversary_after_s, epochs=EPOCH_BUDGET["model"])
    return model, epochs, time.perf_counter() - started


def train_vqvae(train, config, budget_s, prior_budget_s, adversary_after_s=None):
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    started = time.perf_counter()
    epochs, model.adversary_started_epoch = fit_autoencoder(model, train, config, budget_s,
                                                            adversary_after_s=adversary_after_s,
                                                            epochs=EPOCH_BUDGET["model"])
    indices = model.code_indices(train)
    prior = build_prior(config)
    prior.compile(optimizer=keras.optimizers.Adam(config["prior_learning_rate"]))
    prior_epochs = EPOCH_BUDGET["prior"]
    prior_clock = _WallClock(float("inf") if prior_epochs else prior_budget_s)
    prior.fit(indices, batch_size=config["prior_batch_size"], epochs=prior_epochs or 10_000, verbose=0, shuffle=True,
              callbacks=[prior_clock])
    model.attach_prior(prior)
    return model, prior, epochs, prior_clock.epochs, time.perf_counter() - started


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
    prior_epochs = EPOCH_BUDGET["prior"]
    clock = _WallClock(float("inf") if prior_epochs else budget_s)
    started = time.perf_counter()
    prior.fit(indices, conditions, batch_size=config["prior_batch_size"], epochs=prior_epochs or 10_000, verbose=0,
              shuffle=True, callbacks=[clock])
    model.attach_prior(prior)
    return model, clock.epochs, time.perf_counter() - started


def write_run(runs_dir: Path, name: str, dataset: Path, model_type: str, overrides: dict, model, epochs: int,
              prior=None, prior_epochs: int | None = None) -> Path:
    """A finished run folder holding ``model`` (and a VQ-VAE's ``prior``), as training leaves one."""
    settings = {**overrides, "epochs": max(1, int(epochs))}
    if prior is not None:
        settings["prior_epochs"] = max(1, int(prior_epochs or 0))
    run_dir = runs.prepare_run(runs_dir / name, dataset, model_type, PRESET["name"], settings)
    save_model_atomic(model, run_dir / MODEL)
    if prior is not None:
        save_model_atomic(prior, run_dir / PRIOR)
    status = {"epoch": int(epochs), "epochs": int(epochs), "message": "trained by bench/quality.py"}
    if prior is not None:
        status.update(stage="prior", prior_epoch=int(prior_epochs or 0))
    runs.write_status(run_dir, "finished", **status)
    return run_dir


def judge(run_dir: Path, n_samples: int, sample_source: str, c2st_options: dict, label: str) -> dict:
    """``evaluate_run`` on the run (the strict judge), with its steps logged to stderr."""
    started = time.perf_counter()

    def progress(fraction, message):
        print(f"    [{label} {time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    result = evaluate_run(run_dir, n_samples=n_samples, seed=0, sample_source=sample_source,
                          c2st_options=c2st_options, write=sample_source == "prior", progress=progress)
    if sample_source != "prior":
        (Path(run_dir) / f"evaluation_{sample_source}.json").write_text(json.dumps(result, default=str))
    return result


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def judge_figures(result: dict) -> dict:
    """The figures the tables and the JSON quote, flat, from one ``evaluate_run`` result
    (None where the judge marked a figure unavailable)."""
    def get(*path):
        value = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    out = {"ssim": _number(get("ssim", "mean")), "psnr_db": _number(get("psnr", "mean")),
           "sharpness_ratio": _number(result.get("sharpness_ratio"))}
    for label, path in (("heldout", ("c2st",)), ("training", ("c2st", "against_training")),
                        ("real_baseline", ("c2st", "real_baseline"))):
        ci = get(*path, "ci95") or [None, None]
        out[f"c2st_{label}_accuracy"] = _number(get(*path, "accuracy"))
        out[f"c2st_{label}_ci95_low"], out[f"c2st_{label}_ci95_high"] = _number(ci[0]), _number(ci[1])
    out["c2st_heldout_classifier"] = get("c2st", "classifier")
    out["near_copy_fraction"] = _number(get("memorisation", "near_copy_fraction"))
    out["real_near_copy_fraction"] = _number(get("memorisation", "real_baseline", "near_copy_fraction"))
    out["fd_posnet"] = _number(get("fd_slice_position_net", "value"))
    for q in ("p05", "median", "p95"):
        out[f"fd_posnet_real_{q}"] = _number(get("fd_slice_position_net", "real_spread", q))
    out["fd_own"] = _number(get("fd_own_encoder", "value"))
    out["fd_own_real_p95"] = _number(get("fd_own_encoder", "real_spread", "p95"))
    out["mmd"] = _number(get("mmd_handcrafted", "value"))
    out["mmd_real_p95"] = _number(get("mmd_handcrafted", "real_spread", "p95"))
    out["ms_ssim"] = _number(get("ms_ssim_synthetic", "mean"))
    out["ms_ssim_real_p05"] = _number(get("ms_ssim_real", "p05"))
    out["ms_ssim_real_p95"] = _number(get("ms_ssim_real", "p95"))
    # The anatomy-aware judge: the learned-space two-sample test (subject-bootstrap interval) with
    # its real baseline, and precision / recall / density / coverage with their real ranges.
    for label, path in (("anatomy", ("c2st_anatomy",)), ("anatomy_real_baseline", ("c2st_anatomy", "real_baseline"))):
        ci = get(*path, "ci95") or [None, None]
        out[f"c2st_{label}_accuracy"] = _number(get(*path, "accuracy"))
        out[f"c2st_{label}_ci95_low"], out[f"c2st_{label}_ci95_high"] = _number(ci[0]), _number(ci[1])
    for name in ("precision", "recall", "density", "coverage"):
        out[name] = _number(get(name, "value"))
        out[f"{name}_real_p05"] = _number(get(name, "real_spread", "p05"))
        out[f"{name}_real_p95"] = _number(get(name, "real_spread", "p95"))
        within = get(name, "within_real_spread")
        out[f"{name}_within_real"] = within if isinstance(within, bool) else None
    verdict = get("verdict", "indistinguishable")
    out["indistinguishable"] = verdict if isinstance(verdict, bool) else None
    out["evaluate_s"] = _number(result.get("seconds"))
    return out


def obedience(dataset, train, test, model, budget_epochs, n_samples, regressors=None):
    """Requested-vs-read age and slice position of a conditional model, with the regressors'
    ceilings; ``regressors`` (age, slice) from an earlier call are reused, else trained."""
    manifest = load_manifest(dataset)
    c_test = dataset_conditions(manifest, "test")
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
    }, samples, regressors


def codebook_figures(model, train) -> dict:
    """A VQ-VAE's codebook over every training slice: perplexity (the effective number of codes)
    and the fraction of codes used."""
    indices = model.code_indices(train).ravel()
    shares = np.bincount(indices, minlength=model.num_embeddings) / indices.size
    used = shares[shares > 0]
    return {"perplexity": float(np.exp(-(used * np.log(used)).sum())), "codes_used": float((shares > 0).mean())}


def write_real_slices(test, path: Path, n: int = 32) -> None:
    """``n`` random test slices (people never trained on; seed 0), to set beside the sample grids."""
    pick = np.sort(np.random.default_rng(0).choice(len(test), min(n, len(test)), replace=False))
    path.write_bytes(grid_png(np.asarray(test)[pick], ncols=8, upscale=1))


def _fmt(value, spec=".3f", none="–"):
    return none if value is None else format(value, spec)


def _acc_ci(j, label):
    a, lo, hi = (j[f"c2st_{label}_{k}"] for k in ("accuracy", "ci95_low", "ci95_high"))
    return "–" if a is None else f"{a:.3f} [{_fmt(lo, '.2f')}, {_fmt(hi, '.2f')}]"


def sample_table(cohort: str, judged: dict, n_samples: int) -> str:
    """The strict judge's figures, one line per sampler."""
    header = (f"{'sampler':<16}{'held-out acc [CI]':>20}{'training acc [CI]':>20}{'real-vs-real [CI]':>20}"
              f"{'near-copies (real)':>20}{'FD posnet (real med, p05-p95)':>32}{'FD own (real p95)':>19}"
              f"{'MMD (real p95)':>17}{'MS-SSIM (real 5-95 %)':>24}{'sharp':>7}  verdict")
    lines = [f"samples judged by evaluate_run ({cohort}, {n_samples} samples)", header, "-" * len(header)]
    for name, j in judged.items():
        verdict = {True: "indistinguishable", False: "told apart"}.get(j["indistinguishable"], "–")
        fd = (f"{_fmt(j['fd_posnet'], '.3f')} ({_fmt(j['fd_posnet_real_median'], '.3f')}, "
              f"{_fmt(j['fd_posnet_real_p05'], '.3f')}-{_fmt(j['fd_posnet_real_p95'], '.3f')})")
        lines.append(
            f"{name:<16}{_acc_ci(j, 'heldout'):>20}{_acc_ci(j, 'training'):>20}{_acc_ci(j, 'real_baseline'):>20}"
            f"{_fmt(j['near_copy_fraction']) + ' (' + _fmt(j['real_near_copy_fraction']) + ')':>20}{fd:>32}"
            f"{_fmt(j['fd_own'], '.2f') + ' (' + _fmt(j['fd_own_real_p95'], '.2f') + ')':>19}"
            f"{_fmt(j['mmd'], '.3f') + ' (' + _fmt(j['mmd_real_p95'], '.3f') + ')':>17}"
            f"{_fmt(j['ms_ssim']) + ' (' + _fmt(j['ms_ssim_real_p05']) + '-' + _fmt(j['ms_ssim_real_p95']) + ')':>24}"
            f"{_fmt(j['sharpness_ratio'], '.2f'):>7}  {verdict}")
    return "\n".join(lines)


def anatomy_table(cohort: str, judged: dict) -> str:
    """The anatomy-aware judge's figures, one line per sampler."""
    header = (f"{'sampler':<16}{'anatomy acc [CI]':>20}{'real-vs-real [CI]':>20}"
              + "".join(f"{name + ' (real 5-95 %)':>28}" for name in ("precision", "recall", "density", "coverage")))
    lines = [f"samples judged in the anatomy-aware space ({cohort}; subject-bootstrap intervals)", header,
             "-" * len(header)]
    for name, j in judged.items():
        figures = "".join(
            f"{_fmt(j[k]) + ' (' + _fmt(j[k + '_real_p05']) + '-' + _fmt(j[k + '_real_p95']) + ')':>28}"
            for k in ("precision", "recall", "density", "coverage"))
        lines.append(f"{name:<16}{_acc_ci(j, 'anatomy'):>20}{_acc_ci(j, 'anatomy_real_baseline'):>20}{figures}")
    return "\n".join(lines)


def recon_table(cohort: str, rows: dict, latent_dim: int) -> str:
    header = (f"{'model':<14}{'epochs':>8}{'prior ep':>9}{'wall s':>8}{'SSIM':>8}{'PSNR dB':>9}{'active':>8}"
              f"{'KL nats':>9}")
    lines = [f"reconstructions of the test subjects ({cohort})", header, "-" * len(header)]
    for name, r in rows.items():
        active = "–" if r.get("active_units") is None else f"{r['active_units']}/{latent_dim}"
        lines.append(f"{name:<14}{r['epochs']:>8}{_fmt(r.get('prior_epochs'), 'd'):>9}{r['wall_s']:>8.0f}"
                     f"{_fmt(r['ssim']):>8}{_fmt(r.get('psnr_db'), '.2f'):>9}{active:>8}"
                     f"{_fmt(r.get('kl_nats'), '.1f'):>9}")
    return "\n".join(lines)


def _round(value, digits=4):
    return round(value, digits) if isinstance(value, float) else value


def parse_rows(text: str | None) -> list[str]:
    if not text:
        return list(ROWS)
    chosen = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown row(s) {', '.join(unknown)}; the rows are: {', '.join(ROWS)}")
    return [r for r in ROWS if r in chosen]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=COHORTS, default="demo")
    parser.add_argument("--rows", default="", help=f"comma-separated subset of {','.join(ROWS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="20 s per model, 64 samples, short two-sample tests")
    parser.add_argument("--budget-s", type=float, default=240.0, help="training seconds per VAE")
    parser.add_argument("--figures", type=Path, default=None, help="save sample/recon grids here")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train every autoencoder this many epochs instead of --budget-s seconds "
                             "(fair between rows on a loaded machine)")
    parser.add_argument("--prior-epochs", type=int, default=None,
                        help="train every prior this many epochs instead of half the budget")
    parser.add_argument("--preprocess", default=None, metavar="STEPS",
                        help="real_dev only: preprocess every head first (core.data.preprocess), e.g. "
                             "skullstrip,n4,register=2,crop; keys get a 'preprocessed_' prefix "
                             "(default: raw heads, as before)")
    parser.add_argument("--preset", choices=("demo", "cpu128"), default="demo",
                        help="presets of every row; cpu128 trains at 128 px on a 128 px dataset and its keys get a "
                             "'cpu128_' prefix (default: demo, 64 px)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="keep the run folders (with evaluation.json) here; default: a temporary dir, removed")
    args = parser.parse_args(argv)
    EPOCH_BUDGET.update(model=args.epochs, prior=args.prior_epochs)
    PRESET["name"] = args.preset
    image_size = int(get_preset("vqvae", args.preset)["image_size"])
    cohort = args.cohort
    rows_wanted = parse_rows(args.rows)
    budget = 20.0 if args.quick else args.budget_s
    n_samples, reg_epochs = (64, 10) if args.quick else (256, 20)
    c2st_options = {"max_epochs": 10} if args.quick else {}
    preprocess = PreprocessSpec.parse(args.preprocess) if args.preprocess else None
    prefix = (("" if cohort == "demo" else f"{cohort}_") + ("preprocessed_" if preprocess else "")
              + ("" if args.preset == "demo" else f"{args.preset}_"))
    wall_started = time.perf_counter()
    print(f"# command: python bench/quality.py {shlex.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# started: {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# machine: {machine_label()}", flush=True)

    dataset = cohort_dataset(cohort, preprocess or None, size=image_size)
    if dataset is None:
        print(f"cohort {cohort}: {REAL_DEV} is absent here, nothing measured")
        print(json.dumps({}))
        return 0
    subjects = load_manifest(dataset)["subjects"].values()
    missing = [s for s in subjects if s.get("age") is None or s.get("sex") not in ("F", "M")]
    if missing:  # since issue 19 real_dev's participants.csv matches its files (Subj1 ~ Subj1_T1)
        skipped = [r for r in rows_wanted if r in CONDITIONAL]
        if skipped:
            print(f"skipping {', '.join(skipped)} on {cohort}: {len(missing)} subjects have no age or sex "
                  "to condition on")
        rows_wanted = [r for r in rows_wanted if r not in CONDITIONAL]
    train = np.asarray(load_split_images(dataset, "train"))[..., None]
    test = np.asarray(load_split_images(dataset, "test"))[..., None]
    manifest = load_manifest(dataset)
    print(f"cohort {cohort}, dataset {dataset}: {len(train)} train / {len(test)} test slices "
          f"(test subjects unseen); rows {', '.join(rows_wanted)}; budget {budget:.0f} s per model", flush=True)

    keep = args.runs_dir is not None
    runs_dir = args.runs_dir.resolve() if keep else Path(tempfile.mkdtemp(prefix="quality-runs-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows, judged, grids, extra = {}, {}, {}, {}
    try:
        needs = set(rows_wanted)
        for name, overrides in VAE_ROWS.items():
            if name not in needs and not (name == "ours" and "ours_aggregate" in needs):
                continue
            config = {**get_preset("vae", PRESET["name"]), **overrides}
            model, epochs, wall = train_vae(train, config, budget, adversary_after_s=budget / 3)
            print(f"  trained VAE ({name}) {epochs} epochs in {wall:.0f} s", flush=True)
            run_dir = write_run(runs_dir, f"{cohort}-{name}-{stamp}", dataset, "vae", overrides, model, epochs)
            kl_units = kl_per_unit(model, test)
            rows[name] = {"epochs": epochs, "wall_s": wall, "active_units": active_units(model, test),
                          "kl_nats": float(kl_units.sum())}
            recon = model.reconstruct(test[:8])
            if name in needs:
                judged[name] = judge_figures(judge(run_dir, n_samples, "prior", c2st_options, name))
                grids[name] = (model.sample(32, seed=0), recon)
            if name == "ours" and "ours_aggregate" in needs:
                judged["ours_aggregate"] = judge_figures(judge(run_dir, n_samples, "aggregate", c2st_options,
                                                               "ours_aggregate"))
                runs.RunData.open(run_dir).attach_aggregate(model)  # the mixture evaluate_run fitted and kept
                grids["ours_aggregate"] = (model.sample(32, seed=0, source="aggregate"), None)
            source = judged.get(name) or judged.get("ours_aggregate") or {}
            rows[name].update(ssim=source.get("ssim"), psnr_db=source.get("psnr_db"))
            if rows[name]["ssim"] is None:  # ours trained only for its aggregate row: measured the same way
                full = model.reconstruct(test)
                rows[name].update(ssim=float(compute_ssim(test, full).mean()),
                                  psnr_db=float(compute_psnr(test, full).mean()))

        vq = None
        if needs & {"vqvae_prior", "vqvae_prior_t085", "cvqvae"}:
            vq_config = get_preset("vqvae", PRESET["name"])
            vq, prior, epochs, prior_epochs, wall = train_vqvae(train, vq_config, budget, budget / 2,
                                                                adversary_after_s=budget / 3)
            print(f"  trained VQ-VAE {epochs} epochs + prior {prior_epochs} epochs in {wall:.0f} s", flush=True)
            run_dir = write_run(runs_dir, f"{cohort}-vqvae_prior-{stamp}", dataset, "vqvae", {}, vq, epochs,
                                prior, prior_epochs)
            rows["vqvae_prior"] = {"epochs": epochs, "prior_epochs": prior_epochs, "wall_s": wall,
                                   **codebook_figures(vq, train)}
            if "vqvae_prior" in needs:
                judged["vqvae_prior"] = judge_figures(judge(run_dir, n_samples, "prior", c2st_options,
                                                            "vqvae_prior"))
                rows["vqvae_prior"].update(ssim=judged["vqvae_prior"]["ssim"],
                                           psnr_db=judged["vqvae_prior"]["psnr_db"])
                grids["vqvae_prior"] = (vq.sample(32, seed=0), vq.reconstruct(test[:8]))
            else:
                full = vq.reconstruct(test)
                rows["vqvae_prior"].update(ssim=float(compute_ssim(test, full).mean()),
                                           psnr_db=float(compute_psnr(test, full).mean()))
            if "vqvae_prior_t085" in needs:
                # Not part of evaluate_run: the blotch rate of n_samples seed-0 draws at 1 and 0.85.
                detector = BlotchDetector(train[..., 0])
                extra["vqvae_prior_blotch_rate"] = detector.rate(vq.sample(n_samples, seed=0)[..., 0])["rate"]
                extra["vqvae_prior_t085_blotch_rate"] = detector.rate(
                    vq.sample(n_samples, seed=0, temperature=0.85)[..., 0])["rate"]

        for name, (model_type, overrides) in ABLATION_ROWS.items():
            if name not in needs:
                continue
            config = {**get_preset(model_type, PRESET["name"]), **overrides}
            if config.get("augment") is True:
                from core.training.augment import check_augment

                config["augment"] = check_augment(True)
            # The adversary joins after a third of the budget (by the clock: a budgeted run's epoch
            # count is not known in advance); the run's config records the epoch it did.
            if model_type == "vqvae":
                model, prior, epochs, prior_epochs, wall = train_vqvae(train, config, budget, budget / 2, budget / 3)
            else:
                model, epochs, wall = train_vae(train, config, budget, adversary_after_s=budget / 3)
                prior = prior_epochs = None
            settings = {**overrides, "augment": config["augment"]}
            if model.adversary_started_epoch is not None:
                settings["adversarial_start_epoch"] = int(model.adversary_started_epoch)
            run_dir = write_run(runs_dir, f"{cohort}-{name}-{stamp}", dataset, model_type, settings, model, epochs,
                                prior, prior_epochs)
            print(f"  trained {name}: {epochs} epochs" + (f" + prior {prior_epochs}" if prior is not None else "")
                  + f" in {wall:.0f} s", flush=True)
            rows[name] = {"epochs": epochs, "prior_epochs": prior_epochs, "wall_s": wall}
            if model_type == "vqvae":
                rows[name].update(codebook_figures(model, train))
            judged[name] = judge_figures(judge(run_dir, n_samples, "prior", c2st_options, name))
            rows[name].update(ssim=judged[name]["ssim"], psnr_db=judged[name]["psnr_db"])
            grids[name] = (model.sample(32, seed=0), model.reconstruct(test[:8]))

        c_train = dataset_conditions(manifest, "train") if needs & set(CONDITIONAL) else None
        slice_range = [manifest["spec"]["start"], manifest["spec"]["stop"]]
        regressors = None
        if "cvae" in needs:
            cvae_config = {**get_preset("vae", PRESET["name"]), "conditional": True, "slice_range": slice_range}
            cvae, c_epochs, c_wall = train_vae(train, cvae_config, budget, conditions=c_train)
            obey, cvae_samples, regressors = obedience(dataset, train, test, cvae, reg_epochs, n_samples)
            recon = cvae.reconstruct(test, condition=dataset_conditions(manifest, "test"))
            rows["cvae"] = {"epochs": c_epochs, "wall_s": c_wall, "ssim": float(compute_ssim(test, recon).mean()),
                            "psnr_db": float(compute_psnr(test, recon).mean()),
                            "sharpness_ratio": float(compute_sharpness(cvae_samples[:64], test))}
            extra["cvae"] = obey
            print(f"  trained conditional VAE {c_epochs} epochs in {c_wall:.0f} s", flush=True)
        if "cvqvae" in needs:
            cvq_config = {**get_preset("vqvae", PRESET["name"]), "conditional": True, "slice_range": slice_range}
            cvq, cq_epochs, cq_wall = train_conditional_prior(vq, train, c_train, cvq_config, budget / 2)
            cq_obey, cvq_samples, regressors = obedience(dataset, train, test, cvq, reg_epochs, n_samples,
                                                         regressors)
            # The same VQ-VAE as vqvae_prior: its encoder and decoder take no condition.
            rows["cvqvae"] = {"epochs": rows["vqvae_prior"]["epochs"], "prior_epochs": cq_epochs, "wall_s": cq_wall,
                              "ssim": rows["vqvae_prior"]["ssim"], "psnr_db": rows["vqvae_prior"]["psnr_db"],
                              "sharpness_ratio": float(compute_sharpness(cvq_samples[:64], test))}
            extra["cvqvae"] = cq_obey
            print(f"  trained a conditional prior for the VQ-VAE, {cq_epochs} epochs in {cq_wall:.0f} s", flush=True)
    finally:
        if not keep:
            shutil.rmtree(runs_dir, ignore_errors=True)

    # Only the rows asked for (ours may have been trained for ours_aggregate alone; the VQ-VAE for cvqvae).
    shown = {name: r for name, r in rows.items() if name in rows_wanted}
    latent_dim = get_preset("vae", PRESET["name"])["latent_dim"]
    print("\n" + recon_table(cohort, shown, latent_dim))
    if judged:
        print("\n" + sample_table(cohort, judged, n_samples))
        print("\n" + anatomy_table(cohort, judged))
        print("held-out acc: the two-sample test against subjects never trained on (0.5 = not told apart); "
              "training: the same test against training slices (much lower = memorisation); real-vs-real: "
              "held-out against training-split people, the bar; near-copies: samples that are near-copies "
              "of training slices (real strangers' fraction beside)")
    if "vqvae_prior_blotch_rate" in extra:
        print(f"\nVQ-VAE blotch rate ({n_samples} seed-0 samples; not part of evaluate_run): "
              f"temperature 1 {extra['vqvae_prior_blotch_rate']:.3f}, 0.85 {extra['vqvae_prior_t085_blotch_rate']:.3f}")
    if "cvae" in extra:
        o = extra["cvae"]
        print(f"\nconditional VAE: age r {o['age_r']:.2f} (regressor on real test {o['age_regressor_test_r']:.2f}); "
              f"slice MAE {o['slice_mae']:.1f} (real test {o['slice_regressor_test_mae']:.1f}, "
              f"a model ignoring the request {o['slice_mae_if_ignored']:.1f})")
    if "cvqvae" in extra:
        o = extra["cvqvae"]
        print(f"conditional VQ-VAE (conditional prior): age r {o['age_r']:.2f} (real test "
              f"{o['age_regressor_test_r']:.2f}); slice MAE {o['slice_mae']:.1f} (real test "
              f"{o['slice_regressor_test_mae']:.1f}, ignoring the request {o['slice_mae_if_ignored']:.1f})")

    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        write_real_slices(test, args.figures / "real_test_slices.png")
        for name, (samples, recon) in grids.items():
            (args.figures / f"{name}_samples.png").write_bytes(grid_png(samples[:32], ncols=8, upscale=1))
            if recon is not None and name in ("ours", "vqvae_prior"):
                pairs = np.concatenate([test[:8], recon[:8]])
                (args.figures / f"{name}_recon.png").write_bytes(grid_png(pairs, ncols=8, upscale=1))
        print(f"figures in {args.figures}")

    summary = {"cohort": cohort, "preset": args.preset, "image_size": image_size, "budget_s": budget, "budget_epochs": args.epochs,
               "budget_prior_epochs": args.prior_epochs, "n_samples": n_samples,
               "n_train_images": int(len(train)), "n_test_images": int(len(test)),
               "dataset_hash": manifest.get("hash"), "rows": ",".join(rows_wanted)}
    if preprocess:
        summary["preprocess"] = ",".join(preprocess.steps)
        summary.update({f"preprocess_{step}_s": round(s, 2)
                        for step, s in manifest.get("preprocess_seconds", {}).items()})
    for name, r in shown.items():
        for key in ("ssim", "psnr_db", "epochs", "prior_epochs", "wall_s", "active_units", "kl_nats",
                    "perplexity", "codes_used"):
            if r.get(key) is not None:
                summary[f"{name}_{key}"] = _round(r[key], 4 if key != "kl_nats" else 2)
    if "ours" in shown and "thesis_loss" in shown:
        summary["ssim_gain_ratio"] = round(shown["ours"]["ssim"] / max(shown["thesis_loss"]["ssim"], 1e-9), 3)
    for name, j in judged.items():
        for key, value in j.items():
            if key in ("ssim", "psnr_db") and name == "ours_aggregate":
                continue  # the same run's reconstructions as ours
            summary[f"{name}_{key}"] = _round(value)
    for key in ("vqvae_prior_blotch_rate", "vqvae_prior_t085_blotch_rate"):
        if key in extra:
            summary[key] = round(extra[key], 3)
    for name in CONDITIONAL:
        if name in extra:
            summary.update({f"{name}_{k}": (None if v is None else round(v, 3)) for k, v in extra[name].items()})
            summary[f"{name}_sharpness_ratio"] = round(rows[name]["sharpness_ratio"], 3)
    print(f"# finished: {time.strftime('%Y-%m-%d %H:%M')}, wall {time.perf_counter() - wall_started:.0f} s")
    print(json.dumps({f"{prefix}{k}" if prefix else k: v for k, v in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
