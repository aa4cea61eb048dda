"""Evaluate a trained run on its dataset and write ``RUN_DIR/evaluation.json``.

Reconstructions are measured on the test subjects; every sample figure is set against the
**held-out** subjects (validation + test, never trained on), beside a real-vs-real baseline
that splits real slices by subject, matches the compared sample size and reports a spread
(:mod:`core.evaluation.baselines`).  The two-sample test is run three times: against held-out
subjects (the headline), against training slices (a memorisation signal when much lower) and
real against real; near-copies sit beside it, and :func:`verdict` calls samples
indistinguishable only when both the test and the near-copies are within the real baseline.

The keys ``ssim``, ``psnr``, ``ms_ssim_synthetic``, ``ms_ssim_real``, ``frechet``, ``c2st``,
``memorisation`` and ``n_samples`` are the stable contract of ``design.md``; a figure that
cannot be computed is ``{"available": false, "reason": ...}`` and the others are still written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import UserError

__all__ = ["EVALUATION", "QUICK_C2ST", "STEPS", "evaluate_run", "read_evaluation", "run_context", "unavailable", "verdict"]

EVALUATION = "evaluation.json"


def _summary(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return {"mean": None, "sd": None, "median": None, "p05": None, "p95": None, "n": int(len(values))}
    return {"mean": float(finite.mean()), "sd": float(finite.std()), "median": float(np.median(finite)),
            "p05": float(np.percentile(finite, 5)), "p95": float(np.percentile(finite, 95)),
            "n": int(len(values))}


def run_context(run_dir: str | Path) -> dict:
    """Config, manifest, split arrays and per-slice subjects/sites/positions of a run's dataset.

    A view of :class:`core.training.runs.RunData` kept for its callers (use RunData directly):
    ``{"config", "manifest", "dataset", "train": {...}, "test": {...}}`` where each split is
    :meth:`core.training.runs.SplitData.as_dict`.  Raises UserError when the dataset is gone
    or has no training or test images.
    """
    from core.training.runs import RunData

    data = RunData.open(run_dir)
    data.dataset_dir  # noqa: B018 — UserError (DatasetMissing) when it is not recorded or gone
    dataset = data.dataset_info["path"]
    context = {"config": data.config, "manifest": data.manifest, "dataset": dataset}
    for split in ("train", "test"):
        if not data.has_split(split):
            raise UserError(
                f"dataset {dataset} has no {split} images: evaluation needs a {split} split "
                "(rebuild the dataset with a non-zero test fraction)" if split == "test" else
                f"dataset {dataset} has no training images"
            )
        context[split] = data.split(split).as_dict()
    return context


def _per_site(values, sites) -> dict:
    sites = np.asarray(sites)
    return {site: _summary(np.asarray(values)[sites == site]) for site in sorted(set(sites.tolist()))}


#: Where the evaluator's synthetic samples come from: the model's own prior (a VAE's N(0, I),
#: a VQ-VAE's prior) or, for a VAE, its aggregate posterior (core.models.aggregate).
SAMPLE_SOURCES = ("prior", "aggregate")


def unavailable(reason: str, **extra) -> dict:
    """A figure that could not be computed: ``{"available": False, "reason": ...}``."""
    return {"available": False, "reason": str(reason), **extra}


class _Evaluation:
    """What the evaluation steps share: the run's data and model, the samples, the result."""

    def __init__(self, data, model, n_samples: int, seed: int, sample_source: str, c2st_options: dict):
        self.data, self.model, self.seed = data, model, int(seed)
        self.n_samples, self.sample_source, self.c2st_options = int(n_samples), sample_source, c2st_options
        self.train, self.test = data.split("train"), data.split("test")
        # The real side of every sample figure: subjects the model never trained on.
        parts = [data.split(name) for name in ("val", "test") if data.has_split(name)]
        self.heldout = np.concatenate([p.images for p in parts])
        self.heldout_subjects = [s for p in parts for s in p.subjects]
        self.heldout_conditions = (None if parts[-1].conditions is None
                                   else np.concatenate([p.conditions for p in parts]))
        self.samples = None
        self.sample_conditions = None
        self.no_samples = "no samples were drawn"
        self.result: dict = {}

    def need_samples(self):
        if self.samples is None:
            raise UserError(self.no_samples)
        return self.samples


