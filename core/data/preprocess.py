"""Optional preprocessing of a T1 head before slicing: skull strip, N4, MNI registration, crop.

One function a step, each taking and returning a :class:`core.data.volumes.Volume` (RAS+
canonical, float32) and the brain mask (``(X, Y, Z)`` bool, same grid)::

    skull_strip(volume)                 -> (brain-only volume, mask)      deepbet (CPU)
    n4_correct(volume, mask)            -> bias-corrected volume          SimpleITK N4
    register_to_mni(volume, mask, mm)   -> (volume, mask) on the MNI152 grid (rigid)
    crop_to_brain(volume, mask, axis)   -> (volume, mask) cropped in-plane to the brain

:func:`preprocess_volume` runs the chosen steps in this order, caching every step's output
per volume under ``<cache>/preprocessed/<key>/`` (key: the volume's identity plus the
parameters of that step and of all steps before it), so adding a step reuses the earlier ones.
A step that fails (empty mask, a mask that fills the field, a registration that did not
converge) raises :class:`PreprocessError` naming the volume and the step; the dataset
builder skips that volume and builds the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from core import settings
from core.data.slices import AXES
from core.errors import UserError

__all__ = [
    "STEPS", "STEP_LABELS", "PreprocessSpec", "PreprocessError", "PreprocessResult",
    "skull_strip", "n4_correct", "register_to_mni", "crop_to_brain", "head_mask",
    "mni_template", "preprocess_volume", "preprocessed_dir", "BRAIN_LITRES",
]

#: The steps, in the order they always run.
STEPS = ("skullstrip", "n4", "register", "crop")
STEP_LABELS = {
    "skullstrip": "Skull strip (deepbet)",
    "n4": "N4 bias-field correction",
    "register": "Rigid alignment to MNI152",
    "crop": "Crop to the brain",
}
#: Brain-mask volumes (litres) accepted as a brain; outside, skull stripping failed.
BRAIN_LITRES = (0.6, 2.6)
#: A registration whose brain mask overlaps the template's less than this (Dice) failed.
MIN_REGISTRATION_DICE = 0.75
#: Bump when a step's output changes for the same parameters, so old caches are not reused.
PREPROCESS_VERSION = 1


class PreprocessError(UserError):
    """A preprocessing step failed on one volume; the message names the volume and the step."""


@dataclass(frozen=True)
class PreprocessSpec:
    """Which preprocessing steps to run and their parameters (stored in the dataset manifest).

    Attributes
    ----------
    steps : subset of :data:`STEPS`, kept in :data:`STEPS` order.
    register_mm : voxel size (mm) of the MNI152 grid volumes are aligned onto.
    crop_margin_mm : margin kept around the brain's bounding box by ``crop``.
    n4_shrink_mm : N4 runs on the volume shrunk to about this voxel size (seconds, not minutes).
    """

    steps: tuple = ()
    register_mm: float = 1.0
    crop_margin_mm: float = 4.0
    n4_shrink_mm: float = 6.0

    def __post_init__(self):
        steps = tuple(str(s).strip().lower() for s in self.steps if str(s).strip())
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise UserError(f"unknown preprocessing step {unknown[0]!r}; choose from {', '.join(STEPS)}")
        object.__setattr__(self, "steps", tuple(s for s in STEPS if s in steps))
        if not 0.5 <= float(self.register_mm) <= 4.0:
            raise UserError(f"register grid must be 0.5-4 mm, got {self.register_mm}")
        if not 0 <= float(self.crop_margin_mm) <= 50:
            raise UserError(f"crop margin must be 0-50 mm, got {self.crop_margin_mm}")

    def __bool__(self) -> bool:
        return bool(self.steps)

    @classmethod
    def parse(cls, text: str | None) -> "PreprocessSpec":
        """From the CLI form ``"skullstrip,n4,register[=MM],crop"`` ("" or "none": no step).

        >>> PreprocessSpec.parse("n4,skullstrip,register=2").to_dict()["steps"]
        ['skullstrip', 'n4', 'register']
        """
        steps, options = [], {}
        for part in (text or "").split(","):
            part = part.strip().lower()
            if not part or part == "none":
                continue
            name, _, value = part.partition("=")
            if value:
                if name != "register":
                    raise UserError(f"only register takes a value (register=MM), got {part!r}")
                try:
                    options["register_mm"] = float(value.removesuffix("mm"))
                except ValueError:
                    raise UserError(f"register=MM needs a number of mm, got {part!r}") from None
            steps.append(name)
        return cls(tuple(steps), **options)

    def to_dict(self) -> dict:
        """What enters the manifest's ``spec`` (and so the dataset hash): only used parameters."""
        out: dict = {"steps": list(self.steps)}
        if "n4" in self.steps:
            out["n4_shrink_mm"] = float(self.n4_shrink_mm)
        if "register" in self.steps:
            out["register_mm"] = float(self.register_mm)
        if "crop" in self.steps:
            out["crop_margin_mm"] = float(self.crop_margin_mm)
        if self.steps:
            out["version"] = PREPROCESS_VERSION
        return out

    @classmethod
    def from_dict(cls, values: dict | None) -> "PreprocessSpec":
        values = dict(values or {})
        known = {k: values[k] for k in ("register_mm", "crop_margin_mm", "n4_shrink_mm") if k in values}
        return cls(tuple(values.get("steps", ())), **known)


