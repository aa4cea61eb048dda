"""CLI commands of the training engine: ``train``, ``sample`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import settings
from core.errors import UserError

__all__ = ["register"]


class _TqdmProgress:
    """Progress events of :func:`train_run` -> one tqdm bar per stage (batches), loss in the postfix."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, event: dict) -> None:
        from tqdm import tqdm

        kind = event.get("kind")
        if kind == "stage" or event.get("stage") != self.stage:
            self.close()
            self.stage = event.get("stage")
            batches = event.get("batches") or 0
            total = batches * event["epochs"] if batches else None
            self.bar = tqdm(total=total, initial=batches * event.get("epoch", 0), desc=self.stage,
                            unit="batch", dynamic_ncols=True)
            self.bar.set_postfix_str(f"epoch {event.get('epoch', 0)}/{event['epochs']}")
            return
        if kind == "batch" and self.bar is not None:
            self.bar.update(1)
        elif kind == "epoch" and self.bar is not None:
            logs = event.get("logs") or {}
            shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items()
                              if k in ("loss", "val_loss", "kl", "perplexity"))
            self.bar.set_postfix_str(f"epoch {event['epoch']}/{event['epochs']} {shown}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _overrides(args) -> dict:
    overrides = {}
    if args.config_json:
        try:
            overrides = json.loads(args.config_json)
        except ValueError as exc:
            raise UserError(f"--config-json is not valid JSON: {exc}") from exc
        if not isinstance(overrides, dict):
            raise UserError("--config-json must be a JSON object")
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.prior_epochs is not None:
        overrides["prior_epochs"] = args.prior_epochs
    return overrides


def _train(args) -> int:
    from core.training import runs
    from core.training.trainer import train_run

    name = args.run or runs.default_run_name(args.model, args.preset)
    run_dir = runs.run_path(name, args.runs_dir)
    overrides = _overrides(args)
    if args.resume and (run_dir / runs.CONFIG).is_file():
        config = runs.read_config(run_dir)
        if (config["model_type"], config.get("preset")) != (args.model, args.preset):
            raise UserError(
                f"run {name} is a {config['model_type']} {config.get('preset')} run, "
                f"not {args.model} {args.preset}"
            )
        from core.data.dataset import load_manifest

        if load_manifest(args.dataset)["hash"] != (config.get("dataset") or {}).get("hash"):
            raise UserError(f"run {name} was trained on another dataset than {args.dataset}")
        if overrides:  # e.g. more epochs for a finished run
            changed = runs.make_config(args.dataset, args.model, args.preset, {**_hyper(config), **overrides})
            runs.update_config(run_dir, {k: changed[k] for k in overrides})
    else:
        runs.prepare_run(run_dir, args.dataset, args.model, args.preset, overrides)
    progress = None if args.quiet else _TqdmProgress()
    try:
        status = train_run(run_dir, resume=args.resume, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    print(status.get("message") or status["state"], file=sys.stderr)
    print(run_dir)
    return 0


def _hyper(config: dict) -> dict:
    """The hyper-parameters of a stored config (without what make_config adds)."""
    return {k: v for k, v in config.items() if k not in ("dataset", "run_name", "created", "model_type", "preset")}


def _sample(args) -> int:
    from core.training.runs import load_run_model
    from core.viz.images import grid_png

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {args.out}")
    model = load_run_model(args.run_dir)
    images = model.sample(args.n, seed=args.seed, temperature=args.temperature)
    ncols = int(min(args.n, max(1, round(args.n**0.5))))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(grid_png(images, ncols=ncols, upscale=max(1, 128 // images.shape[1])))
    print(args.out)
    return 0


def evaluate_run(run_dir: Path, n_samples: int = 64, seed: int = 0) -> dict:
    """Measure a trained run on its dataset's test split and write ``evaluation.json``.

    Holds ``ssim`` and ``psnr`` (mean over test reconstructions, with ``_sd``), ``sharpness_ratio``
    (Laplacian variance of ``n_samples`` samples ÷ that of the test slices), and the counts.
    """
    import numpy as np

    from core.data.dataset import load_split_images
    from core.evaluation import compute_psnr, compute_sharpness, compute_ssim
    from core.training import runs

    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    model = runs.load_run_model(run_dir)
    test = np.asarray(load_split_images(config["dataset"]["path"], "test"))
    if len(test) == 0:
        raise UserError(f"dataset {config['dataset']['path']} has no test images to evaluate on")
    recon = model.reconstruct(test)[..., 0]
    ssim, psnr = compute_ssim(test, recon), compute_psnr(test, recon)
    finite = psnr[np.isfinite(psnr)]
    result = {
        "ssim": float(ssim.mean()), "ssim_sd": float(ssim.std()),
        "psnr": float(finite.mean()) if len(finite) else float("inf"),
        "psnr_sd": float(finite.std()) if len(finite) else 0.0,
        "n_test": int(len(test)),
    }
    try:
        samples = model.sample(n_samples, seed=seed)[..., 0]
    except UserError:  # a VQ-VAE trained without its prior cannot sample
        samples = None
    if samples is not None:
        result["sharpness_ratio"] = float(compute_sharpness(samples, test))
        result["n_samples"] = int(n_samples)
    runs.write_json_atomic(run_dir / "evaluation.json", result)
    return result


def _evaluate(args) -> int:
    if args.n_samples < 1:
        raise UserError(f"--n-samples must be at least 1, got {args.n_samples}")
    result = evaluate_run(args.run_dir, args.n_samples, args.seed)
    print(json.dumps(result), file=sys.stderr)
    print(Path(args.run_dir) / "evaluation.json")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a VAE or VQ-VAE (+ prior) into a run dir")
    train.add_argument("--dataset", type=Path, required=True, help="dataset folder (with manifest.json)")
    train.add_argument("--model", choices=["vae", "vqvae"], required=True)
    train.add_argument("--preset", choices=["demo", "thesis", "quality"], required=True)
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
    train.add_argument("--run", default=None, help="run name (default: <model>-<preset>-<time>)")
    train.add_argument("--runs-dir", type=Path, default=None,
                       help=f"folder of run dirs (default: {settings.runs_dir()})")
    train.add_argument("--resume", action="store_true",
                       help="continue the run from its last checkpoint (or start it if it has none)")
    train.add_argument("--prior-epochs", type=int, default=None, help="VQ-VAE prior epochs (default: the preset's)")
    train.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    train.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    train.set_defaults(handler=_train)

    sample = commands.add_parser("sample", help="draw samples of a trained run into a PNG grid")
    sample.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    sample.add_argument("--n", type=int, default=16, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--temperature", type=float, default=1.0, help=argparse.SUPPRESS)
    sample.add_argument("--out", type=Path, required=True, help="PNG file to write")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser("evaluate", help="measure a run on its test split, write RUN_DIR/evaluation.json")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--n-samples", type=int, default=64, help="samples for the sharpness ratio")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(handler=_evaluate)
