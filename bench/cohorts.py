"""The two cohorts the sample benchmarks measure on, built as the evaluation sees them.

- ``demo``: the thesis' slice range of the demo cohort (``core.data.demo``), 64 px, split by
  subject 70/10/20 with split seed 0; it has ages, sexes and sites per subject.
- ``real_dev``: ``../shared/data/real_dev`` (12 real raw heads), axial canonical slices 58–82,
  64 px, split 60/10/30 with split seed 1.  Seed 1 is the first that puts a head of the smaller
  scanner geometry (Subj5, 6, 8: 88x128x128) on both sides; with seed 0 all three are in the
  training split and a real-vs-real test measures the scanner (see ``bench/judge_power.py``,
  whose ``REAL_DEV_SPEC`` this must equal).  Its file ids (``Subj1_T1``) match no demographics
  row, so no conditional model can be trained on it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL_DEV = ROOT.parent / "shared" / "data" / "real_dev"
#: The real_dev dataset of the benchmarks: (axis, start, stop, size, split fractions, split seed).
REAL_DEV_SPEC = ("axial", 58, 82, 64, (0.6, 0.1, 0.3), 1)
#: With ``--preprocess ...register``: the axial range in MNI152 mm (z) that replaces 58-82, the same
#: anatomy in every head (from below the lateral ventricles to the centrum semiovale): 24 slices
#: on the 2 mm grid, like the raw range.
REAL_DEV_MNI_Z_MM = (-10.0, 38.0)
COHORTS = ("demo", "real_dev")


def demo_dataset(size: int = 64) -> Path:
    """The thesis' slice range on the demo cohort, split by subject 70/10/20."""
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.demo import build_demo_cohort
    from core.data.slices import thesis_spec
    from core.data.volumes import load_volume

    cohort = load_cohort(build_demo_cohort())  # with demographics.csv: age, sex, site per subject
    spec = thesis_spec(load_volume(cohort.entries[0]), size=size)
    return build_cohort_dataset(cohort, spec, fractions=(0.7, 0.1, 0.2), seed=0).path


def real_dev_dataset(folder: Path = REAL_DEV, preprocess=None, size: int | None = None) -> Path:
    """``REAL_DEV_SPEC`` built from the real development heads with the project's CLI path.

    ``preprocess``: a :class:`core.data.preprocess.PreprocessSpec` run on each head first; with
    ``register`` the slice range is ``REAL_DEV_MNI_Z_MM`` on the MNI grid instead of 58-82.
    ``size``: other than the spec's 64 px, the same slices and split at that resolution.
    """
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.slices import SliceSpec

    axis, start, stop, spec_size, fractions, seed = REAL_DEV_SPEC
    size = spec_size if size is None else size
    if preprocess is not None and "register" in preprocess.steps:
        from core.data.preprocess import mni_template

        affine = mni_template(preprocess.register_mm)[2]
        start, stop = (int(round((z - affine[2, 3]) / affine[2, 2])) for z in REAL_DEV_MNI_Z_MM)
    cohort = load_cohort(folder)
    spec = SliceSpec(axis=axis, start=start, stop=stop, size=size)
    return build_cohort_dataset(cohort, spec, fractions=fractions, seed=seed, preprocess=preprocess).path


def cohort_dataset(name: str, preprocess=None, size: int = 64) -> Path | None:
    """The dataset folder of cohort ``name``; None when ``real_dev`` is absent here.

    ``preprocess`` (a :class:`core.data.preprocess.PreprocessSpec`) is for ``real_dev`` only.
    """
    if preprocess and name != "real_dev":
        raise ValueError(f"preprocessing is measured on real_dev only, not on {name!r}")
    if name == "demo":
        return demo_dataset(size)
    if name == "real_dev":
        return real_dev_dataset(preprocess=preprocess or None, size=size) if REAL_DEV.is_dir() else None
    raise ValueError(f"unknown cohort {name!r}; one of {', '.join(COHORTS)}")
