"""Offline synthetic demo cohort: deformed MNI152 templates written like IXI T1 volumes.

The cohort is built from the MNI152 (ICBM 2009a) T1 template and its grey/white-matter
probability maps that ship inside the nilearn wheel, so it needs no network and no
download.  Every subject is the template, given a head (scalp, skull, marrow), then
deformed (pose, head size, smooth random warp, age-dependent ventricle widening),
aged (cortical thinning and sulcal widening, white-matter darkening; the degree varies per
subject around its age) and imaged as one of three "sites" (tissue
contrast, bias field, Rician noise, intensity scale).  Everything is deterministic in
``seed``.

Files mimic IXI so that the real loading path is exercised: ``DEMO001-Guys-0001-T1.nii.gz``
holds a ``(256, 256, 150)`` int16 volume stored in IXI's native sagittal orientation
(voxel axes point P, S, R; voxel size 0.9375 x 0.9375 x 1.2 mm), next to
``demographics.csv`` (``ID,Age,Sex,Site``) and a ``README.txt``.  These are *not*
patients and not IXI subjects.

>>> from core.data.demo import build_demo_cohort, demo_is_built
>>> folder = build_demo_cohort()            # doctest: +SKIP
>>> demo_is_built(folder)                   # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see _build_lock
    fcntl = None

from core import settings
from core.errors import UserError

__all__ = ["build_demo_cohort", "demo_is_built"]

_log = logging.getLogger(__name__)

#: Bump when the generator's output changes, so cached cohorts are rebuilt.
GENERATOR_VERSION = 2  # 2: stronger, subject-varying ageing (atrophy, ventricles, WM)

#: IXI's on-disk geometry: voxel axes point (P, S, R) at (0.9375, 0.9375, 1.2) mm.
SHAPE = (256, 256, 150)
ZOOMS = (0.9375, 0.9375, 1.2)
SITES = ("Guys", "HH", "IOP")
MIN_SUBJECTS, MAX_SUBJECTS = 6, 999
AGE_RANGE = (20.0, 86.0)

_MARKER = ".complete"
_LOCK_TIMEOUT_S = 600.0  # a normal build takes well under a minute
_MARKER_KIND = "latentbrain-demo-cohort"
# Names a cohort folder may hold; a folder with anything else is never replaced.
_OWN_FILE = re.compile(
    r"^(DEMO\d{3}-(Guys|HH|IOP)-\d{4}-T1\.nii\.gz|demographics\.csv|README\.txt|\.complete)$")

# MNI152 (ICBM 2009a, nilearn's 1 mm copy): RAS+ grid, world = voxel + origin, in mm.
_MNI_ORIGIN = np.array([-98.0, -134.0, -72.0])
# Lateral ventricles of the template (centroid and spread of dark voxels near the
# midline, measured once on the template): the centre of the age-related widening.
_VENTRICLE_CENTRE = np.array([0.0, -15.0, 13.0])
# Its z spread is wider than the ventricles' own, so the widening reaches the bodies and the
# periventricular white matter of the thesis' axial range above them.
_VENTRICLE_SIGMA = np.array([16.0, 26.0, 20.0])
# The template brain is larger than an average adult brain; shrink it towards IXI's.
_MEAN_HEAD_SCALE = 0.93
# Below the template's lowest slice (the brainstem) the head is continued as a "neck"
# that fades out over this many mm, as a head coil's sensitivity does.
_NECK_MM = 30.0
# Intensity of the head outside the brain by distance (mm) from a smooth envelope of the
# brain: CSF/dura, inner table (dark), marrow (grey), outer table, fat (bright), skin.
_HEAD_PROFILE_MM = [0.0, 3.3, 4.2, 5.0, 5.8, 7.6, 8.6, 12.4, 13.2, 14.4, 15.4]
_HEAD_PROFILE = [0.0, 0.02, 0.40, 0.40, 0.03, 0.03, 0.95, 0.95, 0.50, 0.45, 0.0]
# Target FOV in world (scanner) mm: the voxel (0, 0, 0) corner of the IXI-like grid.
# The head sits near the centre, its crown ~15 mm below the top, like IXI.
_FOV_ORIGIN = np.array([-89.4, 103.5, -129.0])  # x (R), y (A), z (S) of voxel (0, 0, 0)
# Coarse grid step (voxels) on which the deformation is evaluated exactly before being
# interpolated to every voxel; the fields are smooth on a >10 mm scale.
_COARSE_STEP = 4


@dataclass(frozen=True)
class _Subject:
    """One planned subject: its number, demographics and file name."""

    index: int  # 1-based
    age: float
    sex: str  # 'M' / 'F'
    site: str  # one of SITES

    @property
    def subject_id(self) -> str:
        return f"DEMO{self.index:03d}-{self.site}-{self.index:04d}-T1"

    @property
    def file_name(self) -> str:
        return f"{self.subject_id}.nii.gz"


@dataclass(frozen=True)
class _Site:
    """How one synthetic scanner images tissue (intensities relative to WM = ~0.8)."""

    csf: float
    gm: float
    wm: float
    head: float  # scale of the scalp/marrow layers
    noise: float  # Rician sigma as a fraction of the WM intensity
    bias: float  # typical peak-to-peak range of the log bias field
    counts: float  # stored integer value of intensity 1.0
    gamma: float  # contrast curve I -> I ** gamma


# Loosely after IXI: Guys (Philips 1.5T), HH (Philips 3T: more contrast, stronger bias,
# less noise), IOP (GE 1.5T: flatter contrast, noisier).
_SITE_PROFILES = {
    "Guys": _Site(csf=0.12, gm=0.50, wm=0.80, head=1.00, noise=0.025, bias=0.20, counts=900.0, gamma=1.0),
    "HH": _Site(csf=0.08, gm=0.46, wm=0.84, head=0.95, noise=0.018, bias=0.35, counts=1400.0, gamma=1.15),
    "IOP": _Site(csf=0.16, gm=0.56, wm=0.80, head=1.05, noise=0.035, bias=0.25, counts=650.0, gamma=0.9),
}


# --------------------------------------------------------------------------- public API


def build_demo_cohort(out_dir: str | Path | None = None, n_subjects: int = 24, seed: int = 0,
                      progress: Callable[[float, str], None] | None = None) -> Path:
    """Build the synthetic demo cohort (or find it already built) and return its folder.

    Parameters
    ----------
    out_dir : str or Path, optional
        Folder of the cohort; ``None`` means :func:`core.settings.demo_dir`.  It must not
        exist, be empty, or hold a demo cohort (which is replaced if its parameters differ).
    n_subjects : int
        Number of subjects, 6 to 999.  Ages spread over 20-86 years, both sexes and the
        three sites are balanced.
    seed : int
        Seed of every random choice; the same seed gives identical volumes (per subject,
        independent of how the work is shared among processes).
    progress : callable, optional
        ``progress(fraction, message)`` with ``fraction`` in [0, 1], called as subjects
        finish (and with 1.0 when the cohort is found already built).

    Returns
    -------
    Path
        The cohort folder: ``DEMO{NNN}-{Site}-{NNNN}-T1.nii.gz`` files, each a
        ``(256, 256, 150)`` int16 volume with voxel axes (P, S, R) and zooms
        (0.9375, 0.9375, 1.2) mm, plus ``demographics.csv`` and ``README.txt``.

    Raises
    ------
    UserError
        When ``n_subjects`` or ``seed`` is invalid, or the folder cannot be written or
        holds something other than a demo cohort.

    Notes
    -----
    The cohort is written into a hidden sibling folder and renamed into place once
    complete (marker file ``.complete``), so an interrupted build never leaves a half
    cohort; concurrent builds wait on a lock file and then reuse the finished cohort.
    """
    n_subjects = _check_int("n_subjects", n_subjects, MIN_SUBJECTS, MAX_SUBJECTS)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    out = Path(settings.demo_dir() if out_dir is None else out_dir).expanduser().absolute()
    params = {"n_subjects": n_subjects, "seed": seed}
    report = progress or (lambda fraction, message: None)

    if _complete_marker(out, params) is not None:
        report(1.0, "demo cohort already built")
        return out
    if out.exists() and not out.is_dir():
        raise UserError(f"demo cohort folder {out} exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the demo cohort folder {out}: {exc.strerror or exc}") from exc

    with _build_lock(out):
        # Another process may have finished the same cohort while this one waited.
        if _complete_marker(out, params) is not None:
            report(1.0, "demo cohort already built")
            return out
        _check_replaceable(out)
        _remove_stale_partials(out)
        partial = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            partial.mkdir()
        except OSError as exc:
            raise UserError(f"cannot write the demo cohort next to {out}: {exc.strerror or exc}") from exc
        try:
            subjects = _plan_cohort(n_subjects, seed)
            report(0.0, f"synthesising {n_subjects} subjects")
            _synthesise_all(subjects, seed, partial, report)
            _write_demographics(partial / "demographics.csv", subjects)
            (partial / "README.txt").write_text(_readme(n_subjects, seed), encoding="utf-8")
            marker = {"kind": _MARKER_KIND, "version": GENERATOR_VERSION, **params,
                      "files": [s.file_name for s in subjects] + ["demographics.csv", "README.txt"]}
            (partial / _MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
            _move_into_place(partial, out, params)
        except OSError as exc:
            raise UserError(f"cannot write the demo cohort into {out}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return out


def demo_is_built(out_dir: str | Path | None = None) -> bool:
    """True when ``out_dir`` (default :func:`core.settings.demo_dir`) holds a complete cohort.

    Complete means: a ``.complete`` marker written by this generator version, and every
    file it lists present.  Any ``n_subjects``/``seed`` counts; never raises.

    >>> demo_is_built("/nonexistent/folder")
    False
    """
    try:
        out = Path(settings.demo_dir() if out_dir is None else out_dir).expanduser()
    except (TypeError, RuntimeError):  # not a path, or ~user that does not exist
        return False
    return _complete_marker(out) is not None


# ------------------------------------------------------------------- folder bookkeeping


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise UserError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _complete_marker(out: Path, params: dict | None = None) -> dict | None:
    """The marker of a complete cohort in ``out`` (matching ``params`` if given), else None."""
    try:
        marker = json.loads((out / _MARKER).read_text(encoding="utf-8"))
        if marker.get("kind") != _MARKER_KIND or marker.get("version") != GENERATOR_VERSION:
            return None
        if params and any(marker.get(key) != value for key, value in params.items()):
            return None
        if not all((out / name).is_file() for name in marker["files"]):
            return None
        return marker
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def _build_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on a sibling lock file while building ``out`` (POSIX only).

    Without ``fcntl`` (Windows) concurrent builds still cannot corrupt each other: each
    writes its own partial folder and the loser of the final rename discards its copy.
    """
    if fcntl is None:
        yield
        return
    lock_path = out.parent / f".{out.name}.lock"
    try:
        handle = open(lock_path, "a+b")
    except OSError as exc:
        raise UserError(f"cannot write the demo cohort next to {out}: {exc.strerror or exc}") from exc
    with handle:
        # Poll rather than block, so a stuck build elsewhere gives an error, not a hang.
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(f"another process has been building the demo cohort {out} for "
                                    f"over {_LOCK_TIMEOUT_S:.0f} s (lock {lock_path}); stop it or "
                                    "choose another folder") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a folder that holds anything but (parts of) a demo cohort."""
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if not _OWN_FILE.match(p.name))
    if foreign:
        raise UserError(f"{out} is not a demo cohort folder (it holds {', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty folder")


def _remove_stale_partials(out: Path) -> None:
    # Called under the lock: a partial folder left now belongs to a killed build.  Without
    # a lock (no fcntl) it may belong to a live build, so it is left alone.
    if fcntl is None:
        return
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _move_into_place(partial: Path, out: Path, params: dict) -> None:
    """Rename the finished ``partial`` folder to ``out``, replacing an old/empty ``out``."""
    if out.exists():
        # An older or differently sized cohort (checked by _check_replaceable): move it
        # aside first, so ``out`` is at every moment either absent, old or new.
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(partial, out)
    except OSError:
        # Lost a race against a build that did not take the lock: keep its cohort if good.
        if _complete_marker(out, params) is None:
            raise


# ------------------------------------------------------------------------ cohort plan


def _plan_cohort(n_subjects: int, seed: int) -> list[_Subject]:
    """Balanced demographics: ages stratified over 20-86, sites cycling over age, sexes half/half.

    Sites are assigned in order of age so each site spans the whole age range; sexes are
    a balanced permutation, so for n >= 6 every site and both sexes occur.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    low, high = AGE_RANGE
    # One age per stratum of width (high - low) / n, in random order over subject numbers.
    ages = low + (high - low) * (np.arange(n_subjects) + rng.uniform(0.05, 0.95, n_subjects)) / n_subjects
    order = rng.permutation(n_subjects)  # order[k]: the subject number (0-based) of age rank k
    site_shift = int(rng.integers(len(SITES)))
    sexes = np.array(["M", "F"] * (n_subjects // 2 + 1))[:n_subjects]
    sexes = sexes[rng.permutation(n_subjects)]
    by_index = {}
    for rank, index in enumerate(order):
        by_index[int(index)] = _Subject(index=int(index) + 1, age=round(float(ages[rank]), 2),
                                        sex=str(sexes[rank]), site=SITES[(rank + site_shift) % len(SITES)])
    return [by_index[i] for i in range(n_subjects)]


def _write_demographics(path: Path, subjects: list[_Subject]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Age", "Sex", "Site"])
        for s in subjects:
            writer.writerow([s.subject_id, f"{s.age:.2f}", s.sex, s.site])


def _readme(n_subjects: int, seed: int) -> str:
    return f"""latentbrain demo cohort -- SYNTHETIC DATA, NOT REAL PATIENTS
===========================================================

These {n_subjects} T1-weighted volumes are SYNTHETIC. Each one is the MNI152 ICBM 2009a
template shipped with nilearn, deformed and re-imaged by latentbrain's generator
(core/data/demo.py, version {GENERATOR_VERSION}, seed {seed}): head pose and size (sex-related),
a smooth random warp, age-related atrophy (ventricle widening, cortical thinning, sulcal
widening, white-matter darkening; its degree varies per subject), and per-site
tissue contrast, bias field and Rician noise. The ages, sexes and sites in
demographics.csv are the generator's parameters, not facts about any person, and the
DEMO ids are not IXI ids.

Files are stored like IXI T1 scans: 256 x 256 x 150 int16 voxels of 0.9375 x 0.9375 x
1.2 mm, voxel axes pointing (P, S, R), gzipped NIfTI-1.

Use it to try the app and the command line offline. Results on it say nothing about
real brains. To use real data instead, download IXI-T1.tar and IXI.xls from
https://brain-development.org/ixi-dataset/ (CC BY-SA 3.0) and point latentbrain at
them, e.g.

    LATENTBRAIN_DATA=/path/to/IXI-T1.tar streamlit run app.py
    python -m core build-dataset --data /path/to/IXI-T1.tar --demographics /path/to/IXI.xls ...

The template: VS Fonov et al., NeuroImage 54 (2011) 313-327; Copyright (C) 1993-2009
Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill
University (free use with this copyright notice).
"""


# ----------------------------------------------------------------------- synthesis


def _synthesise_all(subjects: list[_Subject], seed: int, folder: Path,
                    report: Callable[[float, str], None]) -> None:
    """Write every subject's volume into ``folder``, in two worker processes when possible.

    ``report`` is always called from the calling thread (Streamlit needs that).  Subjects
    a worker did not deliver (it could not start, or failed) are made in this process.
    """
    todo = {s.index: s for s in subjects}

    def finished(index: int) -> None:
        subject = todo.pop(index)
        done = len(subjects) - len(todo)
        report(done / len(subjects), f"{subject.subject_id} ({done}/{len(subjects)})")

    n_workers = min(2, os.cpu_count() or 1, len(subjects))
    if n_workers > 1:
        _run_workers(subjects, seed, folder, n_workers, finished)
    for subject in list(todo.values()):
        _write_subject(subject, seed, str(folder))
        finished(subject.index)


# A worker is a fresh interpreter started with subprocess, not multiprocessing: fork()
# would copy a caller's TensorFlow/Streamlit threads, and spawn/forkserver re-run the
# caller's __main__ (a Streamlit page or an unguarded script), which would call this
# build again and wait forever on its lock.
_WORKER_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from core.data.demo import _worker_main; _worker_main(sys.argv[2])")


def _run_workers(subjects: list[_Subject], seed: int, folder: Path, n_workers: int,
                 finished: Callable[[int], None]) -> None:
    """Share ``subjects`` among ``n_workers`` processes; call ``finished(index)`` per subject."""
    repo_root = str(Path(__file__).resolve().parents[2])
    # Each worker gets one core; keep numeric libraries from starting thread pools.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    events: queue.Queue = queue.Queue()
    workers = []
    try:
        for k in range(n_workers):
            payload = json.dumps({"seed": seed, "folder": str(folder),
                                  "subjects": [asdict(s) for s in subjects[k::n_workers]]})
            log = tempfile.TemporaryFile()
            try:
                process = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, repo_root, payload],
                                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=log, env=env, text=True)
            except OSError as exc:
                log.close()
                _log.warning("demo cohort: cannot start a worker process (%s); building here", exc)
                break
            workers.append((process, log))
            threading.Thread(target=_forward_lines, args=(process.stdout, events), daemon=True).start()
        open_pipes = len(workers)
        while open_pipes:
            line = events.get()
            if line is None:
                open_pipes -= 1
            elif line.startswith("done "):
                finished(int(line.split()[1]))
        for process, log in workers:
            if process.wait() != 0:
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                _log.warning("demo cohort worker failed (exit %s); finishing here:\n%s",
                             process.returncode, tail)
    finally:
        for process, log in workers:
            if process.poll() is None:  # interrupted: stop our workers before cleaning up
                process.kill()
                process.wait()
            process.stdout.close()
            log.close()


def _forward_lines(stream, events: queue.Queue) -> None:
    for line in stream:
        events.put(line.strip())
    events.put(None)


def _worker_main(payload: str) -> None:
    """Entry point of a worker process: make the subjects in ``payload`` and report each."""
    job = json.loads(payload)
    for fields in job["subjects"]:
        subject = _Subject(**fields)
        _write_subject(subject, job["seed"], job["folder"])
        print(f"done {subject.index}", flush=True)


def _write_subject(subject: _Subject, seed: int, folder: str) -> str:
    """Synthesise one subject and save it as gzipped NIfTI; returns the file name."""
    import nibabel as nib

    data, affine = _synthesise_subject(subject, seed)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)  # scanner coordinates, as in IXI
    image.set_sform(affine, code=1)
    image.header["descrip"] = b"latentbrain SYNTHETIC demo, not a patient"
    path = os.path.join(folder, subject.file_name)
    try:
        from isal import igzip  # ISA-L: ~5x faster than zlib at the same size
    except ImportError:
        nib.save(image, path)
    else:
        with open(path, "wb") as handle:
            handle.write(igzip.compress(image.to_bytes(), compresslevel=3, mtime=0))
    return subject.file_name


