"""Evaluate a trained run on its dataset and write ``RUN_DIR/evaluation.json``.

Reconstructions are measured on the test subjects; every sample figure is set against the
**held-out** subjects (the test split: never used in training, not even for early stopping), beside a real-vs-real baseline
that splits real slices by subject, matches the compared sample size and reports a spread
(:mod:`core.evaluation.baselines`).  The two-sample test is run three times: against held-out
subjects (the headline), against training slices (a memorisation signal when much lower) and
real against real; near-copies sit beside it, and :func:`verdict` calls samples
indistinguishable only when both the test and the near-copies are within the real baseline.

The keys ``ssim``, ``psnr``, ``ms_ssim_synthetic``, ``ms_ssim_real``, ``frechet``, ``c2st``,
``memorisation`` and ``n_samples`` are the stable contract of ``docs/architecture.md``; a figure that
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

    def __init__(self, data, model, n_samples: int, seed: int, sample_source: str, c2st_options: dict,
                 embedding_steps: int = 3000):
        self.data, self.model, self.seed = data, model, int(seed)
        self.n_samples, self.sample_source, self.c2st_options = int(n_samples), sample_source, c2st_options
        self.train, self.test = data.split("train"), data.split("test")
        # The real side of every sample figure: the test subjects, which training never used for
        # anything.  The validation subjects chose the early-stopping epoch, so they are not
        # held out; they are named apart (``n_validation_subjects``) and judge nothing.
        self.heldout = self.test.images
        self.heldout_subjects = list(self.test.subjects)
        self.heldout_positions = np.asarray(self.test.positions, np.float64)
        self.heldout_conditions = self.test.conditions
        self.validation_subjects = sorted(set(data.split("val").subjects)) if data.has_split("val") else []
        val = data.split("val") if data.has_split("val") else None
        self.validation_split = None if val is None else (val.images, val.positions, val.subjects)
        self.embedding_steps = int(embedding_steps)
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
    from core.evaluation.diversity import pairwise_ms_ssim

    ev.result["ms_ssim_setting"] = _ms_ssim_setting(ev.heldout)
    try:
        figure = diversity_against_real(ev.heldout, ev.heldout_subjects, ev.samples, seed=ev.seed)
    except UserError as exc:
        # No by-subject real spread (one held-out subject): the samples' own diversity still counts.
        ev.result["ms_ssim_real"] = unavailable(exc)
        samples = ev.need_samples()
        ev.result["ms_ssim_synthetic"] = {"mean": pairwise_ms_ssim(samples, seed=ev.seed)["mean"],
                                          "real_spread": unavailable(exc), "within_real_spread": None}
        return
    real = figure["real_spread"]
    ev.result["ms_ssim_real"] = {"mean": real["median"], **real, "n_draws": figure["n_draws"],
                                 "split": figure["split"]}
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
        try:
            figure = distance_against_real(real_f, ev.heldout_subjects, syn_f, distance, seed=ev.seed)
        except UserError as exc:
            # No by-subject real spread (one held-out subject): the distance itself still counts.
            figure = {"real_spread": unavailable(exc), "within_real_spread": None}
            if syn_f is not None and len(real_f) >= 2 and len(syn_f) >= 2:
                figure["value"] = float(distance(real_f, syn_f))
        entry = {"label": label, "dims": int(real_f.shape[1]), **figure}
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
    entry = {**heldout, "real_side": "held-out subjects (the test split, never used in training), split by subject"}
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

    import core.evaluation.c2st as c2st_module

    # The key holds the classifier's own source: a changed test is measured again, never read stale.
    version = hashlib.sha256(Path(c2st_module.__file__).read_bytes()).hexdigest()[:12]
    key = json.dumps({"dataset": ev.data.manifest.get("hash"), "n": ev.n_samples, "version": version,
                      "heldout": sorted(set(ev.heldout_subjects)),
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


def _anatomy(ev: _Evaluation):
    """The anatomy-aware figures: the learned-space two-sample test and precision / recall /
    density / coverage in that space, each beside its by-subject real spread."""
    from core import settings
    from core.evaluation.c2st import beyond_real, embedding_two_sample_test
    from core.evaluation.embedding import EMBEDDING_MEANING, cached_anatomy_embedding, level_features
    from core.evaluation.fidelity import prdc_against_real

    samples = ev.need_samples()
    train = ev.train
    embedding = cached_anatomy_embedding(settings.cache_dir() / "evaluation", ev.data.manifest["hash"], train.images,
                                         train.positions, train.subjects, seed=ev.seed, steps=ev.embedding_steps,
                                         check=ev.validation_split)
    space = {"meaning": EMBEDDING_MEANING, "steps": embedding.info.get("steps"),
             "check_tasks": embedding.info.get("check_tasks"), "dims": None}
    real_f = embedding.features(ev.heldout)
    space["dims"] = int(real_f.shape[1])
    syn_f = embedding.features(samples)
    train_f = embedding.features(train.images)
    conditioned = ev.sample_conditions is not None
    if conditioned:
        # A level-conditioned sample is judged at the level it was asked for.
        low, high = embedding.info["level_range"]
        real_f = level_features(embedding, real_f, ev.heldout_positions)
        syn_f = level_features(embedding, syn_f, low + ev.sample_conditions[:, 2] * (high - low))
        train_f = level_features(embedding, train_f, train.positions)
    test = embedding_two_sample_test(real_f, ev.heldout_subjects, syn_f, seed=ev.seed)
    # Real against real in the same space: the held-out subjects against as many training slices
    # as there are samples, grouped by subject: what new people of the training population score.
    # The net has seen those people (the samples it has not), which can only raise this baseline:
    # the bench's planted null (bench/anatomy_judge.py) measures by how much.
    rng = np.random.default_rng(ev.seed)
    pick = np.sort(rng.choice(len(train_f), min(len(train_f), ev.n_samples), replace=False))
    try:
        baseline = embedding_two_sample_test(real_f, ev.heldout_subjects, train_f[pick],
                                             np.asarray(train.subjects)[pick], seed=ev.seed)
    except UserError as exc:
        baseline = unavailable(exc)
    ev.result["c2st_anatomy"] = {
        **test, "real_baseline": baseline, "conditioned_on_level": conditioned,
        "beyond_real": None if "accuracy" not in baseline else beyond_real(test, baseline),
        "real_side": "held-out subjects (the test split), split by subject", "feature_space": space}
    figures = prdc_against_real(real_f, ev.heldout_subjects, syn_f, seed=ev.seed)
    for name in ("precision", "recall", "density", "coverage"):
        ev.result[name] = {**figures.pop(name), "feature_space": "anatomy embedding"}
    ev.result["fidelity"] = {**figures, "feature_space": space,
                             "meaning": "precision: samples inside the real slices' k-NN balls (realism); recall: real "
                                        "slices inside the samples' balls (variety covered); density and coverage: "
                                        "the same ideas robust to outliers (Naeem et al. 2020)"}


def _anomaly(ev: _Evaluation):
    from core.evaluation.anomaly import lesion_auroc

    n = min(64, len(ev.test))
    c = ev.test.conditions
    ev.result["anomaly"] = lesion_auroc(ev.model, ev.test.images[:n], seed=ev.seed,
                                        condition=None if c is None else c[:n])


def verdict(result: dict) -> dict:
    """Whether the samples are *indistinguishable* from real people, and why (or why not).

    All must hold: the anatomy-aware two-sample test (where it could run) and the held-out two-sample accuracy is not beyond the real-vs-real one (its 95 %
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
    anatomy = result.get("c2st_anatomy") or {}
    anatomy_base = anatomy.get("real_baseline") or {}
    if anatomy.get("accuracy") is None or anatomy_base.get("accuracy") is None:
        anatomy_ok = None
        reasons.append(f"anatomy-aware two-sample test unavailable: {anatomy.get('reason', 'not measured')}")
    else:
        anatomy_ok = not beyond_real(anatomy, anatomy_base)
        reasons.append(f"anatomy-aware two-sample accuracy {anatomy['accuracy']:.3f} [{anatomy['ci95'][0]:.3f}, "
                       f"{anatomy['ci95'][1]:.3f}] vs real-vs-real {anatomy_base['accuracy']:.3f} "
                       f"[{anatomy_base['ci95'][0]:.3f}, {anatomy_base['ci95'][1]:.3f}]: "
                       f"{'not above' if anatomy_ok else 'above'} the real baseline and chance")
    within = {key: (result.get(key) or {}).get("within_real_spread")
              for key in ("fd_slice_position_net", "fd_own_encoder", "mmd_handcrafted", "ms_ssim_synthetic")}
    within.update({key: (result.get(key) or {}).get("within_real_spread")
                   for key in ("precision", "recall", "density", "coverage")})
    # Samples whose anatomy is told apart are not indistinguishable, whatever the pixel judge says;
    # where the anatomy test could not run, the verdict rests on the others and says so.
    return {"indistinguishable": bool(c2st_ok and copies_ok and anatomy_ok is not False),
            "two_sample_within_real": bool(c2st_ok), "anatomy_within_real": anatomy_ok,
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
    ("anatomy", "anatomy-aware two-sample test, precision / recall / density / coverage",
     ("c2st_anatomy", "precision", "recall", "density", "coverage", "fidelity"), _anatomy),
    ("anomaly", "anomaly map check with synthetic lesions", ("anomaly",), _anomaly),
)


#: A first look: the two-sample tests with two folds and at most 15 classifier epochs (~3x faster;
#: less power, so its accuracies are not figures to quote).  Recorded as ``quick`` in the result.
QUICK_C2ST = {"max_folds": 2, "max_epochs": 15}
#: Training steps of the anatomy embedding (cached per dataset and step count): the full figure,
#: and the quick look's.
EMBEDDING_STEPS, QUICK_EMBEDDING_STEPS = 3000, 800


def evaluate_run(run_dir: str | Path, n_samples: int = 256, seed: int = 0,
                 progress: Callable[[float, str], None] | None = None, write: bool = True,
                 sample_source: str = "prior", c2st_options: dict | None = None, quick: bool = False,
                 embedding_steps: int | None = None) -> dict:
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
    from core import settings

    steps = embedding_steps or settings.embedding_steps(QUICK_EMBEDDING_STEPS if quick else EMBEDDING_STEPS)
    ev = _Evaluation(data, data.load_model(), n_samples, seed, sample_source, options, steps)
    ev.result.update({
        "quick": bool(quick),
        "run": data.name, "model_type": data.model_type, "preset": data.config.get("preset"),
        "model_epoch": data.status.get("epoch"), "dataset_hash": data.manifest.get("hash"),
        "image_size": int(ev.test.images.shape[1]), "seed": int(seed), "sample_source": sample_source,
        "n_test": int(len(ev.test)), "n_train": int(len(ev.train)), "n_heldout": int(len(ev.heldout)),
        "n_heldout_subjects": int(len(set(ev.heldout_subjects))),
        "heldout": "test split: subjects training never used, for anything",
        "n_validation_subjects": len(ev.validation_subjects),
        "n_train_subjects": int(len(set(ev.train.subjects))),
    })
    timings = {"load_s": round(time.perf_counter() - started, 3)}
    errors: dict = {}
    for i, (name, message, keys, step) in enumerate(STEPS):
        say(0.05 + 0.9 * i / len(STEPS), message)
        t0 = time.perf_counter()
        try:
            step(ev)
        except UserError as exc:
            for key in keys:
                if key not in ev.result:
                    ev.result[key] = unavailable(exc)
        except Exception as exc:  # noqa: BLE001 — one figure's failure must not cost the others
            reason = f"{name} failed: {type(exc).__name__}: {exc}"
            for key in keys:
                if key not in ev.result:
                    ev.result[key] = unavailable(reason, error=True)
            errors[name] = f"{type(exc).__name__}: {exc}"
        timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)
    if ev.samples is None:
        ev.result["c2st"] = unavailable(ev.no_samples, accuracy=None)
    ev.result["verdict"] = verdict(ev.result)
    ev.result["n_samples"] = int(n_samples) if ev.samples is not None else 0
    ev.result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    ev.result["seconds"] = round(time.perf_counter() - started, 2)
    ev.result["timings"] = timings
    if errors:
        ev.result["errors"] = errors
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
