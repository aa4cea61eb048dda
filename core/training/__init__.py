"""Training engine (never imports Streamlit).

- ``runs``: the run folder (:class:`~core.training.runs.RunFolder`): its files, status,
  metrics CSV, resume point, lock and cancel flag; run names; listing runs.
- ``config``: a run's config from a preset, overrides and a dataset, checked once.
- ``checkpoints``: Keras model files of a run: atomic save, safe load.
- ``trainer``: trains a run folder in the foreground (input pipeline, stages, resume).
- ``callbacks``: Keras callbacks that keep the run folder current while a model trains.
- ``jobs``: background jobs that train a run folder: launch, cancel, resume, count.
- ``device``: GPU detection, mixed precision, distribution strategy.
- ``augment``: training-time augmentation of slice batches (flip, rotation, scale, gain, gamma).
- ``cli``: the ``train``, ``sample`` and ``evaluate`` commands of ``python -m core``.

Training curves are drawn by :mod:`core.viz.curves`.
"""