def _reconstruction(ev: _Evaluation):
    from core.evaluation.metrics import compute_psnr, compute_ssim

    test = ev.test
    recon = np.asarray(ev.model.reconstruct(test.images) if test.conditions is None
                       else ev.model.reconstruct(test.images, condition=test.conditions))[..., 0]
    ssim, psnr = compute_ssim(test.images, recon), compute_psnr(test.images, recon)
    ev.result["ssim"] = {**_summary(ssim), "per_site": _per_site(ssim, test.sites)}
    ev.result["psnr"] = {**_summary(psnr), "per_site": _per_site(psnr, test.sites), "unit": "dB"}


def _draw_samples(ev: _Evaluation):
    from core.evaluation.metrics import compute_sharpness

    # A conditional model is asked for the held-out subjects' own mix of ages, sexes and slices.
    c = ev.heldout_conditions
    ev.sample_conditions = None if c is None else c[np.random.default_rng(ev.seed).integers(0, len(c), ev.n_samples)]
    options = {}
    if ev.sample_source == "aggregate":
        ev.data.attach_aggregate(ev.model)
        options["source"] = "aggregate"
    if ev.sample_conditions is not None:
        options["condition"] = ev.sample_conditions
    try:
        ev.samples = np.asarray(ev.model.sample(ev.n_samples, seed=ev.seed, **options))[..., 0]
    except UserError as exc:  # a VQ-VAE trained without its prior cannot sample
        ev.no_samples = str(exc)
        ev.result["samples_unavailable"] = str(exc)
        raise
    ev.result["sharpness_ratio"] = float(compute_sharpness(ev.samples, ev.heldout))
    # The periodic pattern a transposed-convolution decoder can paint, beside real slices' own figure.
    from core.evaluation.checkerboard import checkerboard_index

    ev.result["checkerboard"] = {
        "samples": {str(k): v for k, v in checkerboard_index(ev.samples).items()},
        "real": {str(k): v for k, v in checkerboard_index(ev.heldout).items()},
        "label": "power at the period-2/4/8 frequencies ÷ the power around them (median over images; 1 = none)",
    }


def _diversity(ev: _Evaluation):
    from core.evaluation.baselines import diversity_against_real

    figure = diversity_against_real(ev.heldout, ev.heldout_subjects, ev.samples, seed=ev.seed)
    real = figure["real_spread"]
    ev.result["ms_ssim_real"] = {"mean": real["median"], **real, "n_draws": figure["n_draws"],
                                 "split": figure["split"]}
    ev.result["ms_ssim_setting"] = _ms_ssim_setting(ev.heldout)
    ev.need_samples()
    ev.result["ms_ssim_synthetic"] = {
        "mean": figure["value"], "spread": figure["value_spread"], "real_spread": real,
        "difference_from_real": figure["value"] - real["median"],
        "within_real_spread": figure["within_real_spread"], "n_pairs": figure["n_pairs"]}


def _ms_ssim_setting(images):
    from core.evaluation.diversity import ms_ssim_setting

    return ms_ssim_setting(images.shape[1])


def _distances(ev: _Evaluation):
    from core import settings
    from core.evaluation.baselines import distance_against_real
    from core.evaluation.distances import frechet_distance, mmd_rbf
    from core.evaluation.features import cached_slice_position_net, encoder_features, handcrafted_features

    train = ev.train
    net = cached_slice_position_net(settings.cache_dir() / "evaluation", ev.data.manifest["hash"],
                                    train.images, train.positions, train.sites, seed=ev.seed)
    spaces = {
        "fd_own_encoder": ("FD (own encoder)", frechet_distance,
                           lambda x, c: encoder_features(ev.model, x, c)),
        "fd_slice_position_net": ("FD (slice-position net)", frechet_distance, lambda x, c: net.features(x)),
        "mmd_handcrafted": ("MMD (handcrafted)", lambda a, b: mmd_rbf(a, b)["mmd2"],
                            lambda x, c: handcrafted_features(x)),
    }
    for key, (label, distance, extract) in spaces.items():
        real_f = extract(ev.heldout, ev.heldout_conditions)
        syn_f = None if ev.samples is None else extract(ev.samples, ev.sample_conditions)
        entry = {"label": label, "dims": int(real_f.shape[1]),
                 **distance_against_real(real_f, ev.heldout_subjects, syn_f, distance, seed=ev.seed)}
        if key == "mmd_handcrafted":
            entry["kernel"] = "Gaussian, median bandwidth, unbiased MMD², features standardised by the reference"
        ev.result[key] = entry
    headline = ev.result["fd_slice_position_net"]
    ev.result["frechet"] = {
        "mean": headline.get("value"), "real_spread": headline["real_spread"],
        "within_real_spread": headline.get("within_real_spread"),
        "feature_space": "slice-position net (trained once per dataset on its train split, cached)",
        "own_encoder": ev.result["fd_own_encoder"].get("value"), "slice_position_net": headline.get("value"),
        "net_training_loss": net.history,
        "note": "Fréchet distance in a feature space of our own, not FID (no Inception weights)",
    }
    ev.need_samples()


