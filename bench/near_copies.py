"""Planted near-copies on both cohorts: the distance-ratio rule beside the plain-RMS rule.

On each cohort of ``bench/cohorts.py`` (64 px, and real_dev at 128 px, compared block-averaged
to 64 px) the cases of
:func:`core.evaluation.memorisation.planted_copies` are judged by
:func:`core.evaluation.memorisation.planted_report`: copies of training slices moved 1-2 px,
mirrored, lightly blurred (sigma 0.5-0.7 px) or all three must be flagged; untouched, blurred
(sigma 0.5-0.7 and 2 px) held-out slices and averages of 4 look-alike training slices must not.
Beside it, the plain-RMS rule the evaluation used before (closer to a training slice than the
closest two training slices of different subjects).  Without ``--quick``, a demo-preset VAE is
also trained for ``--vae-epochs`` on each cohort and its samples are judged by both rules (a
blurry VAE's samples are what the plain rule miscounted).  Last, the time of one
:func:`~core.evaluation.memorisation.memorisation_report` at the evaluation's largest sizes.

Usage: ``python bench/near_copies.py [--quick] [--n 128] [--vae-epochs 10]``.  Prints a table
and, as its last line, one JSON object: ``<cohort>_<case>_flagged_fraction``,
``<cohort>_<case>_plain_rms_flagged_fraction``, ``<cohort>_threshold_ratio``,
``<cohort>_heldout_near_copy_fraction`` (each held-out subject with the threshold of the other
strangers), ``<cohort>_planted_s``, ``<cohort>_vae_near_copy_fraction``,
``<cohort>_vae_plain_rms_near_copy_fraction`` and ``report_<n>x<m>_<size>px_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.cohorts import COHORTS, cohort_dataset  # noqa: E402
from core.evaluation.memorisation import (  # noqa: E402
    copy_threshold, memorisation_report, nearest_neighbours, planted_copies, planted_report,
)
from core.evaluation.planted import heldout_and_others  # noqa: E402


def plain_rms_flags(images, train, subjects, threshold=None) -> np.ndarray:
    """The earlier rule: nearer (plain RMS) to a training slice than any two subjects' slices are."""
    threshold = copy_threshold(train, subjects) if threshold is None else threshold
    return nearest_neighbours(images, train)[1] < threshold


def planted(name: str, dataset: Path, n: int, seed: int = 0) -> tuple[dict, list]:
    heldout, heldout_subjects, train, subjects = heldout_and_others(dataset)
    started = time.perf_counter()
    report = planted_report(train, subjects, heldout, heldout_subjects, n=n, seed=seed)
    seconds = time.perf_counter() - started
    cases = planted_copies(train, subjects, heldout, heldout_subjects, n=n, seed=seed)
    old_threshold = copy_threshold(train, subjects)
    figures, rows = {}, []
    for case, entry in report["cases"].items():
        old = float(plain_rms_flags(cases[case]["images"], train, subjects, old_threshold).mean())
        figures[f"{name}_{case}_flagged_fraction"] = round(entry["flagged_fraction"], 4)
        figures[f"{name}_{case}_plain_rms_flagged_fraction"] = round(old, 4)
        rows.append((name, case, entry, old))
    strangers = report["strangers"]
    figures[f"{name}_threshold_ratio"] = round(report["threshold"], 4)
    figures[f"{name}_heldout_near_copy_fraction"] = round(strangers["reference"]["near_copy_fraction"], 4)
    figures[f"{name}_planted_s"] = round(seconds, 2)
    notes = [f"{name}: {len(train)} training slices ({len(set(subjects))} subjects), {len(heldout)} held-out "
             f"({len(set(heldout_subjects))} subjects); threshold {report['threshold']:.3f} = lowest stranger ratio "
             f"(held-out lowest {strangers['reference']['ratio_min']:.3f}"
             + (f", training subjects against the others {strangers['training']['ratio_min']:.3f}"
                if "training" in strangers else "")
             + f"); held-out flagged, each subject by the others' threshold: "
               f"{strangers['reference']['near_copy_fraction']:.3f}; plain-RMS threshold {old_threshold:.4f}; "
               f"{seconds:.1f} s"]
    return figures, rows, notes


