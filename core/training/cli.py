"""CLI command of the training engine: ``train`` (``evaluate`` and ``sample``: :mod:`core.evaluation.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import settings
from core.errors import UserError

__all__ = ["register", "parse_value", "parse_assignment", "HYPER_FLAGS"]


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


#: The common hyper-parameters as flags: (flag, config key, help).  Any other preset key is
#: set with ``--set KEY=VALUE``.  Values are checked by ``make_config``, as the Train page's are.
HYPER_FLAGS = (
    ("--epochs", "epochs", "passes over the training images (early stopping may end sooner)"),
    ("--batch-size", "batch_size", "images per gradient step; at most the number of training images"),
    ("--learning-rate", "learning_rate", "Adam step size, > 0 (e.g. 1e-3)"),
    ("--beta", "beta", "VAE only: weight of the KL term after warm-up, >= 0; 1 is the true ELBO"),
    ("--latent-dim", "latent_dim", "VAE only: dimensions of the latent vector z, >= 1"),
    ("--warmup-epochs", "warmup_epochs", "VAE only: epochs until beta reaches its value, >= 0"),
    ("--recon-loss", "recon_loss", "VAE only: reconstruction likelihood, gaussian or bernoulli"),
    ("--seed", "seed", "random seed of the run (data shuffling, the VAE's sampling noise), >= 0"),
    ("--prior-epochs", "prior_epochs", "VQ-VAE only: epochs of the prior trained after it (0: none)"),
    ("--prior-type", "prior_type", "VQ-VAE only: the prior over its code grid, pixelcnn, transformer or diffusion"),
)


def parse_value(text: str):
    """A command-line value as the config holds it: JSON if it parses (numbers, ``true``,
    ``[8, 16]``), else the text itself.

    >>> parse_value("32"), parse_value("1e-3"), parse_value("True"), parse_value("none")
    (32, 0.001, True, 'none')
    >>> parse_value("[8, 16]")
    [8, 16]
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set`` as ``(key, value)``; UserError without a ``=`` or a key.

    >>> parse_assignment("kl_schedule=cyclical")
    ('kl_schedule', 'cyclical')
    >>> parse_assignment("filters=[8,16]")
    ('filters', [8, 16])
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set needs KEY=VALUE (a preset key, e.g. kl_schedule=cyclical), got {text!r}")
    return key, parse_value(value)


def _overrides(args) -> dict:
    """Hyper-parameters the command line sets: ``--config-json``, ``--set``, then the flags."""
    overrides = {}
    if args.config_json:
        try:
            overrides = json.loads(args.config_json)
        except ValueError as exc:
            raise UserError(f"--config-json is not valid JSON: {exc}") from exc
        if not isinstance(overrides, dict):
            raise UserError("--config-json must be a JSON object")
    from_set = {}
    for text in args.set or []:
        key, value = parse_assignment(text)
        if key in from_set:
            raise UserError(f"--set {key} is given twice")
        from_set[key] = value
    overrides.update(from_set)
    for flag, key, _ in HYPER_FLAGS:
        text = getattr(args, key)
        if text is None:
            continue
        if key in from_set:
            raise UserError(f"{key} is given twice: by {flag} and by --set {key}=...")
        overrides[key] = parse_value(text)
    return overrides


def _train(args) -> int:
    from core.data.dataset import load_manifest
    from core.training import runs
    from core.training.config import make_config, revise_config
    from core.training.trainer import train_run

    overrides = _overrides(args)
    if args.run_dir is not None:  # an existing run folder: its config.json says what to train
        if args.run or args.runs_dir:
            raise UserError("--run-dir names the run folder: leave out --run and --runs-dir")
        run = runs.RunFolder(args.run_dir)
        config = run.read_config()
        existing = True
    else:
        missing = [flag for flag, value in (("--dataset", args.dataset), ("--model", args.model),
                                            ("--preset", args.preset)) if value is None]
        if missing and not (args.resume and args.run):
            raise UserError(f"a new run needs {', '.join(missing)} (or --run-dir to train an existing run folder)")
        run = runs.RunFolder.named(args.run or runs.default_run_name(args.model, args.preset), args.runs_dir)
        existing = args.resume and run.exists()
        if missing and not existing:
            raise UserError(f"a new run needs {', '.join(missing)}: there is no run {run.name} in "
                            f"{run.path.parent} to resume")
        config = run.read_config() if existing else None
    if existing:
        given = (args.model or config["model_type"], args.preset or config.get("preset"))
        if given != (config["model_type"], config.get("preset")):
            raise UserError(f"run {run.name} is a {config['model_type']} {config.get('preset')} run, "
                            f"not {given[0]} {given[1]}")
        if args.dataset is not None and \
                load_manifest(args.dataset)["hash"] != (config.get("dataset") or {}).get("hash"):
            raise UserError(f"run {run.name} was trained on another dataset than {args.dataset}")
        if overrides:  # e.g. more epochs for a finished run
            run.update_config(revise_config(config, overrides))
    else:
        run.create(make_config(args.dataset, args.model, args.preset, overrides))
    progress = None if args.quiet else _TqdmProgress()
    try:
        status = train_run(run.path, resume=existing or args.resume, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    print(status.get("message") or status["state"], file=sys.stderr)
    print(run.path)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a VAE or VQ-VAE (+ prior) into a run folder",
        description="Train a VAE or VQ-VAE (then its prior) on a dataset folder into a new\n"
                    "run folder, or continue an existing one.  Hyper-parameters default to the\n"
                    "preset's; every value is checked as the Train page checks it (same messages)\n"
                    "and recorded in the run's config.json.",
        epilog="examples:\n"
               "  python -m core train --dataset DS --model vae --preset demo --beta 0.5 --latent-dim 64\n"
               "  python -m core train --dataset DS --model vae --preset demo --set kl_schedule=cyclical\n"
               "  python -m core train --run-dir checkpoints/vae-demo-1 --epochs 80   (train it on)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = train.add_argument_group("what to train")
    where.add_argument("--dataset", type=Path, default=None,
                       help="dataset folder (with manifest.json); needed for a new run")
    where.add_argument("--model", choices=["vae", "vqvae"], default=None, help="model type; needed for a new run")
    where.add_argument("--preset", choices=["demo", "thesis", "quality"], default=None,
                       help="named configuration the hyper-parameters start from; needed for a new run")
    where.add_argument("--run", default=None,
                       help="run name: letters, digits, '.', '_', '-' (default: <model>-<preset>-<time>)")
    where.add_argument("--runs-dir", type=Path, default=None,
                       help=f"folder of run folders (default: {settings.runs_dir()})")
    where.add_argument("--resume", action="store_true",
                       help="continue the run from its last checkpoint (or start it if it has none)")
    where.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                       help="train an existing run folder as its config.json says, continuing from its "
                            "last checkpoint (what a background job of the Train page runs)")
    hyper = train.add_argument_group(
        "hyper-parameters", "Default: the preset's value.  With --resume or --run-dir they change the\n"
                            "stored config (e.g. more --epochs to train a finished run on).")
    for flag, key, text in HYPER_FLAGS:
        hyper.add_argument(flag, dest=key, default=None, metavar=key.split("_")[-1].upper(), help=text)
    hyper.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                       help="any other preset key, e.g. --set kl_schedule=cyclical --set filters=[32,64,128]; "
                            "VALUE is read as JSON when it parses (numbers, true/false, lists), else as text; "
                            "repeatable")
    train.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    train.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    train.set_defaults(handler=_train)
