"""Latent explorer in Chromium: open a trained demo run, move a slider, click a map point, export the GIF."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.latent.view import parse_view
from e2e.support import REPO, screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Page position and row id of a real slice's point in the map (the middle point of the first trace
#: that carries row ids); plotly's axes convert data coordinates to pixels inside the plot area.
POINT_ON_SCREEN = """() => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const trace = gd._fullData.find(t => t.x && t.x.length && t.customdata && Number(t.customdata[0]) >= 0);
  const i = Math.floor(trace.x.length / 2);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const row = Array.isArray(trace.customdata[i]) ? trace.customdata[i][0] : trace.customdata[i];
  return {x: box.left + xa._offset + xa.d2p(trace.x[i]), y: box.top + ya._offset + ya.d2p(trace.y[i]),
          row: Number(row)};
}"""


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
    image = page.locator('[data-testid="stImage"] img').first
    before = image.get_attribute("src")
    code_before = page.locator('[data-testid="stCode"]').first.inner_text()

    # move the first principal-direction slider (PC 1) one σ to the right.  Streamlit 1.67's slider is
    # react-aria: a hidden input[type=range] whose visible thumb has role "slider"; a key press on the
    # focused thumb moves it and commits the value like a released drag, which triggers the rerun
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="PC 1").first
    thumb = slider.get_by_role("slider").first
    thumb.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    wait_idle(page)
    page.wait_for_function("(b) => document.querySelector('[data-testid=\"stImage\"] img').src !== b", arg=before)
    code_after = page.locator('[data-testid="stCode"]').first.inner_text()
    assert code_after != code_before
    assert parse_view(code_after.strip()).sliders == pytest.approx({"pc1": 1.0})
    screenshot(page, "latent_sliders.png")

    # the map: click a point, see its panel with the real slice and neighbours
    page.get_by_role("tab", name="Map").click()
    wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    page.wait_for_timeout(1500)
    started = time.perf_counter()
    # WebGL points have no DOM nodes: ask plotly where a real point is drawn (its axes map data to
    # pixels), click there, and expect that point's global row id (customdata) in the panel
    target = page.evaluate(POINT_ON_SCREEN)
    page.mouse.click(target["x"], target["y"])
    heading = page.get_by_role("heading", name=f"Point {target['row']}:")
    try:
        heading.wait_for(timeout=60_000)
        hit = True
    except PlaywrightTimeout:  # fall back to the row box, the same session key the chart's callback writes
        hit = False
        screenshot(page, "latent_map_click_missed.png")
        page.get_by_label("Selected point (row id; or click a point)").fill(str(target["row"]))
        page.keyboard.press("Enter")
    page.get_by_text("reconstruction").first.wait_for(timeout=60_000)
    wait_idle(page)
    heading.wait_for()
    print(f"map click → panel: {time.perf_counter() - started:.2f} s (hit by click: {hit})")
    assert hit, "clicking a drawn map point did not open its panel (see latent_map_click_missed.png)"
    screenshot(page, "latent_map.png")
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
