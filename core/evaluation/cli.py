"""CLI commands of a trained run's outputs: ``evaluate`` and ``sample`` (see docs/architecture.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import UserError

__all__ = ["register"]


def _sample(args) -> int:
    from core.training.checkpoints import load_run_model
    from core.viz.images import grid_png

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {args.out}")
    # The model first: a folder without one says "no model yet" whether or not it is a run.
    model = load_run_model(args.run_dir)
    if args.source == "aggregate":
        if not hasattr(model, "attach_aggregate"):
            raise UserError("--source aggregate is for a VAE; a VQ-VAE samples from its prior over the code grid")
        from core.training.runs import RunData

        RunData.open(args.run_dir).attach_aggregate(model)
        images = model.sample(args.n, seed=args.seed, temperature=args.temperature, source="aggregate")
    else:
        images = model.sample(args.n, seed=args.seed, temperature=args.temperature)
    ncols = int(min(args.n, max(1, round(args.n**0.5))))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(grid_png(images, ncols=ncols, upscale=max(1, 128 // images.shape[1])))
    print(args.out)
    return 0


def _evaluate(args) -> int:
    from core.evaluation.run import EVALUATION, evaluate_run

    if args.n_samples < 8:
        raise UserError(f"--n-samples must be at least 8, got {args.n_samples}")
    progress = None if args.quiet else _TqdmStages()
    try:
        result = evaluate_run(args.run_dir, args.n_samples, args.seed, progress=progress,
                              sample_source=args.sample_source, quick=args.quick)
    finally:
        if progress is not None:
            progress.close()
    headline = {k: (v.get("mean", v.get("accuracy", v.get("value"))) if isinstance(v, dict) else v)
                for k, v in result.items() if k in ("ssim", "psnr", "ms_ssim_synthetic", "ms_ssim_real", "frechet", "c2st",
                                                    "c2st_anatomy", "precision", "recall", "density", "coverage")}
    print(json.dumps(headline), file=sys.stderr)
    print(Path(args.run_dir) / EVALUATION)
    return 0


class _TqdmStages:
    """``progress(fraction, message)`` of the evaluator -> one tqdm bar in percent."""

    def __init__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc="evaluate", unit="%", dynamic_ncols=True)

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.update(max(0, round(100 * fraction) - self.bar.n))
        self.bar.set_postfix_str(message)

    def close(self):
        self.bar.close()


def register(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser("sample", help="draw samples of a trained run into a PNG grid")
    sample.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    sample.add_argument("--n", type=int, default=16, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--temperature", type=float, default=1.0, help=argparse.SUPPRESS)
    sample.add_argument("--out", type=Path, required=True, help="PNG file to write")
    sample.add_argument("--source", choices=["prior", "aggregate"], default="prior",
                        help="VAE only: N(0, I) (prior) or the aggregate posterior mixture (aggregate)")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser("evaluate", help="measure a run on its test split, write RUN_DIR/evaluation.json")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--n-samples", type=int, default=256, help="synthetic samples for the sample-based figures")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--sample-source", choices=["prior", "aggregate"], default="prior",
                          help="VAE samples from N(0, I) (prior) or from a Gaussian mixture on the "
                               "training latents (aggregate); a VQ-VAE always uses its prior over the code grid")
    evaluate.add_argument("--quick", action="store_true",
                          help="a first look: two-sample tests with 2 folds and at most 15 classifier epochs "
                               "(~3x faster, less power; recorded as quick in evaluation.json)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=_evaluate)