@dataclass
class PreprocessResult:
    """A preprocessed volume, its brain mask, and what each step did.

    Attributes
    ----------
    volume : the volume after the last step (RAS+, float32).
    mask : (X, Y, Z) bool brain mask on ``volume``'s grid (the head mask when not skull stripped).
    stages : ``[(step, volume, mask)]`` after each step, raw first as ``("raw", ...)``; kept only
        when asked (``keep_stages=True``), for before/after views.
    seconds : per step, the time it took (when read from the cache: when it was computed).
    cached : per step, whether it was read from the cache.
    """

    volume: object
    mask: np.ndarray
    stages: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    cached: dict = field(default_factory=dict)


# --- Masks --------------------------------------------------------------------------------------

def head_mask(volume) -> np.ndarray:
    """Foreground (head) mask of a raw volume: Otsu threshold, largest component, holes filled.

    Returns an (X, Y, Z) bool array; used for N4 and crop when the skull is not stripped.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    data = np.asarray(volume.data, dtype=np.float32)
    _check_not_constant(volume, "head mask")
    mask = data > threshold_otsu(data[::2, ::2, ::2])
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def _check_not_constant(volume, step: str) -> None:
    data = np.asarray(volume.data)
    if data.size == 0 or float(data.max()) == float(data.min()):
        raise PreprocessError(f"{_name(volume)}: {step}: the volume has constant intensity, there is no "
                              "head to process")


def _name(volume) -> str:
    """The volume's file name (as the dataset's skipped list names it), else its subject id."""
    source = Path(str(getattr(volume, "source", "") or ""))
    return source.name if source.name.lower().endswith((".nii", ".nii.gz")) else volume.subject_id


def check_brain_mask(volume, mask: np.ndarray, step: str = "skull strip") -> float:
    """Raise :class:`PreprocessError` unless ``mask`` is a plausible brain; return its litres.

    Refused: an empty mask, one covering (nearly) the whole field of view, and one whose
    volume is outside :data:`BRAIN_LITRES`.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != volume.data.shape:
        raise PreprocessError(f"{_name(volume)}: {step}: mask shape {mask.shape} != volume {volume.data.shape}")
    n = int(mask.sum())
    if n == 0:
        raise PreprocessError(f"{_name(volume)}: {step}: the brain mask is empty (no brain found)")
    fraction = n / mask.size
    if fraction > 0.9:
        raise PreprocessError(f"{_name(volume)}: {step}: the brain mask covers {fraction:.0%} of the field "
                              "of view (no background left: not a head, or already cropped to the brain)")
    litres = n * float(np.prod(volume.zooms)) / 1e6
    low, high = BRAIN_LITRES
    if not low <= litres <= high:
        raise PreprocessError(f"{_name(volume)}: {step}: the brain mask holds {litres:.2f} L, not a "
                              f"plausible brain ({low}-{high} L)")
    return litres


# --- Step 1: skull stripping ---------------------------------------------------------------------