def _synthesise_subject(subject: _Subject, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One subject's volume and affine.

    Returns
    -------
    data : (256, 256, 150) int16 ndarray
        Voxel axes (P, S, R), as stored by IXI.
    affine : (4, 4) ndarray
        Voxel -> world mm, axis codes ('P', 'S', 'R').
    """
    from scipy import ndimage

    rng = np.random.default_rng(np.random.SeedSequence([seed, subject.index]))
    site = _SITE_PROFILES[subject.site]
    # 0 young .. 1 old, plus a per-subject "brain age gap" so age is not the only factor.
    ageing = ((subject.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])) ** 1.3
    ageing = float(np.clip(ageing + rng.normal(0, 0.08), 0.0, 1.15))
    template = _template()

    # --- template-space intensities: tissue mixture with age-related atrophy.
    # Grey matter that borders CSF turns into CSF first, so sulci widen and the cortex
    # thins from outside; with age the loss reaches deeper (``near_csf_wide``: sulcal
    # fundi, the outer white matter), so the brain shrinks away from the skull.  White
    # matter darkens with age (GM/WM contrast falls), most around the ventricles.
    thinning = 0.1 + 1.5 * ageing + rng.normal(0, 0.04)
    atrophy = 0.7 * ageing + rng.normal(0, 0.03)
    wm_level = site.wm - 0.08 * ageing
    gm_level = site.gm + rng.normal(0, 0.01)
    shrink = template["near_csf"] * np.float32(max(thinning, 0.0))
    shrink += template["near_csf_wide"] * np.float32(max(atrophy, 0.0))
    np.minimum(shrink, 1.0, out=shrink)
    wm_loss = shrink * np.float32(0.35)  # WM fraction that becomes CSF (deep sulci)
    wm_loss *= template["wm"]
    shrink *= template["gm"]  # GM fraction that becomes CSF
    image = template["csf"] * np.float32(site.csf)
    image += template["gm"] * np.float32(gm_level)
    image += template["wm"] * np.float32(wm_level)
    image += template["head"] * np.float32(site.head)
    image += shrink * np.float32(site.csf - gm_level)
    image += wm_loss * np.float32(site.csf - wm_level)
    # Periventricular white-matter hypointensity (T1 "leukoaraiosis"), its degree per subject.
    lesion = template["periventricular"] * np.float32(max(0.12 * ageing - 0.02 + rng.normal(0, 0.015), 0.0))
    lesion *= template["wm"]
    image -= lesion
    del shrink, wm_loss, lesion
    if site.gamma != 1.0:
        np.power(image, np.float32(site.gamma), out=image)

    # --- where every output voxel samples the template (one interpolation per subject).
    affine = _ixi_affine(rng)
    to_template = _pose(subject, rng, affine)  # (4, 4): output voxel -> template mm (linear part)
    box, coords = _sample_coordinates(to_template, ageing, rng, template)
    volume = np.zeros(SHAPE, np.float32)
    inner = tuple(slice(lo, hi) for lo, hi in box)
    # 'nearest' continues the lowest template slice down into the neck; elsewhere the
    # template's border is ~0 (air), so it adds nothing.
    sampled = ndimage.map_coordinates(image, coords, order=1, mode="nearest", prefilter=False,
                                      output=np.float32)
    fade = coords[2]  # template z voxel: below 0 is the neck, faded out over _NECK_MM
    fade *= np.float32(1.0 / _NECK_MM)
    fade += np.float32(1.0)
    np.clip(fade, 0.0, 1.0, out=fade)
    sampled *= fade
    volume[inner] = sampled
    del coords, image, sampled, fade

    # --- acquisition: smooth multiplicative bias (separable), Rician noise, integer scale.
    for axis, (lo, hi) in enumerate(box):
        shape = [1, 1, 1]
        shape[axis] = hi - lo
        volume[inner] *= _bias_profile(hi - lo, SHAPE[axis], lo, site.bias, rng).reshape(shape)
    sigma = np.float32(site.noise * site.wm)
    real = rng.standard_normal(SHAPE, dtype=np.float32)
    real *= sigma
    real += volume
    real *= real
    imag = rng.standard_normal(SHAPE, dtype=np.float32, out=volume)
    imag *= sigma
    imag *= imag
    real += imag
    np.sqrt(real, out=real)
    real *= np.float32(site.counts * (1.0 + rng.normal(0, 0.05)))
    np.minimum(real, np.float32(np.iinfo(np.int16).max), out=real)
    return real.astype(np.int16), affine


def _ixi_affine(rng: np.random.Generator) -> np.ndarray:
    """IXI-style voxel -> world affine: axis 0 -> -y (P), axis 1 -> +z (S), axis 2 -> +x (R)."""
    affine = np.zeros((4, 4))
    affine[1, 0] = -ZOOMS[0]
    affine[2, 1] = ZOOMS[1]
    affine[0, 2] = ZOOMS[2]
    # The FOV is placed a little differently each session, as on a real scanner.
    affine[:3, 3] = _FOV_ORIGIN + rng.normal(0, 2.0, 3)
    affine[3, 3] = 1.0
    return affine


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about x, then y, then z (angles in degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _pose(subject: _Subject, rng: np.random.Generator, affine: np.ndarray) -> np.ndarray:
    """(4, 4) map from output voxel index to template (MNI) mm, before the non-linear warp.

    The head is the template scaled (males ~5 % larger than females, per-axis jitter),
    tilted a few degrees (mostly nodding) and shifted a few mm in the scanner.
    """
    size = _MEAN_HEAD_SCALE * (1.025 if subject.sex == "M" else 0.975) * (1.0 + rng.normal(0, 0.02))
    scale = size * (1.0 + rng.normal(0, 0.015, 3))
    rotation = _rotation(rng.normal(0, [4.0, 2.0, 2.0]))
    shift = rng.normal(0, 3.0, 3)
    head = np.eye(4)  # template mm -> world mm
    head[:3, :3] = rotation @ np.diag(scale)
    head[:3, 3] = shift
    return np.linalg.inv(head) @ affine


def _sample_coordinates(to_template, ageing, rng, template) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Template voxel coordinates sampled by the output voxels that can see the head.

    The warp is evaluated exactly on a coarse grid over the whole FOV (every
    ``_COARSE_STEP`` voxels) and interpolated linearly, which is exact for the affine
    part and accurate for the smooth rest (it varies on a >10 mm scale).  Only the box
    of output voxels whose source lies in the cropped template (or the neck below it)
    is interpolated; outside it the volume is air.

    Returns
    -------
    box : list of 3 (lo, hi)
        Output index range per voxel axis.
    coords : (3, hi0 - lo0, hi1 - lo1, hi2 - lo2) float32 ndarray
        Template voxel coordinates (RAS+ crop grid) for ``map_coordinates``.
    """
    nodes = [_coarse_nodes(0, n) for n in SHAPE]
    grid = np.stack(np.meshgrid(*nodes, indexing="ij"))  # (3, a, b, c) output voxel indices
    mni = np.einsum("ij,j...->i...", to_template[:3, :3], grid) + to_template[:3, 3, None, None, None]

    # Smooth random warp: low-frequency cosines over the FOV, ~2 mm RMS per axis.
    unit = [(n + 0.5) / size for n, size in zip(nodes, SHAPE)]
    basis = [np.cos(np.pi * np.arange(3)[:, None] * u[None, :]) for u in unit]  # (3, n) each
    coefficients = rng.normal(0, 0.75, (3, 3, 3, 3))
    coefficients[:, 0, 0, 0] = 0.0  # no pure translation (the pose has one)
    warp = np.einsum("dijk,ia,jb,kc->dabc", coefficients, *basis)

    # Ventricles widen with age: a radial expansion around them that fades with distance.
    # Sampling closer to the centre magnifies the ventricles by up to 1 / (1 - strength).
    strength = np.clip(0.05 + 0.50 * ageing + rng.normal(0, 0.03), 0.0, 0.6)
    offset = mni - _VENTRICLE_CENTRE[:, None, None, None]
    falloff = np.exp(-0.5 * np.sum((offset / _VENTRICLE_SIGMA[:, None, None, None]) ** 2, axis=0))
    source = mni - warp - strength * offset * falloff
    coarse_index = (source - template["origin_mm"][:, None, None, None]).astype(np.float32)

    # Coarse cells whose source is inside the template's extent (plus one cell of slack).
    lower, upper = template["extent_mm"].T - template["origin_mm"]
    inside = np.all((coarse_index >= lower[:, None, None, None] - _COARSE_STEP)
                    & (coarse_index <= upper[:, None, None, None] + _COARSE_STEP), axis=0)
    box, sub_nodes, keep = [], [], []
    for axis in range(3):
        hit = np.flatnonzero(np.any(inside, axis=tuple(a for a in range(3) if a != axis)))
        first = max(int(hit[0]) - 1, 0) if hit.size else 0
        last = min(int(hit[-1]) + 1, len(nodes[axis]) - 1) if hit.size else 1
        keep.append(slice(first, last + 1))
        sub_nodes.append(nodes[axis][first:last + 1])
        box.append((int(nodes[axis][first]), int(nodes[axis][last]) + 1))
    fine = [np.arange(lo, hi) for lo, hi in box]
    coords = np.empty((3,) + tuple(hi - lo for lo, hi in box), np.float32)
    for channel in range(3):
        coords[channel] = _upsample(coarse_index[channel][tuple(keep)], sub_nodes, fine)
    return box, coords


def _coarse_nodes(lo: int, hi: int) -> np.ndarray:
    nodes = np.arange(lo, hi, _COARSE_STEP, dtype=float)
    return np.append(nodes, float(hi - 1)) if nodes[-1] != hi - 1 else nodes


def _upsample(coarse: np.ndarray, nodes: list[np.ndarray], fine: list[np.ndarray]) -> np.ndarray:
    """Separable linear interpolation of a (a, b, c) grid at ``nodes`` onto ``fine`` indices."""
    out = coarse
    # Smallest growth first keeps the intermediate arrays small.
    for axis in (2, 1, 0):
        position = np.interp(fine[axis], nodes[axis], np.arange(len(nodes[axis])))
        left = np.minimum(position.astype(int), len(nodes[axis]) - 2)
        weight = (position - left).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = -1
        weight = weight.reshape(shape)
        low = np.take(out, left, axis=axis)
        high = np.take(out, left + 1, axis=axis)
        high -= low
        high *= weight
        low += high
        out = low
    return out


def _bias_profile(n: int, size: int, start: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 smooth positive factor along one axis (one factor of the bias field)."""
    u = (np.arange(start, start + n) + 0.5) / size
    log = sum(rng.normal(0, amplitude / 4) * np.cos(np.pi * f * u + rng.uniform(0, np.pi)) for f in (1, 2))
    return np.exp(log).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """Template-space maps shared by all subjects of a process (cached), RAS+ 1 mm grid.

    Returns a dict of ``(X, Y, Z)`` float32 arrays cropped to the head: ``csf``, ``gm``,
    ``wm`` (tissue fractions), ``near_csf`` (closeness of GM to CSF, 0-1),
    ``near_csf_wide`` (the same at a 3 mm scale, beyond ``near_csf``), ``periventricular``
    (a smooth 0-1 weight around the lateral ventricles) and ``head``
    (scalp, skull and marrow intensities), plus ``origin_mm`` (3,), the MNI mm of voxel
    (0, 0, 0), and ``extent_mm`` (3, 2), the mm range the subjects may sample (the
    head plus the neck below the template's lowest slice).
    """
    import nibabel as nib
    from scipy import ndimage

    folder = _nilearn_data_folder()
    maps = {}
    for name in ("t1", "gm", "wm"):
        path = folder / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        if not path.is_file():  # pragma: no cover - ships with every nilearn wheel
            raise UserError(f"nilearn's MNI152 template file {path} is missing; reinstall nilearn")
        maps[name] = np.asarray(nib.load(str(path)).dataobj)
    brain_full = maps["t1"] > 0  # the template T1 is skull-stripped

    # Head: a smooth envelope around the brain; scalp layers by distance from it (2 mm grid).
    coarse = ndimage.gaussian_filter(brain_full[::2, ::2, ::2].astype(np.float32), 2.0) > 0.3
    coarse = ndimage.binary_fill_holes(coarse)
    distance_2mm = ndimage.distance_transform_edt(~coarse, sampling=2.0).astype(np.float32)
    # Crop to the head (its skin ends 15.4 mm out) to keep every later array small.
    inside = np.argwhere(distance_2mm < _HEAD_PROFILE_MM[-1] + 1.0)
    lo = np.maximum(2 * inside.min(0) - 2, 0)
    hi = np.minimum(2 * inside.max(0) + 3, brain_full.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = _upsample(distance_2mm, [2.0 * np.arange(n) for n in distance_2mm.shape],
                         [np.arange(a, b) for a, b in zip(lo, hi)])

    brain = brain_full[crop].astype(np.float32)
    gm = maps["gm"][crop].astype(np.float32) * np.float32(1 / 255) * brain
    wm = maps["wm"][crop].astype(np.float32) * np.float32(1 / 255) * brain
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    # CSF also fills the space between the brain and the skull.
    csf += (1.0 - brain) * np.interp(distance, [0.0, 1.5, 2.5], [1.0, 1.0, 0.0]).astype(np.float32)
    near_csf = np.minimum(ndimage.gaussian_filter(csf, 1.5) * np.float32(2.0), np.float32(1.0))
    # The same at a coarser scale (2 mm grid): how deep into a gyrus atrophy can reach.
    wide = ndimage.gaussian_filter(csf[::2, ::2, ::2], 1.5)  # sigma 3 mm
    near_csf_wide = _upsample(wide, [2.0 * np.arange(n) for n in wide.shape],
                              [np.arange(n, dtype=float) for n in csf.shape])
    near_csf_wide = np.clip(near_csf_wide * np.float32(2.0) - near_csf, 0.0, 1.0)
    # Periventricular white matter: within ~10 mm of the lateral ventricles' centre line.
    mm = [origin_axis + np.arange(n) for origin_axis, n in zip(_MNI_ORIGIN + lo, csf.shape)]
    bumps = [np.exp(-0.5 * ((axis_mm - centre) / spread) ** 2).astype(np.float32)  # separable
             for axis_mm, centre, spread in zip(mm, _VENTRICLE_CENTRE + [0.0, 0.0, 8.0], (22.0, 32.0, 16.0))]
    periventricular = bumps[0][:, None, None] * bumps[1][None, :, None] * bumps[2][None, None, :]
    head = np.interp(distance, _HEAD_PROFILE_MM, _HEAD_PROFILE).astype(np.float32)
    origin = _MNI_ORIGIN + lo
    extent = np.stack([origin, origin + hi - lo - 1], axis=1)
    if lo[2] == 0:  # the template stops at the brainstem: the neck continues below
        extent[2, 0] -= _NECK_MM
    return {"csf": csf, "gm": gm, "wm": wm, "near_csf": near_csf, "near_csf_wide": near_csf_wide,
            "periventricular": periventricular, "head": head,
            "origin_mm": origin, "extent_mm": extent}


def _nilearn_data_folder() -> Path:
    """nilearn's packaged data folder (holds the MNI152 2009a template and GM/WM maps).

    Found without importing ``nilearn.datasets``, which would pull in scikit-learn and
    pandas (~2 s per worker process).
    """
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise UserError("the demo cohort needs nilearn's MNI152 template: pip install nilearn")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
