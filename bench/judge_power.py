"""The judge's power: the two-sample test on planted cases, on the demo cohort and on real heads.

For each cohort the dataset is built as the evaluation sees it (64 px, split by subject), and
:func:`core.evaluation.planted.planted_power` runs the two-sample test with the evaluation's
real side (the held-out subjects: the test split) against up to 256 training-split slices
(other real people, as many as the evaluation's samples), untouched (``none``: the real-vs-real
null) or with one planted change: blur sigma 0.7 px, 3 % noise, a 2 px shift, gamma 0.85.

A planted case is *detected* when its 95 % interval (subjects resampled) lies wholly above both
the null's interval and 0.5 (:func:`core.evaluation.c2st.beyond_real`): the rule
:func:`core.evaluation.run.verdict` applies to samples.

Cohorts:
- ``demo``: the thesis' slice range of the demo cohort, split 70/10/20 (as ``bench/quality.py``);
- ``real_dev``: ``../shared/data/real_dev`` (12 real raw heads), axial canonical slices 58–82,
  split 60/10/30 with split seed 1.  Seed 1 is the first that puts a head of the smaller
  scanner geometry (Subj5, 6, 8: 88x128x128) on both sides; with seed 0 all three are in the
  training split, and the null then measures the scanner, not the judge.

Usage: ``python bench/judge_power.py [--cohort demo|real_dev|both] [--quick]``.
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


from cohorts import REAL_DEV, demo_dataset, real_dev_dataset  # noqa: E402  (the benchmarks' two datasets)


def measure(name: str, dataset: Path, n_samples: int, cases, options) -> dict:
    from core.evaluation.planted import heldout_and_others, planted_power

    heldout, heldout_subjects, others, other_subjects = heldout_and_others(dataset)
    started = time.perf_counter()
    result = planted_power(heldout, heldout_subjects, others, other_subjects, cases=cases, n_samples=n_samples,
                           progress=lambda case: print(f"  {name}: {case}", file=sys.stderr, flush=True),
                           **options)
    from core.evaluation.c2st import beyond_real

    for case, row in result.items():
        row["detected"] = bool(case != "none" and beyond_real(row, result["none"]))
    return {"cases": result, "seconds": time.perf_counter() - started, "n_heldout": len(heldout),
            "n_heldout_subjects": len(set(heldout_subjects)), "n_other_subjects": len(set(other_subjects)),
            "dataset": str(dataset)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=["demo", "real_dev", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="the null and blur only, at most 40 epochs")
    args = parser.parse_args(argv)

    cases = ["none", "blur"] if args.quick else ["none", "blur", "noise", "shift", "gamma"]
    options = {"max_epochs": 40} if args.quick else {}
    cohorts = []
    if args.cohort in ("demo", "both"):
        cohorts.append(("demo", demo_dataset))
    if args.cohort in ("real_dev", "both"):
        if REAL_DEV.is_dir():
            cohorts.append(("real_dev", real_dev_dataset))
        else:
            print(f"skipping real_dev: {REAL_DEV} is absent", file=sys.stderr)
    summary: dict = {}
    print(f"{'cohort':<10}{'case':<8}{'accuracy':>9}{'95 % CI':>17}{'cnn':>7}{'stats':>7}{'n':>6}  detected")
    for name, make in cohorts:
        figures = measure(name, make(), 256, cases, options)
        for case, row in figures["cases"].items():
            ci = row["ci95"]
            parts = row["classifiers"]
            print(f"{name:<10}{case:<8}{row['accuracy']:>9.3f}{f'[{ci[0]:.3f}, {ci[1]:.3f}]':>17}"
                  f"{parts['cnn']['accuracy']:>7.3f}{parts['statistics']['accuracy']:>7.3f}{row['n_scored']:>6}  "
                  f"{'null' if case == 'none' else ('yes' if row['detected'] else 'NO')}")
            key = f"{name}_{case}"
            summary[f"{key}_accuracy"] = round(row["accuracy"], 4)
            summary[f"{key}_ci95_low"] = round(ci[0], 4)
            summary[f"{key}_ci95_high"] = round(ci[1], 4)
            summary[f"{key}_cnn_accuracy"] = round(parts["cnn"]["accuracy"], 4)
            summary[f"{key}_statistics_accuracy"] = round(parts["statistics"]["accuracy"], 4)
            if case != "none":
                summary[f"{key}_detected"] = row["detected"]
        summary[f"{name}_n_scored"] = figures["cases"]["none"]["n_scored"]
        summary[f"{name}_n_heldout_images"] = figures["n_heldout"]
        summary[f"{name}_n_heldout_subjects"] = figures["n_heldout_subjects"]
        summary[f"{name}_n_other_subjects"] = figures["n_other_subjects"]
        summary[f"{name}_seconds_s"] = round(figures["seconds"], 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
