"""Fault drills: a process killed with SIGKILL in the middle of writing what a user made.

Each drill starts a real child process, lets it reach the middle of a write (it signals through
a file, then blocks), kills it with ``kill -9`` and checks what a restarted app sees: the
previous state readable, the partial write gone or ignored, the next write working.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import make_tiny_dataset

REPO = Path(__file__).resolve().parents[3]


def _run_until_signal(code: str, signal_file: Path, timeout: float = 120) -> subprocess.Popen:
    """Start ``code`` in a child Python; return once it has written ``signal_file``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not signal_file.exists():
        if child.poll() is not None:
            raise AssertionError(f"child ended early: {child.stdout.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("child never reached the write")
        time.sleep(0.05)
    return child


def _kill9(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_kill_while_a_dataset_is_written(tmp_path):
    from core.data.dataset import list_datasets, load_manifest, load_split_images

    cache = tmp_path / "datasets"
    ready = tmp_path / "writing"
    child = _run_until_signal(f"""
        import time, numpy as np
        from pathlib import Path
        real_save = np.save
        def slow_save(path, array, *a, **k):      # block after the first array is on disk
            real_save(path, array, *a, **k)
            Path({str(ready)!r}).touch()
            time.sleep(600)
        np.save = slow_save
        from helpers import make_tiny_dataset
        make_tiny_dataset(Path({str(cache / 'ds')!r}))
    """, ready)
    _kill9(child)

    leftovers = [p for p in cache.iterdir() if p.name.startswith(".ds.")]
    assert leftovers and not (cache / "ds").exists()  # the partial build is hidden, never half-visible
    assert list_datasets(cache) == []  # a restarted app lists nothing half-written

    path = make_tiny_dataset(cache / "ds")  # the next build works and sweeps the orphan
    assert [p.name for p in cache.iterdir()] == ["ds"]
    assert load_manifest(path)["hash"] and load_split_images(path, "train").shape[0] == 48
    assert [d["path"] for d in list_datasets(cache)] == [str(path)]


def test_a_build_in_progress_elsewhere_is_not_swept(tmp_path):
    """Only orphans are removed: a temp folder whose writer is alive stays."""
    cache = tmp_path / "datasets"
    cache.mkdir()
    alive = cache / f".ds.{os.getpid()}.abc"
    alive.mkdir()
    make_tiny_dataset(cache / "ds")
    assert alive.is_dir()


@pytest.mark.slow
def test_kill_while_a_model_is_saved_keeps_the_previous_model(tmp_path, trained_vae):
    """``kill -9`` in the middle of ``model.save``: the run's previous model.keras still loads."""
    import shutil

    from core.training import checkpoints

    run = tmp_path / "run"
    shutil.copytree(trained_vae, run)
    before = (run / checkpoints.MODEL).read_bytes()
    ready = tmp_path / "saving"
    child = _run_until_signal(f"""
        import time, zipfile
        from pathlib import Path
        real_write = zipfile.ZipFile.writestr
        def slow_writestr(self, *a, **k):          # block once the new file has some content
            real_write(self, *a, **k)
            Path({str(ready)!r}).touch()
            time.sleep(600)
        zipfile.ZipFile.writestr = slow_writestr
        from core.training import checkpoints
        model = checkpoints.load_run_model({str(run)!r})
        checkpoints.save_model_atomic(model, Path({str(run)!r}) / checkpoints.MODEL)
    """, ready)
    _kill9(child)
    assert (run / checkpoints.MODEL).read_bytes() == before
    model = checkpoints.load_run_model(run)  # still loads, with safe_mode
    images = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    assert model.reconstruct(images).shape == (2, 32, 32, 1)


def test_disk_full_while_saving_keeps_the_previous_model(tmp_path, trained_vae, monkeypatch):
    """A save that fails half-way (ENOSPC) says so clearly and leaves the old model intact."""
    import errno
    import shutil
    import zipfile

    from core.errors import UserError
    from core.training import checkpoints

    run = tmp_path / "run"
    shutil.copytree(trained_vae, run)
    before = (run / checkpoints.MODEL).read_bytes()
    model = checkpoints.load_run_model(run)
    real_write = zipfile.ZipFile.writestr

    def full_disk(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full_disk)
    with pytest.raises(UserError, match="No space left on device.*previous model is kept"):
        checkpoints.save_model_atomic(model, run / checkpoints.MODEL)
    monkeypatch.undo()
    assert (run / checkpoints.MODEL).read_bytes() == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no temp left behind
    checkpoints.load_run_model(run)
