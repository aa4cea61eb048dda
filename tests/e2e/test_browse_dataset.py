"""A user's path through Browse and Dataset in a real browser, plus bad folders."""

from __future__ import annotations

import re

import pytest

from e2e.support import choose_folder_source, choose_radio, screenshot, wait_idle
from e2e.viewer_support import viewer_frame

pytestmark = pytest.mark.e2e


def _slices_per_volume(page) -> int:
    text = page.get_by_text(re.compile(r"slices per volume")).first.inner_text()
    return int(re.search(r"(\d+) slices per volume", text).group(1))


def test_browse_pick_subject_move_range_build_dataset(app_url, page):
    page.goto(app_url)
    wait_idle(page)
    page.get_by_text("Synthetic demo cohort").first.wait_for()
    # The three plane views are drawn in the browser (tests/e2e/test_browse_viewer.py checks their
    # pixels): wait for all three canvases to hold a plane, and for the range strip's image.
    frame = viewer_frame(page)
    assert frame.evaluate("() => [...document.querySelectorAll('canvas.plane')]"
                          ".filter(c => c.width > 100 && c.height > 100).length") == 3
    images = page.locator('[data-testid="stImage"] img')
    images.first.wait_for()
    assert page.evaluate("img => img.naturalWidth", images.first.element_handle()) > 100

    # Pick another subject from the Subject select box.
    page.get_by_label("Subject", exact=False).first.click()
    page.get_by_role("option", name=re.compile("DEMO005")).click()
    wait_idle(page)
    page.get_by_text(re.compile(r"DEMO005-IOP-0005-T1 · site IOP")).wait_for()

    # Move the slice range: the stop thumb two steps right with the keyboard.
    before = _slices_per_volume(page)
    thumbs = page.locator('[data-testid="stSlider"]').last.get_by_role("slider")
    thumbs.last.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    after = _slices_per_volume(page)
    assert after == before + 2, (before, after)
    screenshot(page, "browse.png")

    # Dataset page through the sidebar navigation: build at 64 px.
    page.get_by_role("link", name="Dataset").first.click()
    wait_idle(page)
    screenshot(page, "dataset_before_build.png")
    page.get_by_text(f"{after} slices × 24 volumes").wait_for()
    choose_radio(page, "Image size", "64")
    wait_idle(page)
    page.get_by_text("of 64×64, split by subject").wait_for()
    page.get_by_role("button", name="Build dataset").click()
    page.get_by_text(re.compile(r"Built in|Reused the cached")).wait_for(timeout=180_000)
    wait_idle(page)
    page.get_by_text("Balance per split").wait_for()
    page.get_by_text("Subjects shared between train and val/test: 0").wait_for()
    screenshot(page, "dataset.png")


def test_bad_folders_give_messages_and_the_app_keeps_running(app_url, page, bad_folders):
    corrupt, empty = bad_folders
    page.goto(app_url)
    wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = choose_folder_source(page)
    box.fill(str(empty))
    box.press("Enter")
    wait_idle(page)
    page.get_by_text("no NIfTI volumes").first.wait_for()
    box.fill(str(corrupt))
    box.press("Enter")
    wait_idle(page)
    page.get_by_text(re.compile("corrupt or truncated gzip")).first.wait_for()
    # Back to the demo: everything works again.
    sidebar.locator("label").filter(has_text="Demo cohort (synthetic)").click()
    wait_idle(page)
    page.locator('[data-testid="stImage"] img').first.wait_for()


def test_a_reload_keeps_the_data_source_and_unmatched_demographics_are_named(app_url, page, ixi_sample_dir):
    page.goto(app_url)
    wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = choose_folder_source(page)
    box.fill(str(ixi_sample_dir))
    box.press("Enter")
    wait_idle(page)
    page.get_by_text(re.compile(r"IXI012-HH-1211-T1 · site HH")).first.wait_for()
    assert "source=folder" in page.url and str(ixi_sample_dir) not in page.url
    # The sample's IXI_demog.csv has rows for neither volume: the page says so, by name.
    page.get_by_text(re.compile(r"matched 0 of 2 subjects; no row for IXI012-HH-1211-T1, IXI015")).wait_for()

    page.reload()
    wait_idle(page)
    page.get_by_text(re.compile(r"IXI012-HH-1211-T1 · site HH")).first.wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_role("radio", name="Folder or IXI-T1.tar").is_checked()
    assert page.get_by_role("textbox", name="Folder of NIfTI files, or IXI-T1.tar").input_value() == str(ixi_sample_dir)
    screenshot(page, "browse_after_reload.png")

    # Back to the demo (this server is shared with the other tests); a reload keeps that too.
    sidebar.locator("label").filter(has_text="Demo cohort (synthetic)").click()
    wait_idle(page)
    page.get_by_text("Synthetic demo cohort").first.wait_for()
    page.reload()
    wait_idle(page)
    page.get_by_text("Synthetic demo cohort").first.wait_for()
    assert "source=" not in page.url
