"""The Latent sliders decode in the browser (issue 18), in headless Chromium: a slider move sends
nothing to the server (no websocket frame, no request), changes the picture, and the browser's pixels
equal the server's for the same view within 1/255 — on a VAE, a conditional VAE and a VQ-VAE."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from core.latent.view import parse_view
from e2e.support import REPO, screenshot, serve, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CANVAS = """() => { const c = document.getElementById('canvas');
  return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_vae_run, tiny_cvae_run, tiny_vqvae_run):
    """A server whose runs folder holds copies of the three tiny runs; its data source is a folder of
    two tiny volumes (the Latent page needs no cohort)."""
    from helpers import smooth_head, write_nifti

    base = tmp_path_factory.mktemp("latent_client")
    for run in (tiny_vae_run, tiny_cvae_run, tiny_vqvae_run):
        shutil.copytree(run, base / "runs" / run.name)
    data = base / "data"
    data.mkdir()
    for n in (1, 2):
        write_nifti(data / f"IXI90{n}-Guys-000{n}-T1.nii.gz", smooth_head(seed=n))
    env = {**os.environ, "LATENTBRAIN_CACHE": str(base / "cache"), "LATENTBRAIN_RUNS": str(base / "runs"),
           "LATENTBRAIN_DATA": str(data), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    with serve(REPO, env, log=base / "server.log") as url:
        yield url


def _decoder_frame(page, run: str):
    """The component's frame once it has loaded ``run``'s decoder and drawn it."""
    page.wait_for_selector('iframe[title*="latent_decoder"]', timeout=120_000)
    ready = ("(run) => { const p = window.latentDecoder; return !!p && p.ready && p.decodes > 0 && "
             "String(p.modelKey).startsWith(run + '@'); }")
    for _ in range(240):
        for frame in page.frames:
            if "latent_decoder" in frame.url and not frame.is_detached() and frame.evaluate(ready, run):
                return frame
        page.wait_for_timeout(500)
    states = [f.evaluate("() => JSON.stringify(window.latentDecoder && {k: latentDecoder.modelKey, "
                         "r: latentDecoder.ready, n: latentDecoder.decodes, e: latentDecoder.error})")
              for f in page.frames if "latent_decoder" in f.url and not f.is_detached()]
    raise AssertionError(f"the browser decoder did not draw {run}: {states}")


def _canvas(frame) -> np.ndarray:
    w, h, data = frame.evaluate(CANVAS)
    return np.asarray(data, np.uint8).reshape(h, w, 4)[..., :3]


def _choose_run(page, run: str):
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first
    box.click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(run)} ·")).first.click()
    wait_idle(page)


def _browser_decoding(page, on: bool):
    if page.get_by_role("switch", name="Decode in the browser").is_checked() != on:
        page.locator('[data-testid="stCheckbox"]').filter(has_text="Decode in the browser").locator("label").click()
        wait_idle(page)


def test_slider_moves_decode_in_the_browser_and_match_the_server(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(60_000)
    sent, requests = [], []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(len(payload))))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{server}/latent")
    wait_idle(page, 300_000)
    page.get_by_text("lbview1.").first.wait_for(timeout=300_000)
    for run in ("vae-tiny", "cvae-tiny", "vq-tiny"):
        _choose_run(page, run)
        _browser_decoding(page, True)
        frame = _decoder_frame(page, run)
        wait_idle(page)
        decodes = frame.evaluate("() => latentDecoder.decodes")
        frame.get_by_role("button", name="Reset sliders").click()  # the last run's saved view may have moved them
        frame.wait_for_function("(n) => latentDecoder.decodes > n && latentDecoder.values.pc1 === 0", arg=decodes)
        before, decodes = _canvas(frame), frame.evaluate("() => latentDecoder.decodes")
        frames_before, requests_before = len(sent), len(requests)

        # moves of PC 1 (0.1 σ each) by keyboard, as a user does: 1 σ, or 3 σ on the VQ-VAE (a small move
        # may change no code, and then no pixel, of a re-quantised latent)
        target = 3.0 if run == "vq-tiny" else 1.0
        frame.locator("#slider-pc1").focus()
        for _ in range(round(target * 10)):
            page.keyboard.press("ArrowRight")
        moved = "([n, t]) => latentDecoder.decodes > n && Math.abs(latentDecoder.values.pc1 - t) < 1e-6"
        try:
            frame.wait_for_function(moved, arg=[decodes, target], timeout=30_000)
        except Exception as exc:
            state = frame.evaluate("() => JSON.stringify({n: latentDecoder.decodes, v: latentDecoder.values, "
                                   "e: latentDecoder.error, focus: document.activeElement && document.activeElement.id})")
            raise AssertionError(f"{run}: the moves were not decoded: {state} (before: {decodes})") from exc
        page.wait_for_timeout(1_500)  # anything the moves sent would be out by now
        assert len(sent) == frames_before, f"{run}: {len(sent) - frames_before} websocket frames sent while moving"
        assert requests[requests_before:] == [], f"{run}: requests while moving: {requests[requests_before:]}"
        after = _canvas(frame)
        assert after.shape == before.shape and np.abs(after.astype(int) - before.astype(int)).max() > 0, \
            f"{run}: the picture did not change"
        if run == "vq-tiny":
            assert "codes changed after re-quantising" in frame.locator("#facts").inner_text()
        screenshot(page, f"latent_client_{run}.png")

        # "Copy view" is the one message: the server learns the sliders, the view string shows them
        # (the sliders' session values are shared by runs: the string may show pc1 = 1 already, so wait
        # for the view it should show rather than for a change)
        code = page.locator('[data-testid="stCode"]').first
        frame.get_by_role("button", name="Copy view").click()
        for _ in range(120):
            wait_idle(page)
            view = parse_view(code.inner_text().strip())
            if view.run.startswith(f"{run}@") and view.sliders == pytest.approx({"pc1": target}):
                break
            page.wait_for_timeout(500)
        assert view.run.startswith(f"{run}@") and view.sliders == pytest.approx({"pc1": target}), view

        # the same view decoded by the server: equal pixels within 1/255
        _browser_decoding(page, False)
        page.get_by_text("browser decoding is off").first.wait_for()
        shown = page.locator('[data-testid="stImage"] img[src^="data:image/png;base64,"]').first  # the view, inline
        shown.wait_for()
        src = shown.get_attribute("src")
        served = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        assert served.shape == after.shape, (served.shape, after.shape)
        gap = np.abs(served.astype(int) - after.astype(int))
        assert gap.max() <= 1, f"{run}: browser and server differ by up to {gap.max()} / 255"
        _browser_decoding(page, True)
    context.close()
