"""The sidebar keeps the app's titled navigation and the data-source panel (issue 7, item 7).

Streamlit's legacy ``pages/`` mode (see ui/routing.py) showed the pages by file name and ran a
page without ``app.py`` (no data-source panel) when a server's first run asked for a page
other than the root, e.g. a tab reconnecting to a restarted server, and then for every later
run until someone opened the root URL.
"""

from __future__ import annotations

import pytest

from e2e.support import wait_idle

pytestmark = pytest.mark.e2e

TITLES = ("Browse", "Dataset", "Train")
FILE_NAMES = ("app", "browse", "dataset", "train")


def _wait_page(page, title: str) -> None:
    page.locator('[data-testid="stMain"] h1').filter(has_text=title).first.wait_for(timeout=180_000)
    wait_idle(page)


def _assert_app_sidebar(page, where: str) -> None:
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.wait_for(timeout=60_000)
    links = [t.strip() for t in nav.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]
    labels = {text.splitlines()[-1].strip() for text in links if text}  # the last line; icons come first
    assert set(TITLES) <= labels, f"{where}: sidebar links {links}"
    assert not labels & set(FILE_NAMES), f"{where}: file-name navigation {links}"
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Images never leave this machine").count() == 1, f"{where}: no data-source panel"
    assert sidebar.get_by_text("Folder or IXI-T1.tar").count() >= 1, f"{where}: {sidebar.inner_text()!r}"


def test_sidebar_survives_first_run_on_a_page_reloads_and_file_changes(fresh_app, page):
    url, app_dir = fresh_app
    # The server's first run asks for a page, as a tab reconnecting after a restart does.
    page.goto(f"{url}/dataset")
    _wait_page(page, "Dataset")
    _assert_app_sidebar(page, "first run on /dataset")

    for n in range(3):
        page.reload()
        _wait_page(page, "Dataset")
        _assert_app_sidebar(page, f"reload {n + 1}")

    for title in ("Train", "Browse", "Dataset"):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).first.click()
        _wait_page(page, title)
        _assert_app_sidebar(page, f"switched to {title}")

    # Save a page file: the server's file watcher fires and (runOnSave) reruns the app.
    dataset_page = app_dir / "pages" / "dataset.py"
    dataset_page.write_text(dataset_page.read_text() + "\n# touched by the navigation test\n")
    page.wait_for_timeout(3000)
    _wait_page(page, "Dataset")
    _assert_app_sidebar(page, "after the file watcher fired")
    page.reload()
    _wait_page(page, "Dataset")
    _assert_app_sidebar(page, "reload after the file watcher fired")
