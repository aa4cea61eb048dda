"""Evaluate a trained run on its dataset and write ``RUN_DIR/evaluation.json``.

Every figure is measured on subjects the model never saw (the test split), or on samples
drawn from the model, with fixed seeds.  The keys ``ssim``, ``psnr``, ``ms_ssim_synthetic``,
``ms_ssim_real``, ``frechet``, ``c2st`` and ``n_samples`` are the stable contract of
``design.md``; the rest is detail.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import UserError

__all__ = ["EVALUATION", "evaluate_run", "read_evaluation", "run_context"]

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


def _split_conditions(config, manifest, split):
    if not config.get("conditional"):
        return None
    from core.models.conditions import dataset_conditions

    return dataset_conditions(manifest, split)


def _per_site(values, sites) -> dict:
    sites = np.asarray(sites)
    return {site: _summary(np.asarray(values)[sites == site]) for site in sorted(set(sites.tolist()))}


#: Where the evaluator's synthetic samples come from: the model's own prior (a VAE's N(0, I),
#: a VQ-VAE's PixelCNN) or, for a VAE, its aggregate posterior (core.models.aggregate).
SAMPLE_SOURCES = ("prior", "aggregate")


def evaluate_run(run_dir: str | Path, n_samples: int = 256, seed: int = 0,
                 progress: Callable[[float, str], None] | None = None, write: bool = True,
                 sample_source: str = "prior") -> dict:
    """Measure a trained run and write ``evaluation.json`` (atomically); return the figures.

    Args:
        run_dir: a run folder with ``model.keras`` (and ``prior.keras`` for a VQ-VAE to sample).
        n_samples: synthetic samples drawn with ``seed`` for every sample-based figure.
        progress: called as ``progress(fraction, message)`` between stages.
        sample_source: ``"prior"`` or, for a VAE, ``"aggregate"`` (a Gaussian mixture on the
            training latents, fitted and kept beside the model on first use); recorded in
            the result as ``sample_source``.
    """
    from core.atomic import write_json_atomic
    from core.evaluation.anomaly import lesion_auroc
    from core.evaluation.c2st import classifier_two_sample_test
    from core.evaluation.distances import frechet_distance, mmd_rbf
    from core.evaluation.diversity import pairwise_ms_ssim
    from core.evaluation.features import cached_slice_position_net, encoder_features, handcrafted_features
    from core.evaluation.memorisation import memorisation_report
    from core.evaluation.metrics import compute_psnr, compute_sharpness, compute_ssim
    from core.training import checkpoints, runs

    if int(n_samples) < 8:
        raise UserError(f"evaluation needs at least 8 samples, got {n_samples}")
    if sample_source not in SAMPLE_SOURCES:
        raise UserError(f"sample_source must be one of {', '.join(SAMPLE_SOURCES)}, got {sample_source!r}")
    run_dir = Path(run_dir)
    say = progress or (lambda fraction, message: None)
    timings: dict = {}
    started = last = time.perf_counter()

    def lap(name):
        nonlocal last
        now = time.perf_counter()
        timings[name] = round(now - last, 3)
        last = now

    say(0.0, "loading the model and the dataset")
    context = run_context(run_dir)
    if sample_source == "aggregate" and context["config"].get("model_type") != "vae":
        raise UserError("the aggregate posterior is for a VAE; a VQ-VAE samples from its PixelCNN prior")
    model = checkpoints.load_run_model(run_dir)
    status = runs.read_status(run_dir)
    train, test = context["train"], context["test"]
    size = test["images"].shape[1]
    lap("load_s")

    say(0.1, "reconstructing the test slices")
    test_c = test["conditions"]
    recon = np.asarray(model.reconstruct(test["images"]) if test_c is None
                       else model.reconstruct(test["images"], condition=test_c))[..., 0]
    ssim = compute_ssim(test["images"], recon)
    psnr = compute_psnr(test["images"], recon)
    result: dict = {
        "run": run_dir.name, "model_type": context["config"].get("model_type"),
        "preset": context["config"].get("preset"), "model_epoch": status.get("epoch"),
        "dataset_hash": context["manifest"].get("hash"), "image_size": int(size), "seed": int(seed),
        "ssim": {**_summary(ssim), "per_site": _per_site(ssim, test["sites"])},
        "psnr": {**_summary(psnr), "per_site": _per_site(psnr, test["sites"]), "unit": "dB"},
        "n_test": int(len(test["images"])), "n_train": int(len(train["images"])),
        "sample_source": sample_source,
    }
    lap("reconstruction_s")

    say(0.2, "drawing synthetic samples")
    try:
        # A conditional model is asked for the test split's own mix of ages, sexes and slices.
        sample_c = None if test_c is None else test_c[np.random.default_rng(seed).integers(0, len(test_c), int(n_samples))]
        options = {}
        if sample_source == "aggregate":
            from core.models.aggregate import attach_run_aggregate

            attach_run_aggregate(model, run_dir)
            options["source"] = "aggregate"
        if sample_c is not None:
            options["condition"] = sample_c
        samples = np.asarray(model.sample(int(n_samples), seed=seed, **options))[..., 0]
    except UserError as exc:  # a VQ-VAE trained without its prior cannot sample
        samples = None
        result["samples_unavailable"] = str(exc)
    lap("sampling_s")

    rng = np.random.default_rng(seed)
    halves = rng.permutation(len(test["images"]))
    half_a, half_b = halves[: len(halves) // 2], halves[len(halves) // 2:]

    say(0.3, "MS-SSIM diversity")
    real_div = pairwise_ms_ssim(test["images"], seed=seed, groups=test["subjects"])
    result["ms_ssim_real"] = real_div
    result["ms_ssim_setting"] = real_div["setting"]
    if samples is not None:
        syn_div = pairwise_ms_ssim(samples, seed=seed)
        syn_div["difference_from_real"] = syn_div["mean"] - real_div["mean"]
        syn_div["within_target"] = bool(abs(syn_div["difference_from_real"]) <= 0.05)
        result["ms_ssim_synthetic"] = syn_div
    lap("ms_ssim_s")

    say(0.4, "training the slice-position net")
    from core import settings

    net = cached_slice_position_net(settings.cache_dir() / "evaluation", context["manifest"]["hash"],
                                    train["images"], train["positions"], train["sites"], seed=seed)
    lap("slice_position_net_s")

    say(0.55, "Fréchet distances and MMD")
    spaces = {
        "fd_own_encoder": ("FD (own encoder)", lambda x, c=None: encoder_features(model, x, c)),
        "fd_slice_position_net": ("FD (slice-position net)", net.features),
    }
    test_feats = {}
    for key, (label, extract) in spaces.items():
        own = key == "fd_own_encoder"
        real_f = extract(test["images"], test_c) if own else extract(test["images"])
        test_feats[key] = real_f
        entry = {"label": label, "real_halves": frechet_distance(real_f[half_a], real_f[half_b]),
                 "dims": int(real_f.shape[1])}
        if samples is not None:
            entry["value"] = frechet_distance(real_f, extract(samples, sample_c) if own else extract(samples))
        result[key] = entry
    hand_real = handcrafted_features(test["images"])
    mmd_entry = {"label": "MMD (handcrafted)", "real_halves": mmd_rbf(hand_real[half_a], hand_real[half_b])["mmd2"],
                 "dims": int(hand_real.shape[1]), "kernel": "Gaussian, median bandwidth, unbiased MMD²"}
    if samples is not None:
        mmd = mmd_rbf(hand_real, handcrafted_features(samples))
        mmd_entry.update(value=mmd["mmd2"], bandwidth=mmd["bandwidth"])
    result["mmd_handcrafted"] = mmd_entry
    headline = result["fd_slice_position_net"]
    result["frechet"] = {
        "mean": headline.get("value"), "feature_space": "slice-position net (trained once per dataset on its train split, cached)",
        "real_halves": headline["real_halves"], "own_encoder": result["fd_own_encoder"].get("value"),
        "slice_position_net": headline.get("value"), "net_training_loss": net.history,
        "note": "Fréchet distance in a feature space of our own, not FID (no Inception weights)",
    }
    lap("frechet_mmd_s")

    if samples is not None:
        say(0.7, "classifier two-sample test")
        result["c2st"] = classifier_two_sample_test(train["images"], samples, test["images"], seed=seed)
        lap("c2st_s")
        say(0.8, "memorisation")
        result["memorisation"] = memorisation_report(samples, train["images"], train["subjects"])
        result["sharpness_ratio"] = float(compute_sharpness(samples, test["images"]))
        lap("memorisation_s")
    else:
        result["c2st"] = {"accuracy": None, "reason": result["samples_unavailable"]}

    say(0.9, "anomaly map check with synthetic lesions")
    n_lesioned = min(64, len(test["images"]))
    result["anomaly"] = lesion_auroc(model, test["images"][:n_lesioned], seed=seed,
                                     condition=None if test_c is None else test_c[:n_lesioned])
    lap("anomaly_s")

    result["n_samples"] = int(n_samples) if samples is not None else 0
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["timings"] = timings
    if write:
        write_json_atomic(run_dir / EVALUATION, result)
    say(1.0, "done")
    return result


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
