"""The anatomy-aware judge: planted anatomy cases and the calibration of its intervals, on both cohorts.

For each cohort (``bench/cohorts.py``: the demo cohort and the 12 real heads of real_dev, 64 px,
split by subject) the anatomy embedding (:mod:`core.evaluation.embedding`) is trained on the
training split (cached per dataset, as the evaluation does), then:

1. **Planted anatomy cases** (:data:`core.evaluation.planted.ANATOMY_PLANTED`): the held-out
   subjects (test split) against up to 256 training-split slices, untouched (the null) or as
   chimeras, 8 / 16 px tile shuffles, front-to-back flips, 90° turns, or requested at the
   wrong level.  The test is :func:`core.evaluation.c2st.embedding_two_sample_test`: no per-slice
   statistics, no pixel CNN; the evidence is the learned space's alone.  Goal: >= 0.95 each.
2. **Calibration**: >= 20 random by-subject halves of all the cohort's subjects (the net saw the
   training ones, not the others, as in the evaluation) compared real against real; the fraction whose subject-bootstrap 95 % interval lies wholly above chance.
   Goal: <= 0.10.
3. The same calibration for the pixel judge (CNN + per-slice statistics, the ``c2st`` figure),
   with its subject-bootstrap interval and the old Wilson interval side by side (``--pixel``;
   it trains 2 classifiers x 5 folds a split, minutes a split on 2 cores).

Usage: ``python bench/anatomy_judge.py [--cohort demo|real_dev|both] [--splits 20] [--pixel N [--pixel-quick]]
[--quick]``.
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
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

from cohorts import REAL_DEV, demo_dataset, real_dev_dataset  # noqa: E402  (the benchmarks' two datasets)


def embedding_for(dataset: Path, steps: int):
    from core import settings
    from core.data.dataset import load_manifest
    from core.evaluation.embedding import cached_anatomy_embedding
    from core.evaluation.planted import split_arrays

    images, subjects, levels = split_arrays(dataset, "train")
    val = split_arrays(dataset, "val")
    return cached_anatomy_embedding(settings.cache_dir() / "evaluation", load_manifest(dataset)["hash"], images,
                                    levels, subjects, steps=steps, check=(val[0], val[2], val[1]))


def pixel_calibration(images, subjects, n_splits: int, seed: int = 0, options=None) -> dict:
    """Random by-subject halves through the pixel judge (CNN + statistics), bootstrap and Wilson intervals."""
    from core.evaluation.c2st import classifier_two_sample_test

    names = np.unique(subjects)
    rng = np.random.default_rng(seed)
    rows = []
    for split in range(n_splits):
        half = set(rng.choice(names, len(names) // 2, replace=False).tolist())
        side = np.array([s in half for s in subjects])
        other = np.flatnonzero(~side)
        if len(other) > 256:
            other = np.sort(rng.choice(other, 256, replace=False))
        r = classifier_two_sample_test(images[side], subjects[side], images[other], subjects[other],
                                       seed=seed + split, **(options or {}))
        wilson = r["classifiers"][r["classifier"]]["ci95_wilson"]
        rows.append({"accuracy": r["accuracy"], "ci95": r["ci95"], "ci95_wilson": wilson})
        print(f"    pixel split {split}: {r['accuracy']:.3f} bootstrap {r['ci95']} wilson {wilson}",
              file=sys.stderr, flush=True)
    return {"n_splits": n_splits,
            "fraction_beyond_chance": float(np.mean([r["ci95"][0] > 0.5 for r in rows])),
            "fraction_beyond_chance_wilson": float(np.mean([r["ci95_wilson"][0] > 0.5 for r in rows])),
            "accuracy_max": float(max(r["accuracy"] for r in rows)), "splits": rows}


def measure(name: str, dataset: Path, args) -> dict:
    from core.evaluation.planted import ANATOMY_PLANTED, anatomy_power, null_calibration, split_arrays

    started = time.perf_counter()
    embedding = embedding_for(dataset, args.steps)
    trained_s = time.perf_counter() - started
    test, train = split_arrays(dataset, "test"), split_arrays(dataset, "train")
    cases = ["none", "chimera", "flip_front_back"] if args.quick else list(ANATOMY_PLANTED)
    power = anatomy_power(embedding, *test, *train, cases=cases, n_samples=256,
                          progress=lambda case: print(f"  {name}: {case}", file=sys.stderr, flush=True))
    everyone = [split_arrays(dataset, split) for split in ("train", "val", "test")]
    images = np.concatenate([part[0] for part in everyone])
    subjects = np.concatenate([part[1] for part in everyone])
    calibration = null_calibration(embedding.features(images), subjects, n_splits=args.splits, max_slices=256)
    out = {"cases": power, "calibration": calibration, "embedding": embedding.info,
           "embedding_train_s": trained_s, "seconds": time.perf_counter() - started,
           "n_test_subjects": int(len(set(test[1].tolist()))), "n_train_subjects": int(len(set(train[1].tolist())))}
    if args.pixel:
        from core.evaluation.run import QUICK_C2ST

        out["pixel_calibration"] = pixel_calibration(images, subjects, args.pixel,
                                                     options=QUICK_C2ST if args.pixel_quick else None)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=["demo", "real_dev", "both"], default="both")
    parser.add_argument("--splits", type=int, default=20, help="real-vs-real splits of the calibration")
    parser.add_argument("--pixel", type=int, default=0, help="splits of the pixel judge's calibration (slow)")
    parser.add_argument("--steps", type=int, default=3000, help="the embedding's training steps")
    parser.add_argument("--pixel-quick", action="store_true",
                        help="the pixel judge's calibration with the quick look's classifiers (2 folds, 15 epochs)")
    parser.add_argument("--quick", action="store_true", help="three cases, 5 splits, 600 training steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.splits, args.steps, args.pixel = 5, 600, 0

    cohorts = []
    if args.cohort in ("demo", "both"):
        cohorts.append(("demo", demo_dataset))
    if args.cohort in ("real_dev", "both"):
        if REAL_DEV.is_dir():
            cohorts.append(("real_dev", real_dev_dataset))
        else:
            print(f"skipping real_dev: {REAL_DEV} is absent", file=sys.stderr)
    summary: dict = {"embedding_steps": args.steps}
    print(f"{'cohort':<10}{'case':<17}{'accuracy':>9}{'95 % CI (subjects)':>20}{'auc':>7}  goal")
    for name, make in cohorts:
        figures = measure(name, make(), args)
        for case, row in figures["cases"].items():
            ci = row["ci95"]
            goal = "~0.5" if case == "none" else (">= 0.95 " + ("met" if row["accuracy"] >= 0.95 else "NOT met"))
            print(f"{name:<10}{case:<17}{row['accuracy']:>9.3f}{f'[{ci[0]:.3f}, {ci[1]:.3f}]':>20}"
                  f"{row['auc']:>7.3f}  {goal}")
            summary[f"{name}_{case}_accuracy"] = round(row["accuracy"], 4)
            summary[f"{name}_{case}_ci95_low"] = round(ci[0], 4)
            summary[f"{name}_{case}_ci95_high"] = round(ci[1], 4)
        cal = figures["calibration"]
        print(f"{name:<10}calibration: {cal['n_splits']} real-vs-real halves, beyond chance in "
              f"{cal['fraction_beyond_chance']:.2f} (goal <= 0.10); accuracy median {cal['accuracy_median']:.3f}, "
              f"max {cal['accuracy_max']:.3f}")
        summary[f"{name}_calibration_splits"] = cal["n_splits"]
        summary[f"{name}_calibration_beyond_chance_ratio"] = round(cal["fraction_beyond_chance"], 4)
        summary[f"{name}_calibration_accuracy_median"] = round(cal["accuracy_median"], 4)
        summary[f"{name}_calibration_accuracy_max"] = round(cal["accuracy_max"], 4)
        if "pixel_calibration" in figures:
            pix = figures["pixel_calibration"]
            print(f"{name:<10}pixel judge calibration: {pix['n_splits']} halves, beyond chance "
                  f"{pix['fraction_beyond_chance']:.2f} with subject-bootstrap intervals, "
                  f"{pix['fraction_beyond_chance_wilson']:.2f} with Wilson intervals")
            summary[f"{name}_pixel_calibration_splits"] = pix["n_splits"]
            summary[f"{name}_pixel_calibration_quick"] = bool(args.pixel_quick)
            summary[f"{name}_pixel_calibration_accuracy_max"] = round(pix["accuracy_max"], 4)
            summary[f"{name}_pixel_calibration_beyond_chance_ratio"] = round(pix["fraction_beyond_chance"], 4)
            summary[f"{name}_pixel_calibration_beyond_chance_wilson_ratio"] = round(
                pix["fraction_beyond_chance_wilson"], 4)
        held = figures["embedding"].get("check_tasks", {})
        for key, value in held.items():
            summary[f"{name}_embedding_validation_{key}"] = round(value, 4)
        # The net's own training time (kept with the cached net), not this run's wall time to get it.
        summary[f"{name}_embedding_train_s"] = round(float(figures["embedding"].get("seconds", 0.0)), 1)
        summary[f"{name}_embedding_cached"] = bool(figures["embedding"].get("cached", False))
        summary[f"{name}_seconds_s"] = round(figures["seconds"], 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
