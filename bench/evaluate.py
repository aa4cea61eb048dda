"""Evaluation benchmark: wall time of ``evaluate_run`` for a demo run, and with 1,000 samples.

Times the whole evaluator (load, reconstructions, samples, MS-SSIM, slice-position net,
Fréchet distances, MMD, two-sample test, memorisation, anomaly check) on a trained run, by
stage, once with the default 256 samples (target: under 60 s on 2 CPU cores) and once with
1,000 samples.  Nothing is written to the run (``write=False``).

Usage: ``python bench/evaluate.py [--run RUN_DIR] [--quick]``; without ``--run`` the newest
finished ``demo`` run under the runs folder is used.  ``--quick`` uses 64 samples and skips
the 1,000-sample pass.  Prints a table and, as its last line, one JSON object.
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

TARGET_S = 60.0


def _pick_run(run: str | None) -> Path:
    from core.training import runs

    if run:
        return Path(run)
    for row in runs.list_runs():
        if row.get("preset") == "demo" and runs.RunData.open(row["path"]).has_model():
            return Path(row["path"])
    raise SystemExit("no trained demo run found: pass --run RUN_DIR")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="run folder (default: newest demo run)")
    parser.add_argument("--quick", action="store_true", help="64 samples, no 1,000-sample pass")
    args = parser.parse_args(argv)

    from core.evaluation.run import evaluate_run

    run_dir = _pick_run(args.run)
    passes = [("default", 64 if args.quick else 256)] + ([] if args.quick else [("1000_samples", 1000)])
    results = {}
    for name, n in passes:
        start = time.perf_counter()
        result = evaluate_run(run_dir, n_samples=n, write=False)
        results[name] = {"n": n, "seconds": time.perf_counter() - start, "timings": result["timings"],
                         "model_type": result["model_type"]}
    print(f"run {run_dir}  ({results['default']['model_type']}, {os.cpu_count()} CPU cores visible)")
    stages = list(results["default"]["timings"])
    header = f"{'stage':<24}" + "".join(f"{name + ' (' + str(r['n']) + ')':>22}" for name, r in results.items())
    print(header)
    print("-" * len(header))
    for stage in stages:
        print(f"{stage:<24}" + "".join(f"{r['timings'].get(stage, 0):>22.2f}" for r in results.values()))
    print(f"{'total_s':<24}" + "".join(f"{r['seconds']:>22.2f}" for r in results.values()))
    summary = {
        "run": run_dir.name, "model_type": results["default"]["model_type"],
        "evaluate_demo_s": round(results["default"]["seconds"], 2),
        "evaluate_demo_samples": results["default"]["n"],
        "evaluate_demo_target_ratio": round(results["default"]["seconds"] / TARGET_S, 3),
    }
    if "1000_samples" in results:
        summary["evaluate_1000_samples_s"] = round(results["1000_samples"]["seconds"], 2)
    for stage, value in results["default"]["timings"].items():
        summary[f"stage_{stage}"] = value
    print(f"target: default pass under {TARGET_S:.0f} s -> ratio {summary['evaluate_demo_target_ratio']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
