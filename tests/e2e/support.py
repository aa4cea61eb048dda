"""Helpers for the end-to-end tests: wait for Streamlit, save screenshots."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit has finished the current run (no 'Running…' status widget)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms,
    )
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
