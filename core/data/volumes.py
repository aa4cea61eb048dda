"""Find, load and validate T1 volumes; every volume comes out RAS+ canonical, float32.

Sources are a folder of NIfTI files (searched recursively), the IXI ``IXI-T1.tar``
read in place without extracting it, or a single uploaded file.  A user-caused
problem (corrupt gzip, not NIfTI, 2-D, 4-D, constant, ...) raises
:class:`core.errors.UserError` naming the file, so one bad file never stops a cohort.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from core.errors import UserError

try:  # ISA-L decompresses gzip about twice as fast as zlib; optional.
    from isal.igzip import decompress as _gunzip
except ImportError:  # pragma: no cover - depends on the environment
    from gzip import decompress as _gunzip

__all__ = [
    "Volume",
    "VolumeEntry",
    "parse_subject_name",
    "is_nifti_name",
    "scan_source",
    "load_volume",
    "volume_from_bytes",
    "canonical_shape",
]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
# IXI names look like IXI002-Guys-0828-T1.nii.gz; the demo cohort uses DEMO001-HH-0001-T1.
_IXI_NAME = re.compile(r"^(?P<id>(?:IXI|DEMO)\d{3})-(?P<site>Guys|HH|IOP)-\d{4}(?:[-_]T1)?$", re.I)
_SITE_NAMES = {"guys": "Guys", "hh": "HH", "iop": "IOP"}


@dataclass(frozen=True)
class VolumeEntry:
    """Where one volume lives: a file, or a member of a tar archive."""

    subject_id: str
    site: str | None
    path: str  # file path, or the tar archive path for tar members
    member: str | None = None  # member name inside the tar, if any
    nbytes: int = 0
    mtime_ns: int = 0
    #: The real file when a link in the data folder leads elsewhere (shown in the cohort table).
    link_target: str | None = None
    #: BIDS session label (``ses-YY`` without ``ses-``), or None.
    session: str | None = None

    @property
    def name(self) -> str:
        return Path(self.member or self.path).name

    @property
    def subject_group(self) -> str:
        """The subject this volume belongs to: its id without the session (volumes of one
        subject always land in the same split).

        >>> VolumeEntry("sub-01_ses-2", None, "x", session="2").subject_group
        'sub-01'
        """
        if self.session and self.subject_id.endswith(f"_ses-{self.session}"):
            return self.subject_id[: -len(f"_ses-{self.session}")]
        return self.subject_id

    def identity(self) -> str:
        """A string that changes when the file's content may have changed (for cache keys).

        It holds the real path (links and ``..`` resolved), so the same file named relative,
        absolute or through a link has one identity, and the subject id, so a link that gives
        the file another name (another subject id in a dataset's manifest) has another.
        """
        real = os.path.realpath(self.path)
        return f"{self.subject_id}::{real}::{self.member or ''}::{self.nbytes}::{self.mtime_ns}"


@dataclass
class Volume:
    """A T1 volume in RAS+ canonical orientation.

    Attributes
    ----------
    data : (X, Y, Z) float32 ndarray; axis 0 runs to the subject's Right, axis 1 to
        Anterior, axis 2 to Superior (``nibabel.as_closest_canonical``).  Finite.
    zooms : (3,) float ndarray, voxel sizes in mm along the canonical axes.
    affine : (4, 4) canonical voxel-to-world (mm) affine.
    raw_shape, raw_axcodes : shape and axis codes as stored on disk (IXI: 'P', 'S', 'R').
    raw_to_canonical : (3, 2) nibabel orientation array mapping stored axes to canonical ones.
    """

    data: np.ndarray
    zooms: np.ndarray
    affine: np.ndarray
    subject_id: str
    site: str | None
    source: str
    raw_shape: tuple
    raw_axcodes: tuple
    raw_to_canonical: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    def voxel_to_mm(self, ijk) -> np.ndarray:
        """World position (mm, RAS) of a canonical voxel index."""
        return nib.affines.apply_affine(self.affine, np.asarray(ijk, dtype=float))

    def raw_index_to_canonical(self, raw_axis: int, raw_index: int) -> tuple[int, int]:
        """Map an index along a stored (on-disk) axis to (canonical axis, canonical index)."""
        canon_axis, direction = self.raw_to_canonical[raw_axis]
        canon_axis = int(canon_axis)
        n = self.data.shape[canon_axis]
        return canon_axis, (raw_index if direction > 0 else n - 1 - raw_index)


def parse_subject_name(file_name: str) -> tuple[str, str | None]:
    """Subject id and site from a file name.

    >>> parse_subject_name("IXI002-Guys-0828-T1.nii.gz")
    ('IXI002-Guys-0828-T1', 'Guys')
    >>> parse_subject_name("patient 7.nii")
    ('patient 7', None)
    """
    stem = _strip_suffix(Path(file_name).name)
    match = _IXI_NAME.match(stem)
    if match:
        site = _SITE_NAMES[match.group("site").lower()]
        # IXI's demographics call subjects IXI002-Guys-0828-T1; the sample files use "_T1".
        canonical = re.sub(r"[-_]T1$", "", stem, flags=re.I) + "-T1"
        return canonical, site
    return stem, None


def _strip_suffix(name: str) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_nifti_name(name: str) -> bool:
    """Whether a file name is a NIfTI volume's (``.nii`` / ``.nii.gz``, not hidden).

    >>> is_nifti_name("a.NII.GZ"), is_nifti_name(".a.nii"), is_nifti_name("a.txt")
    (True, False, False)
    """
    return name.lower().endswith(_NIFTI_SUFFIXES) and not Path(name).name.startswith(".")


def scan_source(source: str | Path) -> list[VolumeEntry]:
    """List the volumes of a folder (IXI, BIDS or any), an IXI tar archive, or a single file.

    Entries are sorted by subject id; nothing is decompressed here.  See
    :func:`core.data.layouts.open_layout` for the layout found and the files not used.
    """
    from core.data.layouts import open_layout

    return list(open_layout(source).entries)


def _read_bytes(entry: VolumeEntry) -> bytes:
    try:
        if entry.member is None:
            return Path(entry.path).read_bytes()
        with tarfile.open(entry.path) as archive:
            handle = archive.extractfile(entry.member)
            if handle is None:
                raise UserError(f"{entry.member} in {entry.path} is not a regular file")
            return handle.read()
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise UserError(f"cannot read {entry.name}: {exc}") from exc


def load_volume(entry: VolumeEntry | str | Path, float32: bool = True) -> Volume:
    """Load, validate and reorient one volume to RAS+ canonical float32.

    ``float32=False`` keeps integer voxels in their stored type (a reoriented view, no
    copy): bulk slice extraction converts just the slices it needs, which saves a
    full-volume conversion per file.  Scaled or float data are float32 either way.

    Raises
    ------
    UserError
        Corrupt or truncated gzip, not a NIfTI file, not 3-D (a singleton 4th
        dimension is squeezed), constant intensity, or no finite voxels.
    """
    if not isinstance(entry, VolumeEntry):
        path = Path(entry)
        subject_id, site = parse_subject_name(path.name)
        entry = VolumeEntry(subject_id, site, str(path))
    return volume_from_bytes(_read_bytes(entry), entry.name, entry.subject_id, entry.site, entry.path,
                             float32=float32)


def volume_from_bytes(
    raw: bytes, name: str, subject_id: str | None = None, site: str | None = None, source: str = "",
    float32: bool = True,
) -> Volume:
    """Build a :class:`Volume` from the bytes of a .nii or .nii.gz file (e.g. an upload)."""
    if subject_id is None:
        subject_id, site = parse_subject_name(name)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = _gunzip(raw)
        except Exception as exc:  # zlib.error, EOFError, OSError, isal's IsalError...
            raise UserError(f"{name} is a corrupt or truncated gzip file: {exc}") from exc
    elif name.lower().endswith(".gz"):
        raise UserError(f"{name} is named .gz but is not gzip-compressed")
    try:
        image = nib.Nifti1Image.from_bytes(raw)
    except Exception as exc:  # nibabel raises several types for foreign bytes
        try:
            image = nib.Nifti2Image.from_bytes(raw)
        except Exception:
            raise UserError(f"{name} is not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    try:
        return _validated_volume(image, name, subject_id, site, source or name, float32)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        # A header that parses but lies (dims past the data, odd datatype or scaling) makes
        # nibabel/numpy fail in many ways while reading voxels; all mean "this file is bad".
        # Found by fuzzing (tests/unit/data/test_fuzz.py).
        raise UserError(f"{name} is damaged or not a usable NIfTI volume ({type(exc).__name__}: "
                        f"{str(exc)[:160]})") from exc


def _validated_volume(image, name, subject_id, site, source, float32: bool = True) -> Volume:
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        image = image.slicer[..., 0]
    elif len(shape) == 4:
        raise UserError(f"{name} is 4-D {shape} (a time series?); a T1 volume must be 3-D")
    elif len(shape) < 3 or (len(shape) == 3 and min(shape) == 1):
        raise UserError(f"{name} has shape {shape}: a 2-D image, but a 3-D volume is needed")
    elif len(shape) > 4:
        raise UserError(f"{name} has {len(shape)} dimensions {shape}; a T1 volume must be 3-D")
    if min(image.shape) < 4:
        raise UserError(f"{name} has shape {image.shape}: too small to be a brain volume")

    raw_axcodes = nib.aff2axcodes(image.affine)
    raw_to_canonical = nib.orientations.io_orientation(image.affine)
    canonical = nib.as_closest_canonical(image)
    try:
        data = np.asanyarray(canonical.dataobj)
        if float32 or not np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.float32, copy=False)
    except (EOFError, OSError, ValueError) as exc:
        raise UserError(f"{name} is truncated: the voxel data ends early ({exc})") from exc
    warnings: list[str] = []
    finite = np.isfinite(data) if data.dtype.kind == "f" else None
    if finite is not None and not finite.all():
        n_bad = int(data.size - np.count_nonzero(finite))
        if n_bad == data.size:
            raise UserError(f"{name} has no finite voxels (all NaN/Inf)")
        data = np.where(finite, data, 0.0).astype(np.float32)
        warnings.append(f"{n_bad} NaN/Inf voxels were set to 0")
    sample = data[::4, ::4, ::4]
    if float(sample.max()) == float(sample.min()) and float(data.max()) == float(data.min()):
        raise UserError(f"{name} has constant intensity {float(data.flat[0]):g}: nothing to show")
    zooms = np.asarray(canonical.header.get_zooms()[:3], dtype=float)
    if not np.all(zooms > 0):
        raise UserError(f"{name} has invalid voxel sizes {tuple(zooms)} mm")
    return Volume(
        data=data,
        zooms=zooms,
        affine=canonical.affine,
        subject_id=subject_id,
        site=site,
        source=str(source),
        raw_shape=tuple(int(s) for s in image.shape),
        raw_axcodes=tuple(raw_axcodes),
        raw_to_canonical=raw_to_canonical,
        warnings=warnings,
    )


def canonical_shape(entry: VolumeEntry) -> tuple[int, int, int]:
    """Shape of a volume in RAS+ canonical order, from its header only (fast).

    Reads just the first kilobytes (gzip is streamed), so a whole cohort's shapes
    are known without decompressing the voxel data.
    """
    import gzip

    try:
        if entry.member is None:
            handle = open(entry.path, "rb")
        else:
            archive = tarfile.open(entry.path)
            handle = archive.extractfile(entry.member)
        with handle:
            head = handle.read(2)
            handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle) if head == b"\x1f\x8b" else handle
            header_bytes = stream.read(348)
        header = nib.Nifti1Header(binaryblock=header_bytes)
    except Exception as exc:
        raise UserError(f"cannot read the NIfTI header of {entry.name}: {exc}") from exc
    shape = header.get_data_shape()
    if len(shape) < 3:
        raise UserError(f"{entry.name} has shape {shape}: a 3-D volume is needed")
    orientation = nib.orientations.io_orientation(header.get_best_affine())
    canonical = [0, 0, 0]
    for raw_axis, (canon_axis, _) in enumerate(orientation[:3]):
        canonical[int(canon_axis)] = int(shape[raw_axis])
    return tuple(canonical)