def _memorisation(ev: _Evaluation):
    from core.evaluation.memorisation import memorisation_report
    from core.evaluation.study_stats import wilson_interval

    samples = ev.need_samples()
    # The held-out subjects are the strangers whose distance ratios set the threshold.
    report = memorisation_report(samples, ev.train.images, ev.train.subjects,
                                 reference=ev.heldout, reference_subjects=ev.heldout_subjects)
    # The same rule on the held-out real slices, each subject judged with the threshold of the
    # other strangers (none sets its own): how often a real stranger is called a "copy".
    real = report["strangers"].get("reference") or {"near_copies": 0, "n": 0, "near_copy_fraction": 0.0}
    k, n = real["near_copies"], real["n"]
    report["real_baseline"] = {"near_copies": k, "n": n, "near_copy_fraction": real["near_copy_fraction"],
                               "ci95": [round(v, 4) for v in wilson_interval(k, n)] if n else None,
                               "meaning": "held-out real slices under the same near-copy rule, each subject "
                                          "with the threshold of the other strangers"}
    report["ci95"] = [round(v, 4) for v in wilson_interval(report["near_copies"], len(samples))]
    ev.result["memorisation"] = report


def _two_sample(ev: _Evaluation):
    from core.evaluation.c2st import classifier_two_sample_test, memorisation_gap

    samples = ev.need_samples()
    options = {"seed": ev.seed, **ev.c2st_options}
    heldout = classifier_two_sample_test(ev.heldout, ev.heldout_subjects, samples, **options)
    entry = {**heldout, "real_side": "held-out subjects (validation + test), split by subject"}
    rng = np.random.default_rng(ev.seed)
    train_images, train_subjects = ev.train.images, np.asarray(ev.train.subjects)
    # Against the training slices, at the held-out side's size, so both accuracies have one power.
    pick = np.sort(rng.choice(len(train_images), min(len(train_images), len(ev.heldout)), replace=False))
    try:
        training = classifier_two_sample_test(train_images[pick], train_subjects[pick], samples, **options)
        entry["against_training"] = training
        entry["memorisation_gap"] = memorisation_gap(heldout, training)
    except UserError as exc:
        entry["against_training"] = unavailable(exc)
    # Real against real: the held-out subjects against as many training slices as there are
    # samples, those split by subject: what a model that drew new people of the training
    # population would score at these sizes.
    pick = np.sort(rng.choice(len(train_images), min(len(train_images), ev.n_samples), replace=False))
    entry["real_baseline"] = _cached_real_baseline(
        ev, options, lambda: classifier_two_sample_test(ev.heldout, ev.heldout_subjects, train_images[pick],
                                                        train_subjects[pick], **options))
    memo = ev.result.get("memorisation") or {}
    if "near_copy_fraction" in memo:
        entry["near_copy_fraction"] = memo["near_copy_fraction"]
    ev.result["c2st"] = entry


