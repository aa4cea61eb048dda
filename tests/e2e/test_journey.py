"""The whole journey in headless Chromium, without network (issue 11).

Fresh server → data source (the demo cohort, or the two real IXI volumes in ``../shared``) →
Browse: pick a slice range → Dataset: build it at 64 px → Train: launch a tiny ``demo`` VAE from
the page's widgets and watch its epoch counter and curve move → reload mid-training, still running →
Stop, Resume, finished → Latent: move a slider (the decoded image changes), click a map point (its
panel opens) → Review: a short blinded study and its scores → export the run report (HTML).  The IXI
journey trains straight to the end: reload / Stop / Resume are the same on any data (see ``SOURCES``).

The server and every process it starts (training jobs) run with ``tests/e2e/netguard`` on
``PYTHONPATH``: any connection to a non-loopback address is refused and logged; the log must stay
empty.  Each step leaves ``test-artifacts/screenshots/journey_<source>_<n>_<step>.png``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from e2e.conftest import guarded_env, netguard_attempts, place_demo_cohort
from e2e.support import REPO, choose_folder_source, screenshot, serve, wait_idle
from e2e.test_latent import hover_a_point
from e2e.viewer_support import viewer_frame
from helpers import skip_missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IXI_SAMPLE = REPO.parent / "shared" / "data" / "ixi_sample"
#: Tiny training from the page's widgets: few epochs, small batches, a small latent.  The run must still
#: be going after the counter moved and the page was reloaded (Stop must find it running): that window
#: is about 2-3 epochs on a loaded machine (page runs compete with the job), so 10 epochs (~25 steps
#: each; one epoch ~3 s on 2 idle cores).
LATENT, WARMUP = 16, 2
#: Per data source: how many slices per volume to keep on Browse, the batch size and the epochs.  Demo: the
#: last 10 of the middle 30 (24 volumes, ~19 in train: ~190 training images), the whole journey.  IXI: 2
#: volumes, 1 in train, so a wide range (100 of its 120 axial slices: the range is widened, not narrowed)
#: and batches of 4.  Reload / Stop / Resume do not depend on the data source and are driven on the demo
#: journey (``interrupt``): the IXI run trains 3 epochs straight through, which is what its own steps
#: (a folder source, a one-subject train split, Latent and Review on it) need.
SOURCES = {"demo": {"slices": 10, "batch": 8, "volumes": 24, "epochs": 10, "interrupt": True},
           "ixi": {"slices": 100, "batch": 4, "volumes": 2, "epochs": 3, "interrupt": False}}
#: A short study: one real and one synthetic image (tests/e2e/test_review.py answers 4-item studies in both modes).
STUDY_ITEMS = 2
SLOW = 300_000  # ms: steps that train, encode or build on a loaded 2-core machine


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory, demo_cohort):
    """A cache folder holding the demo cohort (the session's, built by the CLI under the network guard)."""
    cache = tmp_path_factory.mktemp("journey_demo_cache") / "cache"
    place_demo_cohort(demo_cohort, cache)
    return cache


def _stop_jobs(runs_dir: Path) -> None:
    """End training jobs this test's server started (they run in their own sessions) if one is left."""
    import json

    for status in runs_dir.glob("*/status.json"):
        try:
            data = json.loads(status.read_text())
        except (OSError, ValueError):
            continue
        if data.get("state") in ("queued", "running") and data.get("pid"):
            try:
                os.kill(int(data["pid"]), signal.SIGTERM)
            except (OSError, ValueError):
                pass


@pytest.fixture(params=["demo", "ixi"])
def journey_server(request, tmp_path):
    """(source, url, runs dir, netguard log, server log) of a fresh server with its own folders and the guard."""
    source = request.param
    if source == "ixi" and not (IXI_SAMPLE.is_dir() and len(list(IXI_SAMPLE.glob("*.nii.gz"))) >= 2):
        skip_missing(f"{IXI_SAMPLE} (two real IXI volumes) is absent")
    log = tmp_path / "netguard.log"
    env = guarded_env(tmp_path, log)
    if source == "demo":
        env["LATENTBRAIN_CACHE"] = str(request.getfixturevalue("demo_cache"))
    server_log = tmp_path / "server.log"
    runs_dir = Path(env["LATENTBRAIN_RUNS"])
    try:
        with serve(REPO, env, log=server_log) as url:
            yield source, url, runs_dir, log, server_log
    finally:
        _stop_jobs(runs_dir)
    attempts = netguard_attempts(log)
    assert not attempts, f"the app tried to reach the network:\n{attempts}"


# ----------------------------------------------------------------------------------------- helpers
def _main(page):
    return page.locator('[data-testid="stMain"]')


def _assert_no_errors(page, where: str) -> None:
    """No exception box and no error alert on the page."""
    exceptions = page.locator('[data-testid="stException"]')
    errors = page.locator('[data-testid="stAlertContentError"]')
    texts = exceptions.all_inner_texts() + errors.all_inner_texts()
    assert not texts, f"{where}: error on the page: {texts}"


def _images_present(page, at_least: int, where: str) -> None:
    """At least ``at_least`` visible images in the main area, each loaded (not broken, not empty)."""
    page.wait_for_function(
        "(n) => { const imgs = [...document.querySelectorAll('[data-testid=\"stMain\"] [data-testid=\"stImage\"] img')]"
        ".filter(i => i.offsetParent !== null);"
        " return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=at_least, timeout=SLOW)
    count = _main(page).locator('[data-testid="stImage"] img:visible').count()
    assert count >= at_least, f"{where}: {count} images"


def _planes_drawn(page, where: str) -> None:
    """Browse's three planes drawn by the browser viewer (a canvas each, holding a plane)."""
    frame = viewer_frame(page, SLOW)
    drawn = frame.evaluate("() => [...document.querySelectorAll('canvas.plane')].filter(c => c.width > 20).length")
    assert drawn == 3, f"{where}: {drawn} planes drawn"


def _shot(page, source: str, n: int, step: str) -> None:
    screenshot(page, f"journey_{source}_{n}_{step}.png")


def _goto_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).first.click()
    _main(page).locator("h1").filter(has_text=title).first.wait_for(timeout=SLOW)
    wait_idle(page, SLOW)


def _epoch(page) -> tuple[int, int] | None:
    """(epoch, epochs) of the run panel's progress text, or None."""
    text = _main(page).inner_text()
    match = re.search(r"epoch (\d+) / (\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _wait_epoch(page, at_least: int, timeout: int = SLOW) -> None:
    page.wait_for_function(
        "(n) => { const m = document.querySelector('[data-testid=\"stMain\"]').innerText.match(/epoch (\\d+) \\/ \\d+/);"
        " return m && Number(m[1]) >= n; }", arg=at_least, timeout=timeout)


def _wait_state(page, run_state: str, timeout: int = SLOW) -> None:
    """The run panel's header line (``**name** · vae / demo · <icon> **running** · stage …``) shows ``run_state``."""
    page.wait_for_function(
        "(s) => document.querySelector('[data-testid=\"stMain\"]').innerText.includes(' ' + s + ' · stage')",
        arg=run_state, timeout=timeout)


def _number(page, label: str, value, key: str = "Enter") -> None:
    """Type into a number box; Enter commits it (Tab inside a form, where Enter would submit)."""
    box = _main(page).get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press(key)
    wait_idle(page)


def _radio(page, group_text: str, option: str | re.Pattern) -> None:
    group = _main(page).locator('[data-testid="stRadio"]').filter(has_text=group_text)
    group.locator("label").filter(has_text=option).first.click()
    wait_idle(page)


# ------------------------------------------------------------------------------------------ journey
def test_journey(journey_server, page, tmp_path):
    source, url, runs_dir, netguard_log, server_log = journey_server
    run_name = f"journey-{source}"
    started = time.monotonic()
    marks = {}

    def mark(step):
        marks[step] = round(time.monotonic() - started, 1)

    try:
        _journey(page, source, url, runs_dir, run_name, tmp_path, mark)
    except Exception:
        screenshot(page, f"journey_{source}_failed.png")
        tail = server_log.read_text(errors="replace")[-4000:] if server_log.exists() else ""
        print(f"server log tail:\n{tail}")
        raise
    finally:
        print(f"journey {source}: seconds since start per step {marks}")
    log_text = server_log.read_text(errors="replace") if server_log.exists() else ""
    assert "Traceback" not in log_text, f"the server logged a traceback:\n{log_text[-4000:]}"
    assert not netguard_attempts(netguard_log), netguard_attempts(netguard_log)


def _journey(page, source, url, runs_dir, run_name, tmp_path, mark):
    # --- 1. data source and Browse ---------------------------------------------------------------
    if source == "demo":
        page.goto(url)
        wait_idle(page, SLOW)
        page.get_by_text("Synthetic demo cohort").first.wait_for(timeout=SLOW)
    else:
        # Open a page that reads no data first, so the demo cohort is never built, then choose the folder.
        page.goto(f"{url}/train")
        wait_idle(page, SLOW)
        box = choose_folder_source(page)
        box.fill(str(IXI_SAMPLE))
        box.press("Enter")
        wait_idle(page)
        _goto_page(page, "Browse")
        page.get_by_text(re.compile(r"IXI012-HH-1211-T1 · site HH")).first.wait_for(timeout=SLOW)
    _planes_drawn(page, "Browse")
    _images_present(page, 1, "Browse")  # this subject's range strip
    _assert_no_errors(page, "Browse")
    mark("browse")

    # Pick a slice range with the keyboard on the range slider's thumbs (react-aria: a key press moves
    # the focused thumb one step and commits, like a released drag).
    settings = SOURCES[source]
    slices, volumes = settings["slices"], settings["volumes"]
    readout = _main(page).get_by_text(re.compile(r"slices per volume · index")).first.inner_text()
    first_index, last_index = map(int, re.search(r"index (\d+)–(\d+)", readout).groups())
    start, stop = first_index, last_index + 1
    if stop - start >= slices:  # keep the last `slices` of the range: the start thumb to the right
        moves = [(0, "ArrowRight", stop - start - slices)]
        start = stop - slices
    else:  # widen around the middle: start to the left, stop to the right
        grow = slices - (stop - start)
        moves = [(0, "ArrowLeft", grow // 2), (1, "ArrowRight", grow - grow // 2)]
        start, stop = start - grow // 2, stop + grow - grow // 2
    thumbs = _main(page).locator('[data-testid="stSlider"]').filter(has_text="Slices (start, stop").get_by_role("slider")
    for thumb, key, times in moves:
        thumbs.nth(thumb).focus()
        for _ in range(times):
            page.keyboard.press(key)
        wait_idle(page)
    _main(page).get_by_text(re.compile(rf"^{slices} slices per volume · index {start}–{stop - 1}")).first.wait_for()
    page.get_by_text(re.compile(rf"cohort: {slices * volumes} slices from {volumes} of {volumes} volumes")).wait_for()
    _planes_drawn(page, "Browse after the range")
    _images_present(page, 1, "Browse after the range")
    _assert_no_errors(page, "Browse after the range")
    _shot(page, source, 1, "browse")
    mark("range")

    # --- 2. Dataset at 64 px ---------------------------------------------------------------------
    _goto_page(page, "Dataset")
    page.get_by_text(f"{slices} slices × {volumes} volumes").wait_for()
    _radio(page, "Image size", "64")
    if source == "ixi":
        # Two subjects: one to train on, one held out for the test split (Review needs test slices).
        _number(page, "Train fraction", 0.5)
        _number(page, "Validation fraction", 0)
        _number(page, "Test fraction", 0.5)
        page.get_by_text("(50% / 0% / 50%)").wait_for()
    page.get_by_text("of 64×64, split by subject").wait_for()
    _main(page).get_by_role("button", name="Build dataset").click()
    page.get_by_text(re.compile(r"Built in|Reused the cached")).wait_for(timeout=SLOW)
    wait_idle(page, SLOW)
    page.get_by_text("Balance per split").wait_for()
    page.get_by_text("Subjects shared between train and val/test: 0").wait_for()
    _images_present(page, 1, "Dataset")
    _assert_no_errors(page, "Dataset")
    _shot(page, source, 2, "dataset")
    mark("dataset")

    # --- 3. Train a tiny demo VAE ----------------------------------------------------------------
    epochs = settings["epochs"]
    _goto_page(page, "Train")
    page.get_by_text("64 px").first.wait_for()
    _radio(page, "Model", "VAE")
    _radio(page, "Preset", re.compile(r"^demo$"))
    for label, value in (("Epochs", epochs), ("Batch size", settings["batch"]), ("Warm-up epochs", WARMUP),
                         ("Latent size", LATENT)):
        box = _main(page).get_by_role("spinbutton", name=label, exact=True)
        box.fill(str(value))
        box.press("Tab")
    _main(page).get_by_role("textbox", name="Run name", exact=True).fill(run_name)
    _main(page).get_by_role("button", name="Launch").click()
    page.get_by_text("Started run").wait_for(timeout=SLOW)
    _wait_state(page, "running")
    _wait_epoch(page, 1)
    first = _epoch(page)
    assert first is not None and first[1] == epochs, first
    chart = _main(page).locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    # plotly draws its traces a moment after the chart's frame appears: wait for one, not count at once
    chart.locator(".scatterlayer .trace").first.wait_for(timeout=SLOW)
    assert chart.locator(".scatterlayer .trace").count() >= 1
    _shot(page, source, 3, "training")
    mark("first epoch")

    if settings["interrupt"]:
        _wait_epoch(page, first[0] + 1)  # the counter moves on its own (the live fragment)
        mark("counter moved")

        # Reload mid-training: the run is still running, read back from its folder.
        page.reload()
        wait_idle(page, SLOW)
        _wait_state(page, "running")
        _main(page).get_by_text(run_name).first.wait_for()
        _wait_epoch(page, first[0] + 1)  # the progress bar is drawn again (not a loading skeleton)
        after_reload = _epoch(page)
        assert after_reload is not None and after_reload[0] >= first[0] + 1 and after_reload[0] < epochs, after_reload
        _shot(page, source, 4, "reloaded")
        mark("reloaded")

        # Stop, then Resume, then finished.
        stop_button = _main(page).get_by_role("button", name="Stop", exact=True)
        stop_button.click()
        _wait_state(page, "cancelled")
        wait_idle(page)
        stopped = _epoch(page)
        assert stopped is not None and stopped[0] < epochs, f"the run finished before Stop took effect: {stopped}"
        _assert_no_errors(page, "Train, stopped")
        _shot(page, source, 5, "stopped")
        mark("stopped")
        _main(page).get_by_role("button", name="Resume", exact=True).click()
    _wait_state(page, "finished", timeout=SLOW)
    _wait_epoch(page, epochs)
    wait_idle(page)
    assert _epoch(page) == (epochs, epochs)
    assert _main(page).locator('[data-testid="stPlotlyChart"]').first.locator(".scatterlayer .trace").count() >= 1
    _images_present(page, 2, "Train, finished")
    _assert_no_errors(page, "Train, finished")
    _shot(page, source, 6, "finished")
    mark("finished")
    from core.training import runs

    metrics = runs.read_metrics(runs_dir / run_name)
    assert list(metrics["epoch"]) == list(range(1, epochs + 1)), list(metrics["epoch"])  # continuous across the stop

    # --- 4. Latent explorer: a slider and a map point ------------------------------------------------
    _goto_page(page, "Latent explorer")
    page.get_by_text("lbview1.").first.wait_for(timeout=SLOW)
    wait_idle(page, SLOW)
    _assert_no_errors(page, "Latent")
    # The journey drives the server path; tests/e2e/test_latent_client.py drives the browser's decoder.
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Decode in the browser").locator("label").click()
    wait_idle(page)
    page.get_by_text("browser decoding is off").first.wait_for()
    image = _main(page).locator('[data-testid="stImage"] img').first
    before = image.get_attribute("src")
    slider = _main(page).locator('[data-testid="stSlider"]').filter(has_text="PC 1").first
    slider.get_by_role("slider").first.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    wait_idle(page)
    page.wait_for_function(
        "(b) => document.querySelector('[data-testid=\"stMain\"] [data-testid=\"stImage\"] img').src !== b", arg=before)
    _images_present(page, 1, "Latent sliders")
    _assert_no_errors(page, "Latent sliders")
    _shot(page, source, 7, "latent_slider")
    mark("latent slider")

    page.get_by_role("tab", name="Map").click()
    wait_idle(page, SLOW)
    _main(page).locator('[data-testid="stVegaLiteChart"] canvas').first.wait_for(timeout=SLOW)
    x, y, (_, _, tooltip) = hover_a_point(page)  # its thumbnail shows in the tooltip
    row = int(re.search(r"row\s*(\d+)\s*$", tooltip.strip()).group(1))
    page.mouse.click(x, y)
    _main(page).get_by_role("heading", name=f"Point {row}:").wait_for(timeout=SLOW)
    page.get_by_text("reconstruction").first.wait_for()
    wait_idle(page, SLOW)
    _images_present(page, 3, "Latent map point")
    _assert_no_errors(page, "Latent map")
    _shot(page, source, 8, "latent_map")
    mark("latent map")

    # --- 5. Review: a short blinded study, its scores, the run report ----------------------------------
    _goto_page(page, "Review")
    _radio(page, "Side by side", "Reader study")
    name_box = _main(page).get_by_role("textbox", name="Your name (reviewer)")
    name_box.fill("Journey")
    name_box.press("Enter")
    wait_idle(page)
    _number(page, "Images (pairs in 2AFC)", STUDY_ITEMS, key="Tab")
    _main(page).get_by_role("button", name="Create study").click()
    page.get_by_text(re.compile(r"Study .+ created\.")).wait_for(timeout=SLOW)
    wait_idle(page, SLOW)
    owner_key = _main(page).locator('[data-testid="stCode"] code').first.inner_text().strip()  # shown this once
    for step in range(STUDY_ITEMS):
        page.get_by_text(f"Item {step + 1} of {STUDY_ITEMS}").wait_for(timeout=SLOW)
        _images_present(page, 1, f"study item {step + 1}")
        if step == 0:
            _shot(page, source, 9, "study_item")
        _radio(page, "This image is", ("Real", "Synthetic")[step % 2])
        _radio(page, "Confidence", re.compile(r"^3$"))
        _main(page).get_by_role("button", name="Submit answer").click()
        wait_idle(page)
    page.get_by_text(f"Done: you answered all {STUDY_ITEMS}").wait_for()
    _assert_no_errors(page, "Review study")
    _radio(page, "Side by side", "Study results")
    page.get_by_label("Owner key", exact=True).fill(owner_key)  # results belong to the study's owner
    _main(page).get_by_role("button", name="Open results").click()
    wait_idle(page)
    page.get_by_text("Verdict.").wait_for()
    # the table is a canvas grid: its cells are in the DOM for screen readers, not visible
    page.get_by_text("All readers (pooled)").first.wait_for(state="attached")
    _main(page).locator('[data-testid="stDataFrame"]').first.wait_for()
    _assert_no_errors(page, "Review results")
    _shot(page, source, 10, "study_results")
    mark("study")

    _radio(page, "Side by side", "Metrics & export")
    button = _main(page).get_by_role("button", name="Run report (HTML, offline)")
    button.wait_for(timeout=SLOW)
    wait_idle(page, SLOW)
    # the samples export too (with one training subject, as from 2 IXI volumes, it once said "No samples")
    _main(page).get_by_role("button", name="Samples grid (PNG)").wait_for()
    assert _main(page).get_by_text("No samples to export").count() == 0
    with page.expect_download(timeout=SLOW) as download:
        button.click()
    path = tmp_path / "report.html"
    download.value.save_as(path)
    html = path.read_text(errors="replace")
    assert download.value.suggested_filename == f"{run_name}-report.html"
    assert "<html" in html.lower() and run_name in html and "data:image/png;base64," in html
    _assert_no_errors(page, "Review export")
    _shot(page, source, 11, "export")
    mark("export")
