"""Latent explorer in Chromium: open a trained demo run, move a slider, hover a map point (its thumbnail
shows), click it (its panel shows), export the GIF."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.latent.view import parse_view
from e2e.support import POINTS_ON_SCREEN, REPO, screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The Vega tooltip is showing, with its thumbnail loaded: (natural width, shown width, text) or null.
TOOLTIP = """() => { const t = document.querySelector('#vg-tooltip-element.visible'); const i = t && t.querySelector('img');
  return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.getBoundingClientRect().width, t.innerText] : null; }"""


#: A slider thumb's value: react-aria's thumb is (or holds) a hidden input[type=range].
SLIDER_VALUE = """(e) => { const i = e.tagName === 'INPUT' ? e : e.querySelector('input[type=range]');
  return i ? i.value : e.getAttribute('aria-valuenow'); }"""


def hover_a_point(page):
    """Hover drawn points until one shows its tooltip: (x, y, tooltip natural / shown width, text)."""
    for attempt in range(20):
        chart = page.locator('[data-testid="stVegaLiteChart"] canvas').first
        box = chart.bounding_box()
        for x, y in page.evaluate(POINTS_ON_SCREEN, 12):
            page.mouse.move(box["x"] + 2, box["y"] + box["height"] - 2)
            page.mouse.move(x, y)
            try:
                found = page.wait_for_function(TOOLTIP, timeout=2_000).json_value()
            except PlaywrightTimeout:
                continue
            return x, y, found
        page.wait_for_timeout(1_000)  # not drawn yet
    raise AssertionError("no map point showed a tooltip on hover")


@pytest.fixture(scope="module")
def demo_run(app_env):
    """A small `demo` VAE (2 epochs, filters 16-32-64, 16-d latent) trained through the CLI on the demo
    cohort's thesis range at 64 px: enough for directions, maps and samples, quick on 2 shared cores."""
    runs = Path(app_env["LATENTBRAIN_RUNS"])
    if (runs / "e2e-latent" / "model.keras").is_file():
        return runs / "e2e-latent"
    demo = subprocess.run([sys.executable, "-m", "core", "demo"], cwd=REPO, env=app_env, check=True,
                          capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1]
    dataset = subprocess.run([sys.executable, "-m", "core", "build-dataset", "--data", demo, "--axis", "axial",
                              "--start", "160", "--stop", "190", "--size", "64"], cwd=REPO, env=app_env, check=True,
                             capture_output=True, text=True, timeout=600).stdout.strip().splitlines()[-1]
    subprocess.run([sys.executable, "-m", "core", "train", "--dataset", dataset, "--model", "vae", "--preset", "demo",
                    "--epochs", "2", "--warmup-epochs", "1", "--latent-dim", "16", "--set", "filters=[16,32,64]",
                    "--run", "e2e-latent", "--runs-dir", str(runs)], cwd=REPO, env=app_env,
                   check=True, capture_output=True, timeout=900)
    return runs / "e2e-latent"


def test_slider_map_click_and_gif(app_url, page, demo_run, tmp_path):
    page.goto(f"{app_url}/latent")
    wait_idle(page, 300_000)
    page.get_by_text("lbview1.").first.wait_for(timeout=300_000)
    # this test drives the server path (tests/e2e/test_latent_client.py the browser's): browser decoding off
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Decode in the browser").locator("label").click()
    wait_idle(page)
    page.get_by_text("browser decoding is off").first.wait_for()
    image = page.locator('[data-testid="stImage"] img').first
    before = image.get_attribute("src")
    code_before = page.locator('[data-testid="stCode"]').first.inner_text()

    # move the first principal-direction slider (PC 1) one σ to the right.  Streamlit 1.67's slider is
    # react-aria: a hidden input[type=range] whose visible thumb has role "slider"; a key press on the
    # focused thumb moves it and commits the value like a released drag, which triggers the rerun
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="PC 1").first
    thumb = slider.get_by_role("slider").first
    # one press at a time until the thumb reads 1.0: a rerun that lands between presses can redraw the
    # slider and drop its focus (CI once kept 4 of 10 presses), so focus again and read the value back
    for _ in range(40):
        value = float(thumb.evaluate(SLIDER_VALUE))
        if value == pytest.approx(1.0):
            break
        thumb.focus()
        page.keyboard.press("ArrowRight" if value < 1.0 else "ArrowLeft")
        wait_idle(page)
    wait_idle(page)
    page.wait_for_function("(b) => document.querySelector('[data-testid=\"stImage\"] img').src !== b", arg=before)
    code_after = page.locator('[data-testid="stCode"]').first.inner_text()
    assert code_after != code_before
    assert parse_view(code_after.strip()).sliders == pytest.approx({"pc1": 1.0})
    screenshot(page, "latent_sliders.png")

    # the map: hover a point and see its slice's thumbnail in the tooltip, click it and see its panel
    page.get_by_role("tab", name="Map").click()
    wait_idle(page)
    page.locator('[data-testid="stVegaLiteChart"] canvas').first.wait_for()
    x, y, (natural, shown, text) = hover_a_point(page)
    assert natural == 32 and shown == pytest.approx(96, abs=1)  # the 32 px thumbnail, shown at 3x
    match = re.search(r"row\s*(\d+)\s*$", text.strip())
    assert match and "subject" in text and "slice" in text, text
    row = int(match.group(1))
    screenshot(page, "latent_map_hover.png")
    started = time.perf_counter()
    page.mouse.click(x, y)
    heading = page.get_by_role("heading", name=f"Point {row}:")
    heading.wait_for(timeout=60_000)
    page.get_by_text("reconstruction").first.wait_for(timeout=60_000)
    print(f"map click → panel: {time.perf_counter() - started:.2f} s")
    wait_idle(page)
    heading.wait_for()
    # in the Map tab (other tabs' images are hidden): real slice, reconstruction, 5 neighbours
    assert page.locator('[data-testid="stImage"] img:visible').count() >= 7
    screenshot(page, "latent_map.png")
    # the docs' picture (docs/screenshots/latent_explorer.png): the same point hovered again above its panel
    page.mouse.move(x, y + 40)
    page.mouse.move(x, y)
    page.wait_for_function(TOOLTIP, timeout=10_000)
    shutil.copy(screenshot(page, "latent.png"), tmp_path / "latent.png")

    # the interpolation strip downloads as an animated GIF
    page.get_by_role("tab", name="Interpolation").click()
    wait_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download animated GIF").click()
    path = tmp_path / "strip.gif"
    download.value.save_as(path)
    data = path.read_bytes()
    assert data[:6] in (b"GIF89a", b"GIF87a") and len(data) > 1000