def vae_samples(name: str, dataset: Path, epochs: int, n: int = 256) -> tuple[dict, str]:
    """Train a demo-preset VAE for ``epochs`` and judge ``n`` of its samples by both rules."""
    from core.training import runs, trainer
    from core.training.runs import RunData

    heldout, heldout_subjects, train, subjects = heldout_and_others(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_dir = runs.prepare_run(Path(tmp) / f"vae-{name}", dataset, "vae", "demo", {"epochs": epochs, "seed": 0})
        trainer.train_run(run_dir)
        trained = time.perf_counter() - started
        samples = np.asarray(RunData.open(run_dir).load_model().sample(n, seed=0))[..., 0]
    started = time.perf_counter()
    report = memorisation_report(samples, train, subjects, heldout, heldout_subjects)
    judged = time.perf_counter() - started
    old = float(plain_rms_flags(samples, train, subjects).mean())
    figures = {f"{name}_vae_near_copy_fraction": round(report["near_copy_fraction"], 4),
               f"{name}_vae_plain_rms_near_copy_fraction": round(old, 4),
               f"{name}_vae_ratio_median_ratio": report["ratio_quantiles"]["p50"],
               f"{name}_vae_train_s": round(trained, 1), f"{name}_vae_report_s": round(judged, 2)}
    line = (f"{name}: VAE ({epochs} epochs, {trained:.0f} s) {n} samples: flagged {report['near_copy_fraction']:.3f} "
            f"by the ratio rule (ratio median {report['ratio_quantiles']['p50']:.3f}, lowest "
            f"{report['ratio_quantiles']['p00']:.3f}, threshold {report['threshold']:.3f}), {old:.3f} by the plain-RMS "
            f"rule; report {judged:.1f} s")
    return figures, line


def speed(n: int, m: int, size: int, n_reference: int = 256, seed: int = 0) -> tuple[dict, str]:
    """One memorisation report at ``n`` samples x ``m`` training slices (25 a subject) of ``size`` px."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((1, size, size)), (0, size / 20, size / 20))

    def images(count):
        own = gaussian_filter(rng.random((count, size, size)), (0, size / 32, size / 32))
        return np.clip(base + 0.3 * own, 0, 1).astype(np.float32)

    train, reference, samples = images(m), images(n_reference), images(n)
    subjects = [f"t{i // 25}" for i in range(m)]
    reference_subjects = [f"r{i // 25}" for i in range(n_reference)]
    started = time.perf_counter()
    memorisation_report(samples, train, subjects, reference, reference_subjects)
    seconds = time.perf_counter() - started
    key = f"report_{n}x{m}_{size}px_s"
    return {key: round(seconds, 2)}, (f"memorisation_report: {n} samples x {m} training slices + {n_reference} "
                                      f"held-out, {size} px: {seconds:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 images a case, no VAE, timing at 64 px")
    parser.add_argument("--n", type=int, default=None, help="images per planted case (default 128; quick 32)")
    parser.add_argument("--vae-epochs", type=int, default=None, help="VAE epochs (default 10; quick 0 = no VAE)")
    args = parser.parse_args(argv)
    n = args.n or (32 if args.quick else 128)
    vae_epochs = (0 if args.quick else 10) if args.vae_epochs is None else args.vae_epochs
    figures, rows, notes = {"quick": bool(args.quick), "n_per_case": n}, [], []
    for cohort, size in [(name, 64) for name in COHORTS] + [("real_dev", 128)]:
        name = cohort if size == 64 else f"{cohort}_{size}"
        dataset = cohort_dataset(cohort, size=size)
        if dataset is None:
            notes.append(f"{name}: not present here, skipped")
            continue
        cohort_figures, cohort_rows, cohort_notes = planted(name, dataset, n)
        figures.update(cohort_figures)
        rows += cohort_rows
        notes += cohort_notes
        if vae_epochs and size == 64:
            vae_figures, line = vae_samples(name, dataset, vae_epochs)
            figures.update(vae_figures)
            notes.append(line)
    speed_figures, line = speed(256, 500, 64) if args.quick else speed(512, 1000, 128)
    figures.update(speed_figures)
    notes.append(line)

    print(f"{'cohort':12} {'case':20} {'copy':5} {'n':>4} {'ratio rule':>11} {'plain RMS':>10} {'ratio median':>13}"
          f" {'ratio range':>14}")
    for name, case, entry, old in rows:
        print(f"{name:12} {case:20} {'yes' if entry['copy'] else 'no':5} {entry['n']:4d} "
              f"{entry['flagged_fraction']:11.3f} {old:10.3f} {entry['ratio_median']:13.3f} "
              f"{entry['ratio_min']:6.3f}-{entry['ratio_max']:.3f}")
    for note in notes:
        print(note)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
