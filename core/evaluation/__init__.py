"""Measured quality of a run and the reader study.

Pure ``compute_*``-style functions over ``(N, H, W)`` arrays in [0, 1] (``metrics``,
``diversity``, ``distances``, ``features``, ``c2st``, ``memorisation``, ``anomaly``), the run
evaluator (``run.evaluate_run`` → ``evaluation.json``), the reader-study store
(``study``) with its statistics (``study_stats``) and exports (``export``).  Heavy modules
(TensorFlow) are imported on first use, not here.
"""

from core.evaluation.metrics import compute_psnr, compute_sharpness, compute_ssim, laplacian_variance

__all__ = ["compute_ssim", "compute_psnr", "compute_sharpness", "laplacian_variance", "evaluate_run"]


def evaluate_run(run_dir, n_samples: int = 256, seed: int = 0, progress=None, write: bool = True) -> dict:
    """:func:`core.evaluation.run.evaluate_run` (imported lazily)."""
    from core.evaluation.run import evaluate_run as _evaluate_run

    return _evaluate_run(run_dir, n_samples=n_samples, seed=seed, progress=progress, write=write)
