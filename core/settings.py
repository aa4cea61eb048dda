"""Paths and defaults, overridable with environment variables.

``LATENTBRAIN_DATA``  folder (or IXI-T1.tar) of T1 volumes; default: the demo cohort.
``LATENTBRAIN_CACHE`` where the demo cohort and built datasets are cached.
``LATENTBRAIN_RUNS``  where training run dirs live (default ``checkpoints/``).
``LATENTBRAIN_EMBEDDING_STEPS`` training steps of the evaluation's anatomy embedding (the tests
                      set a few, so that evaluating a tiny run stays fast).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "cache_dir", "runs_dir", "data_source", "demo_dir", "datasets_dir", "embedding_steps"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Root of everything latentbrain caches (demo cohort, datasets)."""
    default = Path.home() / ".cache" / "latentbrain"
    return Path(os.environ.get("LATENTBRAIN_CACHE", default)).expanduser()


def demo_dir() -> Path:
    """Folder the synthetic demo cohort is built into on first use."""
    return cache_dir() / "demo_cohort"


def datasets_dir() -> Path:
    """Folder that holds one sub-folder per built slice dataset (named by content hash)."""
    return cache_dir() / "datasets"


def runs_dir() -> Path:
    """Folder of training run dirs."""
    return Path(os.environ.get("LATENTBRAIN_RUNS", REPO_ROOT / "checkpoints")).expanduser()


def data_source() -> Path | None:
    """The user's data folder or tar from ``LATENTBRAIN_DATA``; None means the demo cohort."""
    value = os.environ.get("LATENTBRAIN_DATA")
    return Path(value).expanduser() if value else None


def embedding_steps(default: int) -> int:
    """Training steps of the anatomy embedding: ``LATENTBRAIN_EMBEDDING_STEPS``, else ``default``."""
    value = os.environ.get("LATENTBRAIN_EMBEDDING_STEPS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else int(default)
