"""Atomic file writes: a reader (another process, a page) never sees a half-written file.

Every writer goes through a temp file in the destination's own folder (same file system, so
``os.replace`` is atomic), flushed and fsynced before the rename; on any failure the temp
file is removed and the previous file stays as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "write_json_atomic", "read_json"]


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp"):
    """Yield a temp path beside ``path``; on a clean exit it replaces ``path`` atomically.

    Use it for writers that want a file name (``model.save(tmp)``, ``np.save``).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # some writers replace the file: sync what is there
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (numpy values and paths allowed).

    >>> import tempfile, pathlib
    >>> p = write_json_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"x": 1})
    >>> read_json(p)
    {'x': 1}
    """
    return write_text_atomic(path, json.dumps(data, indent=1, default=_json_default))


def read_json(path: str | Path, default=None):
    """The JSON in ``path``, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
