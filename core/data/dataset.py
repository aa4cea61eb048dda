"""Leak-free slice datasets: split by subject, cached as arrays + ``manifest.json``.

A dataset folder holds::

    manifest.json      spec, splits -> {train, val, test} -> {subjects, images, slices}, hash
    train.npy          float32 (N, size, size) in [0, 1]
    val.npy, test.npy

Same inputs give the same content hash, so an identical choice is reused, not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core import settings
from core.data.preprocess import PreprocessSpec, preprocess_volume
from core.data.slices import SliceSpec, extract_slices
from core.data.volumes import VolumeEntry, load_volume
from core.errors import UserError

__all__ = [
    "SPLITS", "BuildResult", "build_dataset", "dataset_hash", "split_subjects", "balance_table",
    "list_datasets", "load_manifest", "load_split_images", "write_dataset", "manifest_spec",
]

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
#: Bump when the way images are made changes, so old caches are not reused.
BUILDER_VERSION = 2


def load_manifest(dataset_dir: str | Path) -> dict:
    """Read and check a dataset folder's ``manifest.json``."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{dataset_dir} is not a dataset folder: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"dataset manifest {path} is unreadable: {exc}") from exc
    missing = [k for k in ("spec", "splits", "hash") if k not in manifest]
    if missing:
        raise UserError(f"dataset manifest {path} lacks {', '.join(missing)}")
    return manifest


def load_split_images(dataset_dir: str | Path, split: str) -> np.ndarray:
    """Images of one split as a read-only float32 ``(N, size, size)`` array in [0, 1].

    Memory-mapped, so opening a large dataset costs nothing until it is read.
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {split!r}")
    manifest = load_manifest(dataset_dir)
    entry = manifest["splits"].get(split)
    if entry is None:
        raise UserError(f"dataset {dataset_dir} has no {split!r} split")
    path = Path(dataset_dir) / entry["images"]
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise UserError(f"dataset images {path} are missing or corrupt: {exc}") from exc
    size = manifest["spec"]["size"]
    if images.ndim != 3 or images.shape[1:] != (size, size) or len(images) != len(entry["slices"]):
        raise UserError(
            f"dataset images {path} have shape {images.shape}, expected "
            f"({len(entry['slices'])}, {size}, {size}): the cache is corrupt, rebuild it"
        )
    return images


def write_dataset(
    out_dir: str | Path,
    spec: dict,
    splits: dict[str, dict],
    dataset_hash: str,
    extra: dict | None = None,
) -> Path:
    """Write a dataset folder atomically and return it.

    Parameters
    ----------
    out_dir : final folder; it appears only once complete (written to a temporary
        sibling, then renamed), so a kill never leaves a half dataset behind.
    spec : ``SliceSpec.to_dict()`` (axis, start, stop, size, ...).
    splits : ``{"train"|"val"|"test": {"images": (N, size, size) float32 in [0, 1],
        "subjects": [ids], "slices": [[subject_id, slice_index], ...]}}``.
    dataset_hash : content hash of the inputs that made it.
    extra : more manifest fields (sources, seed, split fractions, demographics, ...).
    """
    import os
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_builds(out_dir)
    # The writer's pid is in the temp name, so a later build can tell an orphan (its writer was
    # killed) from a build still in progress in another process.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", dir=out_dir.parent))
    try:
        manifest = {"spec": dict(spec), "hash": dataset_hash, "splits": {}}
        for name in SPLITS:
            entry = splits.get(name) or {"images": np.zeros((0, spec["size"], spec["size"]), np.float32),
                                         "subjects": [], "slices": []}
            images = np.asarray(entry["images"], dtype=np.float32)
            if len(images) and (images.min() < 0 or images.max() > 1):
                raise ValueError(f"{name} images must lie in [0, 1], found {images.min()}..{images.max()}")
            np.save(tmp / f"{name}.npy", images)
            manifest["splits"][name] = {
                "subjects": list(entry["subjects"]),
                "images": f"{name}.npy",
                "slices": [[str(s), int(i)] for s, i in entry["slices"]],
            }
        manifest.update(extra or {})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def split_subjects(subject_ids, fractions=(0.8, 0.1, 0.1), seed: int = 0, strata=None) -> dict:
    """Assign whole subjects to train/val/test, so no subject's slices leak across splits.

    Subjects are shuffled with ``seed`` inside each stratum (e.g. site) and dealt out
    in proportion to ``fractions`` (a fraction may be 0).  Deterministic.

    Returns
    -------
    dict ``{"train": [ids], "val": [ids], "test": [ids]}`` (each sorted).
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or fractions.sum() <= 0:
        raise UserError(f"split fractions must be three non-negative numbers, got {fractions.tolist()}")
    fractions = fractions / fractions.sum()
    subject_ids = list(dict.fromkeys(str(s) for s in subject_ids))
    strata = [None] * len(subject_ids) if strata is None else [str(x) for x in strata]
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for sid, stratum in zip(subject_ids, strata):
        groups.setdefault(stratum, []).append(sid)
    # Deal subjects round the strata in one shuffled order, allocating by largest deficit,
    # so small cohorts still get every split with a positive fraction.
    ordered = []
    for stratum in sorted(groups, key=str):
        members = sorted(groups[stratum])
        ordered += [members[i] for i in rng.permutation(len(members))]
    result = {name: [] for name in SPLITS}
    for n, sid in enumerate(ordered, start=1):
        deficit = fractions * n - np.array([len(result[k]) for k in SPLITS])
        result[SPLITS[int(np.argmax(deficit))]].append(sid)
    return {k: sorted(v) for k, v in result.items()}


