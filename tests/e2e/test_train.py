"""Launch a demo training from the Train page and watch its curves arrive, in Chromium."""

from __future__ import annotations

import re

import pytest

from e2e.support import choose_radio, screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_launch_demo_vae_and_see_the_loss_curve(app_url, page):
    # A 64 px dataset exists once the Browse/Dataset test ran; build one here if not.
    page.goto(f"{app_url}/dataset")
    wait_idle(page)
    choose_radio(page, "Image size", "64")
    wait_idle(page)
    page.get_by_role("button", name="Build dataset").click()
    page.get_by_text(re.compile(r"Built in|Reused the cached")).wait_for(timeout=180_000)

    page.get_by_role("link", name="Train").first.click()
    wait_idle(page)
    # The "New training run" panel starts collapsed once runs exist (other e2e tests of this
    # session make some): open it as a user would.
    epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
    if not epochs.is_visible():
        page.get_by_text("New training run").first.click()
        wait_idle(page)
    page.get_by_text("64 px").first.wait_for()
    epochs.fill("2")  # two: the curve is checked after the first epoch, and again when finished
    epochs.press("Tab")
    page.get_by_role("textbox", name="Run name", exact=True).fill("e2e-vae")
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Started run").wait_for(timeout=60_000)

    # The live fragment refreshes on its own: first epoch rows, then the finished state.
    page.get_by_text(re.compile(r"epoch [1-2] / 2")).first.wait_for(timeout=240_000)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    # plotly draws the traces after the chart element appears: wait for the first, do not count at once
    page.wait_for_function("() => { const c = document.querySelector('[data-testid=\"stPlotlyChart\"]');"
                           " return !!c && c.querySelectorAll('.scatterlayer .trace').length >= 1; }", timeout=60_000)
    page.get_by_text(re.compile(r"finished")).first.wait_for(timeout=300_000)
    page.wait_for_timeout(2500)  # one more fragment refresh after the last epoch
    page.get_by_text("epoch 2 / 2").first.wait_for()
    assert page.locator('[data-testid="stPlotlyChart"]').first.locator(".scatterlayer .trace").count() >= 1
    page.get_by_text("e2e-vae").first.wait_for()
    screenshot(page, "train.png")
