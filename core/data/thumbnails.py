"""Range-preview thumbnails of every slice along an axis, kept on disk (no volume needed twice).

The Browse page previews a slice range on several subjects.  Reading a whole volume for three
thumbnails is the expensive part (~40 MB decompressed and reoriented per subject), so the
first time a subject is previewed along an axis, *every* slice along that axis is turned into
a ``PREVIEW_PX`` thumbnail (scaled like the dataset: :func:`core.data.slices.preview_slices`)
and the stack is saved as one ``uint8`` ``.npy`` file under ``<cache>/thumbnails/``.  Any
later range on that axis reads just the slices it needs from that file (memory-mapped).

A stack's file name is a hash of the volume's identity (path, tar member, size, mtime), the
axis, the display convention and the size: a changed file gets a new stack.  Files are
written atomically (:mod:`core.atomic`) and read with ``allow_pickle=False``; an unreadable
or wrong-shaped file is rebuilt.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core import settings
from core.atomic import atomic_path
from core.data.slices import AXES, PREVIEW_PX, preview_slices
from core.data.volumes import Volume, VolumeEntry, load_volume
from core.errors import UserError

__all__ = ["thumbnail_stack", "thumbnails", "stack_path", "is_cached"]

#: Bump when thumbnails are made differently, so older stacks are not reused.
THUMBNAILS_VERSION = 1


def stack_path(entry: VolumeEntry, axis: str, radiological: bool = True, size: int = PREVIEW_PX,
               cache_dir: str | Path | None = None) -> Path:
    """Where the thumbnail stack of ``entry`` along ``axis`` is (or would be) kept."""
    if axis not in AXES:
        raise UserError(f"axis must be one of {sorted(AXES)}, got {axis!r}")
    key = f"{THUMBNAILS_VERSION}|{entry.identity()}|{axis}|{'rad' if radiological else 'neuro'}|{size}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir is not None else settings.cache_dir()
    return root / "thumbnails" / f"{digest}.npy"


def _read_stack(path: Path, size: int) -> np.ndarray | None:
    """The stack in ``path`` (memory-mapped, read-only), or None when missing or unusable."""
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if stack.dtype != np.uint8 or stack.ndim != 3 or stack.shape[1:] != (size, size) or not stack.shape[0]:
        return None
    return stack


def is_cached(entry: VolumeEntry, axis: str, radiological: bool = True, size: int = PREVIEW_PX,
              cache_dir: str | Path | None = None) -> bool:
    """Whether a usable stack is on disk (so previewing ``entry`` needs no volume read)."""
    return _read_stack(stack_path(entry, axis, radiological, size, cache_dir), size) is not None


def thumbnail_stack(entry: VolumeEntry, axis: str, radiological: bool = True, size: int = PREVIEW_PX,
                    volume: Volume | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """Thumbnails of every slice of ``entry`` along ``axis``.

    Parameters
    ----------
    volume : the loaded volume of ``entry`` when the caller has it; otherwise it is loaded
        (only when no stack is on disk yet).

    Returns
    -------
    (n_slices, size, size) uint8 ndarray, slice ``i`` = canonical index ``i`` along ``axis``,
    oriented like :func:`core.data.slices.plane` and scaled like the dataset (``0..255`` for
    ``[0, 1]``).  Read-only (memory-mapped) when it comes from disk.

    Raises
    ------
    UserError
        The volume cannot be read (see :func:`core.data.volumes.load_volume`).
    """
    path = stack_path(entry, axis, radiological, size, cache_dir)
    stack = _read_stack(path, size)
    if stack is not None:
        return stack
    if volume is None:
        volume = load_volume(entry)
    n = volume.shape[AXES[axis]]
    stack = (preview_slices(volume, axis, range(n), size, radiological) * 255 + 0.5).astype(np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, stack, allow_pickle=False)
    except OSError:
        pass  # a read-only or full cache only costs speed: the thumbnails are still returned
    return stack


def thumbnails(entry: VolumeEntry, axis: str, indices, radiological: bool = True, size: int = PREVIEW_PX,
               volume: Volume | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """``(len(indices), size, size)`` uint8 thumbnails of the given slices (see :func:`thumbnail_stack`).

    Raises
    ------
    UserError
        An index lies outside the volume, or the volume cannot be read.
    """
    stack = thumbnail_stack(entry, axis, radiological, size, volume, cache_dir)
    indices = [int(i) for i in indices]
    for index in indices:
        if not 0 <= index < len(stack):
            raise UserError(f"{axis} slice {index} is outside the volume (0..{len(stack) - 1})")
    return np.array(stack[indices], dtype=np.uint8)
