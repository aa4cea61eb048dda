"""End-to-end harness: the real app (`streamlit run app.py`) driven by Debian's Chromium.

The server gets its own cache and runs folders; the demo cohort is in that cache before the
server starts, so tests see the app as a user does after its first start.  The cohort is built
once per session (by the CLI, under the network guard) and linked into each cache that needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.support import BROWSER_ARGS, CHROMIUM, REPO, screenshot, serve
from helpers import skip_missing

NETGUARD = Path(__file__).resolve().parent / "netguard"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def guarded_env(base: Path, log: Path) -> dict:
    """Environment of a server or CLI with its own cache and runs under ``base``, and the network
    guard (``tests/e2e/netguard``) on: every non-loopback connection is refused and logged to ``log``."""
    env = {**os.environ, "LATENTBRAIN_CACHE": str(base / "cache"), "LATENTBRAIN_RUNS": str(base / "runs"),
           "TF_CPP_MIN_LOG_LEVEL": "2", "LATENTBRAIN_NETGUARD_LOG": str(log),
           "PYTHONPATH": os.pathsep.join(p for p in (str(NETGUARD), os.environ.get("PYTHONPATH")) if p)}
    env.pop("LATENTBRAIN_DATA", None)
    return env


def netguard_attempts(log: Path) -> str:
    return log.read_text() if log.exists() else ""


@pytest.fixture(scope="session")
def demo_cohort(tmp_path_factory) -> Path:
    """The demo cohort (24 subjects, seed 0) as ``python -m core demo`` builds it, under the network
    guard; built once per session (a few minutes on 2 loaded cores) and never changed: a server gets
    it in its own cache through :func:`place_demo_cohort`."""
    base = tmp_path_factory.mktemp("demo_cohort")
    log = base / "netguard.log"
    env = guarded_env(base, log)
    subprocess.run([sys.executable, "-m", "core", "demo"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert not netguard_attempts(log), f"building the demo cohort tried the network:\n{netguard_attempts(log)}"
    cohort = base / "cache" / "demo_cohort"
    assert (cohort / ".complete").is_file()
    return cohort


def place_demo_cohort(cohort: Path, cache: Path) -> Path:
    """Put the built ``cohort`` where the app looks for it under ``cache`` (``demo_cohort``), as hard
    links (copies where links fail): the app only reads a built cohort, never writes into it."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    cache.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(cohort, cache / "demo_cohort", copy_function=link))


@pytest.fixture(scope="session")
def app_env(tmp_path_factory, demo_cohort) -> dict:
    base = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "LATENTBRAIN_CACHE": str(base / "cache"), "LATENTBRAIN_RUNS": str(base / "runs"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LATENTBRAIN_DATA", None)
    place_demo_cohort(demo_cohort, base / "cache")
    return env


#: The shared server's log (stdout and stderr), read into the report of a failed test.
_SERVER_LOGS: list[Path] = []


@pytest.fixture(scope="session")
def app_url(app_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    _SERVER_LOGS.append(log)
    with serve(REPO, app_env, log=log) as url:
        yield url


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test reports what the page showed and what the server printed.

    CI keeps only the text of its run: a timeout in a locator says what was missing, not what the
    page held instead.  The page's sidebar and main text, its script state and URL, and the tail
    of the shared server's log go into the report (and a screenshot into test-artifacts/).
    """
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    page = item.funcargs.get("page")
    if page is not None:
        try:
            state = page.evaluate("() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
                                  " return a && a.getAttribute('data-test-script-state'); }")
            texts = {name: page.locator(f'[data-testid="{name}"]').first.inner_text(timeout=5_000)[:1_500]
                     for name in ("stSidebar", "stMain")}
            screenshot(page, f"failed_{item.name}.png")
            errors = "\n".join(getattr(page, "page_errors", [])) or "none"
            report.sections.append(("page at failure", f"url {page.url}\nscript state {state}\nerrors {errors}\n"
                                    + "\n".join(f"--- {k} ---\n{v}" for k, v in texts.items())))
        except Exception as exc:  # the page may be gone (a crash): say so, keep the real failure
            report.sections.append(("page at failure", f"could not read the page: {exc!r}"))
    if "app_url" in item.fixturenames and _SERVER_LOGS:
        report.sections.append(("shared server log (tail)", _tail(_SERVER_LOGS[-1])))


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
    with serve(app_dir, env, "--server.runOnSave", "true", watch=True) as url:
        yield url, app_dir


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        skip_missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
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
    # Uncaught errors of the page's JavaScript (a blank Streamlit app throws one): reported with a
    # failure (see pytest_runtest_makereport).
    page.page_errors = []
    page.on("pageerror", lambda error: page.page_errors.append(str(error)[:300]))
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