def dataset_hash(entries: list[VolumeEntry], spec: SliceSpec, fractions, seed: int,
                 demographics_id: str = "", preprocess: PreprocessSpec | None = None) -> str:
    """Content hash of everything that determines a dataset's images and split."""
    payload = json.dumps({
        "version": BUILDER_VERSION,
        "spec": manifest_spec(spec, preprocess),
        "volumes": sorted(e.identity() for e in entries),
        "fractions": [round(float(f), 6) for f in fractions],
        "seed": int(seed),
        "demographics": demographics_id,
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def manifest_spec(spec: SliceSpec, preprocess: PreprocessSpec | None = None) -> dict:
    """The manifest's ``spec``: the slice spec, plus ``preprocess`` (steps and their
    parameters) when any preprocessing step is on, so the steps enter the dataset hash."""
    out = spec.to_dict()
    if preprocess:
        out["preprocess"] = preprocess.to_dict()
    return out


@dataclass
class BuildResult:
    """Where the dataset is, whether it was reused from the cache, and what was skipped.

    ``preprocess_seconds``: per preprocessing step, mean seconds per volume in this build
    (a step read from the per-volume cache counts the time it took when it was computed).
    """

    path: Path
    reused: bool
    manifest: dict
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    preprocess_seconds: dict = field(default_factory=dict)


def build_dataset(
    entries: list[VolumeEntry],
    spec: SliceSpec,
    cohort: pd.DataFrame | None = None,
    fractions=(0.8, 0.1, 0.1),
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
    workers: int = 2,
    demographics_id: str = "",
    preprocess: PreprocessSpec | None = None,
) -> BuildResult:
    """Build (or reuse) the slice dataset for ``spec`` over ``entries``.

    Parameters
    ----------
    entries : volumes from :func:`core.data.volumes.scan_source`.
    spec : which slices and at what size.
    cohort : optional :func:`core.data.demographics.cohort_table` (age/sex/site per
        subject), stored in the manifest for the balance table and latent colouring.
    fractions, seed : the subject-level split.
    workers : volumes decoded in parallel (threads: gzip, NumPy and Pillow release the GIL).
    preprocess : optional steps (skull strip, N4, registration, crop) run on each volume before
        slicing (:mod:`core.data.preprocess`, cached per volume); listed in the manifest's spec.

    A volume that cannot be used (corrupt, range outside it, ...) is skipped with its
    reason in ``skipped`` and the manifest; if none is usable a UserError is raised.
    """
    if not entries:
        raise UserError("no volumes to build a dataset from")
    started = time.perf_counter()
    root = Path(cache_dir) if cache_dir else settings.datasets_dir()
    key = dataset_hash(entries, spec, fractions, seed, demographics_id, preprocess)
    out_dir = root / key
    if (out_dir / MANIFEST).is_file():
        try:
            manifest = load_manifest(out_dir)
            for name in SPLITS:
                load_split_images(out_dir, name)
            if progress:
                progress(1.0, "reused the cached dataset")
            return BuildResult(out_dir, True, manifest, manifest.get("skipped", []),
                               time.perf_counter() - started, manifest.get("preprocess_seconds", {}))
        except UserError:
            pass  # a damaged cache is rebuilt below

    step_seconds: dict[str, list[float]] = {}

    def work(entry: VolumeEntry):
        try:
            if not preprocess:
                return entry, extract_slices(load_volume(entry, float32=False), spec), None
            done = preprocess_volume(load_volume(entry), preprocess, entry.identity(), axis=spec.axis)
            for step, seconds in done.seconds.items():
                step_seconds.setdefault(step, []).append(seconds)
            return entry, extract_slices(done.volume, spec), None
        except UserError as exc:
            return entry, None, str(exc)

    images: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (entry, stack, error) in enumerate(pool.map(work, entries), start=1):
            if error:
                # A preprocessing error already names the volume and the step.
                skipped.append(error if error.startswith(f"{entry.name}: ") else f"{entry.name}: {error}")
            else:
                images[entry.subject_id] = stack
            if progress:
                progress(done / len(entries), f"{done}/{len(entries)} volumes ({entry.subject_id})")
    if not images:
        raise UserError("no usable volume for this slice range: " + "; ".join(skipped[:3]))

    info = _subject_info(list(images), entries, cohort)
    # Split whole subjects: a BIDS subject's sessions are separate volumes of one subject.
    group_of = {e.subject_id: e.subject_group for e in entries}
    strata_of: dict[str, str] = {}
    for s in images:
        # Stratify by site and sex so each split sees every scanner and both sexes where it can.
        strata_of.setdefault(group_of[s], f"{info[s]['site']}|{info[s]['sex']}")
    by_group = split_subjects(list(strata_of), fractions, seed, strata=list(strata_of.values()))
    split = {name: sorted(s for s in images if group_of[s] in set(groups)) for name, groups in by_group.items()}
    splits = {}
    for name, subjects in split.items():
        stacks = [images[s] for s in subjects]
        splits[name] = {
            "images": np.concatenate(stacks) if stacks else np.zeros((0, spec.size, spec.size), np.float32),
            "subjects": subjects,
            "slices": [[s, i] for s in subjects for i in range(spec.start, spec.stop)],
        }
    extra = {
        "seed": int(seed),
        "fractions": [float(f) for f in fractions],
        "orientation": "radiological",
        "sources": sorted({e.path for e in entries}),
        "subjects": info,
        "skipped": skipped,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "builder_version": BUILDER_VERSION,
    }
    per_volume = {step: float(np.mean(values)) for step, values in step_seconds.items()}
    if preprocess:
        extra["preprocess_seconds"] = per_volume
    write_dataset(out_dir, manifest_spec(spec, preprocess), splits, key, extra)
    return BuildResult(out_dir, False, load_manifest(out_dir), skipped, time.perf_counter() - started,
                       per_volume)


def _subject_info(subject_ids, entries, cohort) -> dict:
    by_id = {e.subject_id: e for e in entries}
    rows = {} if cohort is None else cohort.set_index("subject_id").to_dict("index")
    info = {}
    for sid in subject_ids:
        row = rows.get(sid, {})
        age = row.get("age")
        info[sid] = {
            "age": None if age is None or pd.isna(age) else float(age),
            "sex": row.get("sex") if isinstance(row.get("sex"), str) else None,
            "site": row.get("site") if isinstance(row.get("site"), str) else by_id[sid].site,
        }
    return info


def balance_table(manifest: dict) -> pd.DataFrame:
    """Per split: subjects, images, age mean ± sd and range, sex and site counts."""
    info = manifest.get("subjects", {})
    rows = []
    for name in SPLITS:
        entry = manifest["splits"][name]
        subjects = entry["subjects"]
        ages = np.array([info.get(s, {}).get("age") for s in subjects if info.get(s, {}).get("age") is not None])
        sexes = pd.Series([info.get(s, {}).get("sex") or "?" for s in subjects]).value_counts()
        sites = pd.Series([info.get(s, {}).get("site") or "?" for s in subjects]).value_counts()
        rows.append({
            "split": name,
            "subjects": len(subjects),
            "images": len(entry["slices"]),
            "age mean ± sd": f"{ages.mean():.1f} ± {ages.std():.1f}" if len(ages) else "–",
            "age range": f"{ages.min():.0f}–{ages.max():.0f}" if len(ages) else "–",
            "sex (F/M)": f"{sexes.get('F', 0)}/{sexes.get('M', 0)}",
            "sites": ", ".join(f"{k} {v}" for k, v in sorted(sites.items())),
        })
    return pd.DataFrame(rows)


def _remove_orphaned_builds(out_dir: Path) -> None:
    """Delete temp folders of earlier builds of ``out_dir`` whose writing process is gone
    (killed mid-write: ``kill -9``, power loss); a build still running elsewhere is left alone."""
    import shutil

    from core.processes import pid_alive

    for leftover in out_dir.parent.glob(f".{out_dir.name}.*"):
        parts = leftover.name[len(out_dir.name) + 2 :].split(".")
        if leftover.is_dir() and parts and parts[0].isdigit() and not pid_alive(int(parts[0])):
            shutil.rmtree(leftover, ignore_errors=True)


def list_datasets(cache_dir: str | Path | None = None) -> list[dict]:
    """Built datasets in the cache, newest first: path, hash, spec, counts, created."""
    root = Path(cache_dir) if cache_dir else settings.datasets_dir()
    found = []
    for manifest_path in root.glob(f"*/{MANIFEST}"):
        try:
            manifest = load_manifest(manifest_path.parent)
        except UserError:
            continue
        found.append({
            "path": str(manifest_path.parent),
            "hash": manifest["hash"],
            "spec": manifest["spec"],
            "counts": {k: len(v["slices"]) for k, v in manifest["splits"].items()},
            "created": manifest.get("created", ""),
        })
    return sorted(found, key=lambda d: d["created"], reverse=True)
