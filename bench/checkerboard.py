"""Checkerboard index of trained runs' samples and reconstructions, beside real test slices.

For each run folder given (a VAE or a VQ-VAE with its prior), ``--samples`` samples (seed 0) and
the reconstructions of its dataset's test slices are scored with
:func:`core.evaluation.checkerboard.checkerboard_index` (median over images of the power in the
periodic bins of period 2, 4 and 8, over the power around them): real slices score ~1, a
visible checkerboard tens.  The run's real test slices are scored the same way.

Usage: ``python bench/checkerboard.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--samples 128]``.
Prints a table and, as its last line, one JSON object with keys
``<label>_checkerboard_samples_p<period>``, ``<label>_checkerboard_recon_p<period>`` and
``<label>_checkerboard_real_p<period>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.evaluation.checkerboard import checkerboard_index  # noqa: E402
from core.training.runs import RunData  # noqa: E402


def score_run(label: str, run_dir: Path, n_samples: int) -> tuple[dict, list]:
    data = RunData.open(run_dir)
    model = data.load_model()
    real = data.images("test")
    samples = np.asarray(model.sample(n_samples, seed=0))
    recon = np.asarray(model.reconstruct(real))
    figures, rows = {}, []
    for kind, images in (("samples", samples), ("recon", recon), ("real", real)):
        index = checkerboard_index(images)
        for period, value in index.items():
            figures[f"{label}_checkerboard_{kind}_p{period}"] = round(value, 2)
        rows.append((label, kind, len(images), index))
    return figures, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args(argv)
    figures, rows = {}, []
    for item in args.runs:
        label, _, run_dir = item.partition("=")
        if not run_dir:
            parser.error(f"expected LABEL=RUN_DIR, got {item!r}")
        run_figures, run_rows = score_run(label, Path(run_dir), args.samples)
        figures.update(run_figures)
        rows += run_rows
    print(f"{'run':28} {'images':8} {'n':>5}  period 2   period 4   period 8")
    for label, kind, n, index in rows:
        cells = "  ".join(f"{index.get(p, float('nan')):9.2f}" for p in (2, 4, 8))
        print(f"{label:28} {kind:8} {n:5d}  {cells}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
