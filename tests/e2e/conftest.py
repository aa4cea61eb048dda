"""End-to-end harness: the real app (`streamlit run app.py`) driven by Debian's Chromium.

The server gets its own cache and runs folders; the demo cohort is built into that cache
before the server starts, so tests see the app as a user does after its first start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("streamlit did not become healthy in time")


@pytest.fixture(scope="session")
def app_env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "LATENTBRAIN_CACHE": str(base / "cache"), "LATENTBRAIN_RUNS": str(base / "runs"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LATENTBRAIN_DATA", None)
    subprocess.run([sys.executable, "-m", "core", "demo"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return env


@contextlib.contextmanager
def serve(app_dir: Path, env: dict, *extra_args: str, log: Path | None = None):
    """Run ``streamlit run app.py`` in ``app_dir`` on a free port; yield its URL, stop it after.

    ``log``: a file for the server's stdout and stderr (tracebacks go there, not to the browser).
    """
    port = _free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", *extra_args],
        cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        if log:
            out.close()


@pytest.fixture(scope="session")
def app_url(app_env):
    with serve(REPO, app_env) as url:
        yield url


@pytest.fixture
def fresh_app(tmp_path):
    """(url, app folder) of a new server on a copy of the app that reruns when a file is saved.

    A new process: its first script run is the one the test makes.  A copy: the test may edit
    its files to make the server's file watcher fire.  Its data source (LATENTBRAIN_DATA) is a
    folder of two tiny synthetic volumes, so no demo cohort has to be built first.
    """
    from helpers import smooth_head, write_nifti

    data = tmp_path / "data"
    data.mkdir()
    for n in (1, 2):
        write_nifti(data / f"IXI90{n}-Guys-000{n}-T1.nii.gz", smooth_head(seed=n))
    env = {**os.environ, "LATENTBRAIN_CACHE": str(tmp_path / "cache"),
           "LATENTBRAIN_RUNS": str(tmp_path / "runs"), "LATENTBRAIN_DATA": str(data),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    app_dir = tmp_path / "app"
    ignore = shutil.ignore_patterns("__pycache__")
    app_dir.mkdir()
    shutil.copy2(REPO / "app.py", app_dir / "app.py")
    for folder in ("core", "ui", "pages", ".streamlit"):
        shutil.copytree(REPO / folder, app_dir / folder, ignore=ignore)
    with serve(app_dir, env, "--server.runOnSave", "true") as url:
        yield url, app_dir


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def bad_folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    corrupt = base / "corrupt"
    corrupt.mkdir()
    (corrupt / "IXI001-Guys-0001-T1.nii.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")
    empty = base / "empty"
    empty.mkdir()
    yield corrupt, empty
    shutil.rmtree(base, ignore_errors=True)
