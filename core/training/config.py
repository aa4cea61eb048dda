"""Training configs: a model preset, the user's overrides and the dataset, checked once.

:func:`make_config` is the one boundary where a run's settings are checked, whoever asks (the
Train page, ``python -m core train`` flags, a resume with more epochs): the same checks, so
the same messages.  The result is what ``config.json`` stores and the only thing a training
job reads.  :func:`revise_config` checks changes to a stored config the same way.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError

__all__ = ["TRAINING_DEFAULTS", "STORED_KEYS", "make_config", "revise_config", "hyper_parameters", "settable_keys"]

#: Training settings the engine adds to a model preset (defaults).
TRAINING_DEFAULTS = {"mixed_precision": False, "tensorboard": False, "jit_compile": "auto"}

#: Keys of a stored config that are not hyper-parameters: chosen apart or added on creation.
STORED_KEYS = ("dataset", "run_name", "created", "model_type", "preset")


def settable_keys(model_type: str, preset: str) -> list[str]:
    """Keys an override may set for ``model_type``/``preset``: the preset's and the engine's.

    >>> "beta" in settable_keys("vae", "demo"), "beta" in settable_keys("vqvae", "demo")
    (True, False)
    """
    from core.models.presets import get_preset  # UserError for an unknown model type/preset

    keys = set(get_preset(model_type, preset)) | set(TRAINING_DEFAULTS)
    return sorted(keys - set(STORED_KEYS))


def _check_keys(model_type: str, preset: str, overrides: dict) -> None:
    known = settable_keys(model_type, preset)
    unknown = sorted(str(k) for k in overrides if k not in known)
    if unknown:
        raise UserError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for a "
            f"{model_type} {preset} run; the settings are: {', '.join(known)}"
        )


def make_config(dataset_dir: str | Path, model_type: str, preset: str, overrides: dict | None = None) -> dict:
    """A checked full config for training ``model_type``/``preset`` on a dataset folder.

    The preset's values, then ``overrides`` (hyper-parameters from the page or CLI); the image
    size follows the dataset unless ``overrides`` sets it (then they must agree).  Adds
    ``dataset`` (path, hash, spec, counts) and the engine's settings (``mixed_precision``,
    ``tensorboard``, ``jit_compile``).

    Raises:
        UserError: naming the bad value (the same message for the page and the CLI), an
        unknown setting, or a missing or empty dataset.
    """
    from core.data.dataset import load_manifest

    overrides = dict(overrides or {})
    dataset_dir = Path(dataset_dir).expanduser().resolve()
    manifest = load_manifest(dataset_dir)
    size = int(manifest["spec"]["size"])
    slice_range = [int(manifest["spec"]["start"]), int(manifest["spec"]["stop"])]
    # slice_range follows the dataset (a stored conditional config holds it: revise_config)
    given = overrides.pop("slice_range", None)
    if given is not None and list(given) != slice_range:
        raise UserError(f"slice_range {given!r} does not match the dataset's slices {slice_range}")
    counts = {k: len(v.get("slices", [])) for k, v in manifest["splits"].items()}
    if counts.get("train", 0) == 0:
        raise UserError(f"dataset {dataset_dir} has no training images")
    if "image_size" in overrides and overrides["image_size"] != size:
        raise UserError(
            f"image_size {overrides['image_size']!r} does not match the dataset's {size} px images"
        )
    _check_keys(model_type, preset, overrides)
    from core.models.presets import validate_config

    config = {**TRAINING_DEFAULTS, **overrides, "model_type": model_type, "preset": preset, "image_size": size}
    config = validate_config(config, n_train=counts["train"])
    for key in ("mixed_precision", "tensorboard"):
        if not isinstance(config[key], bool):
            raise UserError(f"{key} must be true or false, got {config[key]!r}")
    if config["jit_compile"] not in ("auto", True, False):
        raise UserError(f"jit_compile must be 'auto', true or false, got {config['jit_compile']!r}")
    if config.get("conditional"):
        config["slice_range"] = slice_range
        config = validate_config(config, n_train=counts["train"])
        _check_demographics(manifest, dataset_dir)
    config["dataset"] = {
        "path": str(dataset_dir),
        "hash": manifest["hash"],
        "spec": manifest["spec"],
        "counts": counts,
    }
    return config


def _check_demographics(manifest: dict, dataset_dir: Path) -> None:
    """A conditional run needs every training and validation slice's age and sex: refused now,
    at launch, rather than when the training job reads them."""
    from core.models.conditions import dataset_conditions

    for split in ("train", "val"):
        if split not in manifest["splits"]:
            continue
        try:
            dataset_conditions(manifest, split)
        except UserError as exc:
            raise UserError(
                f"conditional=true needs the age and sex of every subject, and dataset {dataset_dir.name} "
                f"lacks them ({exc}); build the dataset from a cohort with demographics "
                "(e.g. IXI with its spreadsheet), or train without conditional"
            ) from exc


def hyper_parameters(config: dict) -> dict:
    """The hyper-parameters of a stored config (without what is chosen apart or added).

    >>> hyper_parameters({"model_type": "vae", "preset": "demo", "epochs": 3, "run_name": "r"})
    {'epochs': 3}
    """
    return {k: v for k, v in config.items() if k not in STORED_KEYS}


def revise_config(config: dict, overrides: dict) -> dict:
    """The keys of a stored ``config`` that ``overrides`` change, checked as :func:`make_config`
    checks a new run (e.g. ``{"epochs": 80}`` to train a finished run on).

    Returns ``{key: checked value}`` for each key of ``overrides``; UserError as make_config.
    """
    if not overrides:
        return {}
    changed = make_config(config["dataset"]["path"], config["model_type"], config["preset"],
                          {**hyper_parameters(config), **overrides})
    return {k: changed[k] for k in overrides}
