"""Helpers for the end-to-end tests: wait for Streamlit, save screenshots."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


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
