"""Is a process still alive? Used to tell a crashed writer's leftovers from work in progress."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pid_alive"]


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    >>> pid_alive(os.getpid())
    True
    >>> pid_alive(None), pid_alive(-1)
    (False, False)
    """
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