def _cached_real_baseline(ev: _Evaluation, options: dict, measure: Callable[[], dict]) -> dict:
    """The real-vs-real two-sample test of the run's dataset, measured once per dataset, sample
    count and options: it involves no model, so every run and sampler of a dataset shares it."""
    import hashlib
    import json

    from core import settings
    from core.atomic import read_json, write_json_atomic

    key = json.dumps({"dataset": ev.data.manifest.get("hash"), "n": ev.n_samples, "version": 1,
                      "options": {k: options[k] for k in sorted(options)}}, sort_keys=True)
    path = settings.cache_dir() / "evaluation" / f"c2st_real_{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    cached = read_json(path, default=None) if path.is_file() else None
    if isinstance(cached, dict) and "accuracy" in cached:
        return {**cached, "cached": True}
    try:
        result = measure()
    except UserError as exc:
        return unavailable(exc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
    return result


def _anomaly(ev: _Evaluation):
    from core.evaluation.anomaly import lesion_auroc

    n = min(64, len(ev.test))
    c = ev.test.conditions
    ev.result["anomaly"] = lesion_auroc(ev.model, ev.test.images[:n], seed=ev.seed,
                                        condition=None if c is None else c[:n])


def verdict(result: dict) -> dict:
    """Whether the samples are *indistinguishable* from real people, and why (or why not).

    Both must hold: the held-out two-sample accuracy is not beyond the real-vs-real one (its 95 %
    interval does not lie wholly above both the real baseline's interval and 0.5:
    :func:`core.evaluation.c2st.beyond_real`) and the samples hold no more near-copies of
    training slices than real strangers do.  Fréchet, MMD and MS-SSIM are reported beside it.
    """
    c2st, memo = result.get("c2st") or {}, result.get("memorisation") or {}
    baseline = c2st.get("real_baseline") or {}
    reasons = []
    if c2st.get("accuracy") is None or baseline.get("accuracy") is None:
        return unavailable("the two-sample test or its real baseline could not be computed",
                           indistinguishable=None)
    if "near_copy_fraction" not in memo:
        return unavailable(f"memorisation is unavailable: {memo.get('reason', 'not measured')}",
                           indistinguishable=None)
    from core.evaluation.c2st import beyond_real

    c2st_ok = not beyond_real(c2st, baseline)
    real_copies = memo["real_baseline"]["near_copy_fraction"]
    copies_ok = memo["near_copy_fraction"] <= real_copies
    reasons.append(f"two-sample accuracy {c2st['accuracy']:.3f} [{c2st['ci95'][0]:.3f}, {c2st['ci95'][1]:.3f}] vs "
                   f"real-vs-real {baseline['accuracy']:.3f} [{baseline['ci95'][0]:.3f}, {baseline['ci95'][1]:.3f}]: "
                   f"{'not above' if c2st_ok else 'above'} the real baseline and chance")
    reasons.append(f"near-copies {memo['near_copy_fraction']:.3f} vs real strangers {real_copies:.3f}: "
                   f"{'no more' if copies_ok else 'more'} than real")
    within = {key: (result.get(key) or {}).get("within_real_spread")
              for key in ("fd_slice_position_net", "fd_own_encoder", "mmd_handcrafted", "ms_ssim_synthetic")}
    return {"indistinguishable": bool(c2st_ok and copies_ok), "two_sample_within_real": bool(c2st_ok),
            "near_copies_within_real": bool(copies_ok), "within_real_spread": within, "reasons": reasons}


#: (step, progress message, keys the step writes, function): a step that raises UserError
#: marks its keys unavailable with the reason, and the rest still run.
STEPS = (
    ("reconstruction", "reconstructing the test slices", ("ssim", "psnr"), _reconstruction),
    ("sampling", "drawing synthetic samples", ("sharpness_ratio", "checkerboard"), _draw_samples),
    ("ms_ssim", "MS-SSIM diversity beside the by-subject real spread", ("ms_ssim_real", "ms_ssim_synthetic"),
     _diversity),
    ("frechet_mmd", "Fréchet distances and MMD beside the by-subject real spread",
     ("fd_own_encoder", "fd_slice_position_net", "mmd_handcrafted", "frechet"), _distances),
    ("memorisation", "near-copies of training slices", ("memorisation",), _memorisation),
    ("c2st", "classifier two-sample tests (held-out, training, real vs real)", ("c2st",), _two_sample),
    ("anomaly", "anomaly map check with synthetic lesions", ("anomaly",), _anomaly),
)


#: A first look: the two-sample tests with two folds and at most 15 classifier epochs (~3x faster;
#: less power, so its accuracies are not figures to quote).  Recorded as ``quick`` in the result.
QUICK_C2ST = {"max_folds": 2, "max_epochs": 15}


def evaluate_run(run_dir: str | Path, n_samples: int = 256, seed: int = 0,
                 progress: Callable[[float, str], None] | None = None, write: bool = True,
                 sample_source: str = "prior", c2st_options: dict | None = None, quick: bool = False) -> dict:
    """Measure a trained run and write ``evaluation.json`` (atomically); return the figures.

    Args:
        run_dir: a run folder with ``model.keras`` (and ``prior.keras`` for a VQ-VAE to sample).
        n_samples: synthetic samples drawn with ``seed`` for every sample-based figure.
        progress: called as ``progress(fraction, message)`` between steps.
        sample_source: ``"prior"`` or, for a VAE, ``"aggregate"`` (a Gaussian mixture on the
            training latents, fitted and kept beside the model on first use); recorded in
            the result as ``sample_source``.
        c2st_options: passed to :func:`core.evaluation.c2st.classifier_two_sample_test`
            (e.g. ``max_epochs`` in tests).
        quick: :data:`QUICK_C2ST` under ``c2st_options`` (a first look; ``quick`` in the result).

    Every step of :data:`STEPS` runs; one that cannot be computed (no prior to sample from,
    one training subject, one held-out subject ...) leaves ``{"available": false, "reason"}``
    under its keys and the others are still written.
    """
    from core.atomic import write_json_atomic
    from core.training.runs import RunData

    if int(n_samples) < 8:
        raise UserError(f"evaluation needs at least 8 samples, got {n_samples}")
    if sample_source not in SAMPLE_SOURCES:
        raise UserError(f"sample_source must be one of {', '.join(SAMPLE_SOURCES)}, got {sample_source!r}")
    say = progress or (lambda fraction, message: None)
    started = time.perf_counter()

    say(0.0, "loading the model and the dataset")
    data = RunData.open(run_dir)
    if sample_source == "aggregate" and data.model_type != "vae":
        raise UserError("the aggregate posterior is for a VAE; a VQ-VAE samples from its prior over the code grid")
    for split in ("train", "test"):
        if not data.has_split(split):
            raise UserError(f"dataset {data.dataset_dir} has no {split} images: evaluation needs a {split} split"
                            + (" (rebuild the dataset with a non-zero test fraction)" if split == "test" else ""))
    options = {**(QUICK_C2ST if quick else {}), **(c2st_options or {})}
    ev = _Evaluation(data, data.load_model(), n_samples, seed, sample_source, options)
    ev.result.update({
        "quick": bool(quick),
        "run": data.name, "model_type": data.model_type, "preset": data.config.get("preset"),
        "model_epoch": data.status.get("epoch"), "dataset_hash": data.manifest.get("hash"),
        "image_size": int(ev.test.images.shape[1]), "seed": int(seed), "sample_source": sample_source,
        "n_test": int(len(ev.test)), "n_train": int(len(ev.train)), "n_heldout": int(len(ev.heldout)),
        "n_heldout_subjects": int(len(set(ev.heldout_subjects))),
        "n_train_subjects": int(len(set(ev.train.subjects))),
    })
    timings = {"load_s": round(time.perf_counter() - started, 3)}
    for i, (name, message, keys, step) in enumerate(STEPS):
        say(0.05 + 0.9 * i / len(STEPS), message)
        t0 = time.perf_counter()
        try:
            step(ev)
        except UserError as exc:
            for key in keys:
                if key not in ev.result:
                    ev.result[key] = unavailable(exc)
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)
    if ev.samples is None:
        ev.result["c2st"] = unavailable(ev.no_samples, accuracy=None)
    ev.result["verdict"] = verdict(ev.result)
    ev.result["n_samples"] = int(n_samples) if ev.samples is not None else 0
    ev.result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    ev.result["seconds"] = round(time.perf_counter() - started, 2)
    ev.result["timings"] = timings
    if write:
        write_json_atomic(Path(run_dir) / EVALUATION, ev.result)
    say(1.0, "done")
    return ev.result


def read_evaluation(run_dir: str | Path) -> dict | None:
    """The run's stored ``evaluation.json``, or None when it was never evaluated."""
    from core.atomic import read_json

    path = Path(run_dir) / EVALUATION
    if not path.is_file():
        return None
    data = read_json(path, default=None)
    if not isinstance(data, dict):
        raise UserError(f"{path} is unreadable: evaluate the run again")
    return data
