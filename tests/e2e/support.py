"""Helpers that drive the real app in a browser: start and stop a Streamlit server, wait for
Streamlit, find drawn map points, save screenshots.

One definition for the end-to-end tests and the browser benchmarks (``bench/browser.py`` and
``bench/latent.py`` import this module), so a fix here (a flake, a theme change) reaches both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(script: Path | str, cwd: Path, env: dict, *extra_args: str, log: Path | None = None,
                    watch: bool | None = False, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Run ``streamlit run script`` in ``cwd`` on a free loopback port until it is healthy: (process, URL).

    ``log``: a file for the server's stdout and stderr (tracebacks go there, not to the browser).
    ``watch``: ``True`` turns Streamlit's file watcher on (a test that edits the app's files needs
    it), ``False`` off, ``None`` leaves it to ``.streamlit/config.toml`` (off: what users get; a
    benchmark of the app as users run it).  Off matters here: it watches the app's folder
    recursively, the repository with its ``.venv`` (~7,900 folders), for opens too, so every
    import by any process there overflows its inotify queue and it walks the whole tree again
    (900+ times in one journey, seen in the server log).  The process leads its own session:
    stop it with :func:`stop_streamlit`, which ends its children too.
    """
    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    watcher = [] if watch is None else ["--server.fileWatcherType", "auto" if watch else "none"]
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *watcher, *extra_args],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # the child keeps its own copy of the descriptor
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return process, url
        except OSError:
            pass
        time.sleep(0.1)
    stop_streamlit(process)
    raise RuntimeError(f"streamlit did not become healthy in {timeout_s:.0f} s")


def stop_streamlit(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it has not exited after 15 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def serve(app_dir: Path, env: dict, *extra_args: str, log: Path | None = None, watch: bool | None = False,
          script: str = "app.py"):
    """:func:`start_streamlit` as a context: yield the URL, stop the server after."""
    process, url = start_streamlit(script, app_dir, env, *extra_args, log=log, watch=watch)
    try:
        yield url
    finally:
        stop_streamlit(process)


#: JS ``(k) => [[x, y], ...]``: page positions of up to ``k`` drawn points of the Latent map.  The
#: map is a Vega-Lite chart drawn on a 2-D canvas, whose points have no DOM nodes: scan the canvas
#: pixels for point centres (a pixel and its neighbours 2 px away all unlike the canvas
#: background), inside the plot and left of the colour legend.
POINTS_ON_SCREEN = """(k) => {
  const c = document.querySelector('[data-testid="stVegaLiteChart"] canvas');
  if (!c || !c.width) return [];
  const w = c.width, h = c.height, d = c.getContext('2d').getImageData(0, 0, w, h).data;
  const r = c.getBoundingClientRect(), sx = r.width / w, sy = r.height / h;
  // the canvas may be painted with the theme's background (dark theme): a point differs from it
  const bg = [d[0], d[1], d[2], d[3]];
  const on = j => j >= 0 && j < d.length && d[j + 3] > 200 &&
    (bg[3] < 200 || Math.abs(d[j] - bg[0]) + Math.abs(d[j + 1] - bg[1]) + Math.abs(d[j + 2] - bg[2]) > 60);
  const found = [];
  for (let y = Math.floor(h * 0.1); y < h * 0.9; y += 3) for (let x = Math.floor(w * 0.05); x < w * 0.85; x += 3) {
    const i = (y * w + x) * 4;
    if (on(i) && on(i - 8) && on(i + 8) && on(i - 8 * w) && on(i + 8 * w)) found.push([r.left + x * sx, r.top + y * sy]);
  }
  const out = [];
  for (let n = 0; n < Math.min(k, found.length); n++) out.push(found[Math.floor((n + 0.5) * found.length / Math.min(k, found.length))]);
  return out;
}"""


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit has finished the current run, fragment runs included.

    The app root carries ``data-test-script-state`` (running / rerunRequested / notRunning);
    the status widget's "Running…" text alone misses runs where it shows only its icon and
    the *Stop* button.  Idle must hold over two checks, so a rerun that a click asked for but
    has not started yet is not mistaken for the end of one.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    idle = (
        "() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
        " const state = app && app.getAttribute('data-test-script-state');"
        " const widget = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return state !== 'running' && state !== 'rerunRequested'"
        " && !(widget && widget.innerText.includes('Running')); }"
    )
    for _ in range(2):
        page.wait_for_timeout(300)
        page.wait_for_function(idle, timeout=timeout_ms)
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def choose_radio(page, label: str, option: str) -> None:
    """Click ``option`` of the Streamlit radio group whose label contains ``label``."""
    group = page.locator('[data-testid="stRadio"]').filter(has_text=label)
    group.locator("label").filter(has_text=option).first.click()
    wait_idle(page)


FOLDER_SOURCE = "Folder or IXI-T1.tar"
FOLDER_BOX = "Folder of NIfTI files, or IXI-T1.tar"


def choose_folder_source(page, timeout_ms: int = 60_000):
    """Choose *Folder or IXI-T1.tar* in the sidebar and return the folder text box once it shows.

    No retry: in CI (stop 22) this click once met a rerun of Browse's viewer and the whole app went
    blank (Streamlit's "Bad delta path index"), which is the bug a user would meet; the viewer no
    longer runs as a fragment (ui/viewer.py).  A failure here reports the page (tests/e2e/conftest.py).
    """
    page.locator('[data-testid="stSidebar"]').locator("label").filter(has_text=FOLDER_SOURCE).click()
    wait_idle(page)
    box = page.get_by_role("textbox", name=FOLDER_BOX)
    box.wait_for(timeout=timeout_ms)
    return box