_BET_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _deepbet_model():
    """deepbet's two TorchScript networks (17 MB, inside its wheel: nothing is downloaded), on the CPU."""
    try:
        from deepbet import BrainExtraction
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("skull stripping needs the deepbet package (pip install deepbet)") from exc
    return BrainExtraction(no_gpu=True)


def skull_strip(volume, threshold: float = 0.5) -> tuple:
    """Remove skull, scalp, eyes and neck with deepbet (a 3-D U-Net whose weights ship in its
    wheel; runs on the CPU, nothing downloaded).

    Parameters
    ----------
    volume : Volume, (X, Y, Z) RAS+ float32 (any voxel size: deepbet resamples internally).
    threshold : probability above which a voxel is brain.

    Returns
    -------
    (Volume, mask) : the volume with everything outside the brain set to 0, and the (X, Y, Z)
    bool brain mask (largest component, holes filled).  Raises :class:`PreprocessError` when the
    mask is empty, fills the field or has an implausible volume (:func:`check_brain_mask`).
    """
    _check_not_constant(volume, "skull strip")
    try:
        model = _deepbet_model()
    except UserError as exc:
        raise PreprocessError(f"{_name(volume)}: {exc}") from exc
    data = np.nan_to_num(np.asarray(volume.data, dtype=np.float32))
    with _BET_LOCK:  # the model keeps per-call state (its bounding box); one volume at a time
        try:
            probability = model.run_model(data.copy())
            mask = model.postprocess(probability > float(threshold)) > 0
        except Exception as exc:  # noqa: BLE001 - torch, cc3d and asserts fail in their own ways
            raise PreprocessError(f"{_name(volume)}: skull strip: deepbet failed ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from exc
    check_brain_mask(volume, mask, "skull strip")
    return dataclasses.replace(volume, data=np.where(mask, data, 0).astype(np.float32)), mask


# --- Step 2: N4 bias-field correction --------------------------------------------------------------

def _to_sitk(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image (LPS physical space) of a canonical (X, Y, Z) array with a RAS affine."""
    import SimpleITK as sitk

    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0)))
    flip = np.diag([-1.0, -1.0, 1.0])
    image.SetSpacing([float(z) for z in zooms])
    image.SetOrigin([float(v) for v in flip @ affine[:3, 3]])
    image.SetDirection([float(v) for v in (flip @ (affine[:3, :3] / zooms)).ravel()])
    return image


def _from_sitk(image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def n4_correct(volume, mask: np.ndarray | None = None, shrink_mm: float = 6.0, iterations=(50, 40, 30)):
    """N4 bias-field correction (SimpleITK), fitted inside ``mask`` on a shrunk copy.

    Parameters
    ----------
    volume : Volume (X, Y, Z) float32.
    mask : (X, Y, Z) bool region the bias field is fitted on (the brain, or the head mask
        from :func:`head_mask` when None).
    shrink_mm : the fit runs on the volume shrunk to about this voxel size (factor
        ``round(shrink_mm / smallest voxel)``): ~1-3 s on a 2 mm head instead of minutes.

    Returns
    -------
    Volume whose intensities are divided by the fitted smooth field (same grid, float32).
    """
    import SimpleITK as sitk

    _check_not_constant(volume, "N4")
    data = np.asarray(volume.data, dtype=np.float32)
    mask = head_mask(volume) if mask is None else np.asarray(mask, dtype=bool)
    if not mask.any():
        raise PreprocessError(f"{_name(volume)}: N4: the mask is empty")
    offset = float(min(0.0, data.min()))
    image = _to_sitk(data - offset + 1.0, volume.affine)  # N4 works on log intensities: keep them > 0
    mask_image = _to_sitk(mask.astype(np.uint8), volume.affine)
    factor = max(1, int(round(shrink_mm / float(np.min(volume.zooms)))))
    small = sitk.Shrink(image, [factor] * 3)
    small_mask = sitk.Shrink(mask_image, [factor] * 3)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    try:
        corrector.Execute(small, small_mask)
        log_field = corrector.GetLogBiasFieldAsImage(image)
    except RuntimeError as exc:
        raise PreprocessError(f"{_name(volume)}: N4: {str(exc).strip().splitlines()[-1][:200]}") from exc
    field_ = np.exp(_from_sitk(log_field)).astype(np.float32)
    corrected = (data - offset + 1.0) / field_ + offset - 1.0
    corrected = np.where(mask | (data != 0), corrected, data).astype(np.float32)
    return dataclasses.replace(volume, data=corrected)


# --- Step 3: registration to MNI152 ----------------------------------------------------------------

@lru_cache(maxsize=4)
def mni_template(mm: float = 1.0) -> tuple:
    """nilearn's MNI152 2009 template (shipped in its wheel, no download) on a ``mm`` grid.

    Returns
    -------
    (data, brain_mask, affine) : (X, Y, Z) float32 brain-only template, (X, Y, Z) bool brain
    mask and the RAS+ (4, 4) affine of the grid (origin of nilearn's 1 mm grid, ``mm`` voxels).
    """
    import SimpleITK as sitk
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    data = np.asarray(template.get_fdata(), dtype=np.float32)
    brain = np.asarray(mask.get_fdata()) > 0.5
    if float(mm) == 1.0 and np.allclose(np.abs(np.diag(template.affine)[:3]), 1.0):
        return data, brain, template.affine.copy()
    shape = [int(np.ceil(n / float(mm))) for n in data.shape]
    affine = template.affine.copy()
    affine[:3, :3] = np.diag([float(mm)] * 3)
    grid = _to_sitk(np.zeros(shape, np.float32), affine)
    smooth = sitk.SmoothingRecursiveGaussian(_to_sitk(data, template.affine), float(mm) / 2.0)
    resampled = _from_sitk(sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0))
    resampled_mask = _from_sitk(sitk.Resample(_to_sitk(brain.astype(np.float32), template.affine), grid,
                                              sitk.Transform(), sitk.sitkLinear, 0.0)) > 0.5
    return resampled.astype(np.float32), resampled_mask, affine


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.logical_and(a, b).sum()) / max(1.0, float(a.sum() + b.sum()))


def _rigid_method(interpolator, iterations: int, shrink, sigmas):
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=0)
    method.SetInterpolator(interpolator)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3,
                                                    numberOfIterations=int(iterations),
                                                    gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel(list(sigmas))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register_to_mni(volume, mask: np.ndarray, mm: float = 1.0, iterations: int = 100):
    """Rigidly align a head onto the MNI152 template grid (SimpleITK, Mattes mutual information).

    The brain (``mask``, e.g. from :func:`skull_strip`) is matched to the template's brain:
    centres of mass first, then a rigid (6-parameter) fit of the brain outlines (smoothed
    masks, three resolutions), refined on the intensities inside the brain (normalised
    correlation, two resolutions); then the volume
    and its mask are resampled onto the template's ``mm`` grid, so an index means the same
    position in MNI space for every head (head size is kept: no scaling).

    Returns
    -------
    (Volume, mask) on the template grid (``mni_template(mm)``'s shape and affine).

    Raises :class:`PreprocessError` when the fit fails or does not converge, judged by the
    overlap (Dice) of the moved brain mask with the template's below
    :data:`MIN_REGISTRATION_DICE`.
    """
    import SimpleITK as sitk

    _check_not_constant(volume, "register")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise PreprocessError(f"{_name(volume)}: register: the brain mask is empty")
    template, template_mask, template_affine = mni_template(float(mm))
    fixed = _to_sitk(template, template_affine)
    fixed_mask = _to_sitk(template_mask.astype(np.uint8), template_affine)
    data = np.asarray(volume.data, dtype=np.float32)
    moving = _to_sitk(np.where(mask, data, 0).astype(np.float32), volume.affine)
    moving_mask = _to_sitk(mask.astype(np.uint8), volume.affine)

    # Centre of mass of the two brain masks: a start close enough for any head position.
    initial = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed_mask, sitk.sitkFloat32), sitk.Cast(moving_mask, sitk.sitkFloat32),
        sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
    # 1. Brain outline on brain outline (smoothed masks, mean squares): robust to large tilts
    #    (real heads lie 30-40 degrees pitched against MNI), few iterations.
    outline = _rigid_method(sitk.sitkLinear, iterations, shrink=(4, 2, 1), sigmas=(4.0, 2.0, 1.0))
    outline.SetMetricAsMeanSquares()
    outline.SetInitialTransform(initial, inPlace=False)
    # 2. Anatomy inside the brain (normalised correlation of intensities), from there.
    inside = _rigid_method(sitk.sitkLinear, iterations, shrink=(2, 1), sigmas=(1.0, 0.0))
    inside.SetMetricAsCorrelation()
    inside.SetMetricFixedMask(fixed_mask)
    method = inside
    try:
        smooth = [sitk.SmoothingRecursiveGaussian(sitk.Cast(m, sitk.sitkFloat32), 2.0)
                  for m in (fixed_mask, moving_mask)]
        first = outline.Execute(*smooth)
        inside.SetInitialTransform(sitk.Euler3DTransform(first.GetNthTransform(0))
                                   if hasattr(first, "GetNthTransform") else first, inPlace=False)
        transform = inside.Execute(fixed, moving)
    except RuntimeError as exc:
        raise PreprocessError(f"{_name(volume)}: register: the fit failed "
                              f"({str(exc).strip().splitlines()[-1][:200]})") from exc
    image = _to_sitk(data, volume.affine)
    moved = _from_sitk(sitk.Resample(image, fixed, transform, sitk.sitkLinear, 0.0)).astype(np.float32)
    moved_mask = _from_sitk(sitk.Resample(sitk.Cast(moving_mask, sitk.sitkFloat32), fixed, transform,
                                          sitk.sitkLinear, 0.0)) > 0.5
    dice = _dice(moved_mask, template_mask)
    if dice < MIN_REGISTRATION_DICE:
        raise PreprocessError(
            f"{_name(volume)}: register: did not converge to MNI152 (brain overlap with the template "
            f"{dice:.2f} < {MIN_REGISTRATION_DICE} after {method.GetOptimizerIteration()} iterations; "
            f"{method.GetOptimizerStopConditionDescription()[:120]})")
    zooms = np.full(3, float(mm))
    registered = dataclasses.replace(volume, data=moved, zooms=zooms, affine=template_affine.copy())
    return registered, moved_mask


# --- Step 4: crop ---------------------------------------------------------------------------------

def crop_to_brain(volume, mask: np.ndarray, axis: str, margin_mm: float = 4.0):
    """Crop the two in-plane axes of ``axis`` to the brain's bounding box plus ``margin_mm``.

    The slice axis is left whole, so slice indices keep their meaning; each slice then shows
    the brain filling the image once it is padded to a square and resized.

    Parameters
    ----------
    volume : Volume (X, Y, Z); mask : (X, Y, Z) bool; axis : 'axial', 'coronal' or 'sagittal'.

    Returns
    -------
    (Volume, mask) : cropped views' copies; the affine is moved so world positions stay right.
    """
    mask = np.asarray(mask, dtype=bool)
    if axis not in AXES:
        raise UserError(f"axis must be one of {sorted(AXES)}, got {axis!r}")
    if not mask.any():
        raise PreprocessError(f"{_name(volume)}: crop: the brain mask is empty")
    keep_axis = AXES[axis]
    box = []
    for a in range(3):
        if a == keep_axis:
            box.append((0, mask.shape[a]))
            continue
        other = tuple(i for i in range(3) if i != a)
        present = np.flatnonzero(mask.any(axis=other))
        margin = int(np.ceil(float(margin_mm) / float(volume.zooms[a])))
        box.append((max(0, int(present[0]) - margin), min(mask.shape[a], int(present[-1]) + 1 + margin)))
    index = tuple(slice(lo, hi) for lo, hi in box)
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ np.array([lo for lo, _ in box], float) + volume.affine[:3, 3]
    data = np.ascontiguousarray(volume.data[index], dtype=np.float32)
    return dataclasses.replace(volume, data=data, affine=affine), np.ascontiguousarray(mask[index])


# --- All steps, cached --------------------------------------------------------------------------

def preprocessed_dir() -> Path:
    """Cache folder of preprocessed volumes (one sub-folder per volume and step chain)."""
    return settings.cache_dir() / "preprocessed"


def _step_key(identity: str, spec: PreprocessSpec, upto: int, axis: str | None) -> str:
    chain = []
    for step in spec.steps[: upto + 1]:
        params = {"n4": {"shrink_mm": float(spec.n4_shrink_mm)},
                  "register": {"mm": float(spec.register_mm)},
                  "crop": {"margin_mm": float(spec.crop_margin_mm), "axis": axis}}.get(step, {})
        chain.append([step, params])
    payload = json.dumps({"version": PREPROCESS_VERSION, "volume": identity, "chain": chain}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _save_stage(folder: Path, volume, mask: np.ndarray, seconds: float) -> None:
    import os
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.save(tmp / "data.npy", np.asarray(volume.data, dtype=np.float32))
        np.save(tmp / "mask.npy", np.packbits(np.asarray(mask, dtype=bool)))
        (tmp / "meta.json").write_text(json.dumps({
            "shape": list(volume.data.shape), "zooms": [float(z) for z in volume.zooms],
            "affine": np.asarray(volume.affine, float).tolist(), "seconds": float(seconds)}))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_stage(folder: Path, volume):
    try:
        meta = json.loads((folder / "meta.json").read_text())
        data = np.load(folder / "data.npy")
        shape = tuple(meta["shape"])
        mask = np.unpackbits(np.load(folder / "mask.npy"))[: int(np.prod(shape))].reshape(shape).astype(bool)
    except (OSError, ValueError, KeyError):
        return None
    if data.shape != shape:
        return None
    stage = dataclasses.replace(volume, data=data, zooms=np.asarray(meta["zooms"], float),
                                affine=np.asarray(meta["affine"], float))
    return stage, mask, float(meta.get("seconds", 0.0))


def preprocess_volume(
    volume,
    spec: PreprocessSpec,
    identity: str,
    axis: str | None = None,
    cache_dir: str | Path | None = None,
    keep_stages: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PreprocessResult:
    """Run ``spec``'s steps on one volume, each read from / written to the per-volume cache.

    Parameters
    ----------
    volume : Volume (X, Y, Z) RAS+ (any dtype; steps work in float32).
    spec : the steps and their parameters.
    identity : what identifies the volume's content (``VolumeEntry.identity()``): the cache key.
    axis : slice axis; needed by ``crop`` (it crops the two in-plane axes).
    cache_dir : root of the cache (default :func:`preprocessed_dir`).
    keep_stages : keep each step's output in ``stages`` (for before/after views).
    progress : called with each step's name before it runs.

    Raises :class:`PreprocessError` naming the volume and the failing step.
    """
    if "crop" in spec.steps and axis is None:
        raise UserError("the crop step needs the slice axis")
    root = Path(cache_dir) if cache_dir else preprocessed_dir()
    current = dataclasses.replace(volume, data=np.asarray(volume.data, dtype=np.float32))
    mask = None
    result = PreprocessResult(current, None)
    if keep_stages:
        result.stages.append(("raw", current, None))
    for n, step in enumerate(spec.steps):
        if progress:
            progress(step)
        folder = root / _step_key(identity, spec, n, axis)
        loaded = _load_stage(folder, current) if (folder / "meta.json").is_file() else None
        if loaded is not None:
            current, mask, seconds = loaded
            result.seconds[step], result.cached[step] = seconds, True
        else:
            started = time.perf_counter()
            current, mask = _run_step(step, current, mask, spec, axis)
            seconds = time.perf_counter() - started
            _save_stage(folder, current, mask, seconds)
            result.seconds[step], result.cached[step] = seconds, False
        if keep_stages:
            result.stages.append((step, current, mask))
    result.volume = current
    result.mask = head_mask(current) if mask is None else mask
    return result


def _run_step(step: str, volume, mask, spec: PreprocessSpec, axis: str | None):
    if step == "skullstrip":
        return skull_strip(volume)
    if step == "register" and "skullstrip" not in spec.steps:
        # The fit matches brains: find this head's brain without removing the skull from the image.
        _, mask = skull_strip(volume)
    if mask is None:
        mask = head_mask(volume)
    if step == "n4":
        return n4_correct(volume, mask, shrink_mm=spec.n4_shrink_mm), mask
    if step == "register":
        return register_to_mni(volume, mask, mm=spec.register_mm)
    if step == "crop":
        return crop_to_brain(volume, mask, axis, margin_mm=spec.crop_margin_mm)
    raise UserError(f"unknown preprocessing step {step!r}")
