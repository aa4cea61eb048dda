"""Blinded reader study in Chromium: two reviewers in two browser contexts at once, both modes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2e.support import screenshot, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TINY_VAE = {"filters": [8, 16], "latent_dim": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 2}


@pytest.fixture(scope="module")
def review_run(app_env, tmp_path_factory):
    """A tiny finished VAE run inside the server's runs folder."""
    from helpers import make_tiny_dataset

    from core.training import runs, trainer

    dataset = make_tiny_dataset(tmp_path_factory.mktemp("review_ds") / "ds")
    run_dir = runs.prepare_run(Path(app_env["LATENTBRAIN_RUNS"]) / "e2e-review-vae", dataset, "vae", "demo", TINY_VAE)
    trainer.train_run(run_dir)
    return run_dir


def _view(page, name):
    """Pick a view of the Review page (its radio is in the main area; the sidebar has its own)."""
    page.locator('[data-testid="stMain"] [data-testid="stRadio"] label').filter(has_text=name).first.click()
    wait_idle(page)


def _open_study(browser, url, name):
    context = browser.new_context(viewport={"width": 1300, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(240_000)  # a loaded 2-core CI machine reruns slowly
    page.goto(f"{url}/review")
    wait_idle(page)
    _view(page, "Reader study")
    wait_idle(page)
    box = page.get_by_role("textbox", name="Your name (reviewer)")
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    return context, page


def _answer(page, mode, answer):
    group = page.locator('[data-testid="stRadio"]').filter(has_text="This image is" if mode == "single" else "Which image is real?")
    group.locator("label").filter(has_text=answer).first.click()
    page.locator('[data-testid="stRadio"]').filter(has_text="Confidence").locator("label").filter(
        has_text=re.compile(r"^3$")).first.click()
    page.get_by_role("button", name="Submit answer").click()
    wait_idle(page)


@pytest.mark.parametrize("mode", ["single", "2afc"])
def test_two_reviewers_complete_a_blinded_study_at_once(browser, app_url, review_run, app_env, mode):
    from core.evaluation.study import StudyStore

    store = StudyStore(app_env["LATENTBRAIN_RUNS"])
    study = store.create_study(review_run, mode, n_items=4, real_share=0.5)
    sid = study["study_id"]
    sessions = [_open_study(browser, app_url, name) for name in ("Ann", "Bob")]
    try:
        for step in range(4):
            for k, (_, page) in enumerate(sessions):
                page.get_by_text(f"Item {step + 1} of 4").wait_for()
                # Blinding (the whole page against the truth) is test_blinding.py's job.
                assert page.locator('[data-testid="stMain"] img').count() == (1 if mode == "single" else 2)
                answer = ("Real", "Synthetic")[(step + k) % 2] if mode == "single" else ("Left", "Right")[step % 2]
                _answer(page, mode, answer)
        for _, page in sessions:
            page.get_by_text("Done: you answered all 4").wait_for()
        # Each reviewer's answers are stored once each, none lost, none doubled.
        rows = store.answers(sid)
        assert sorted((r["reviewer"], r["item_id"]) for r in rows) == sorted(
            (name, i) for name in ("Ann", "Bob") for i in range(4))
        page = sessions[0][1]
        _view(page, "Study results")  # Ann has answered every item: she sees her progress, the owner the results
        page.get_by_text("4 of 4 images answered").wait_for()
        box = page.get_by_label("Owner key", exact=True)
        box.fill(study["owner_key"])
        page.get_by_role("button", name="Open results").click()
        wait_idle(page)
        page.get_by_text("Verdict.").wait_for()
        # The results table is a canvas data grid: its cells exist in the DOM but are not "visible".
        page.get_by_text("All readers (pooled)").first.wait_for(state="attached")
        if mode == "single":
            screenshot(page, "study.png")
    finally:
        for context, _ in sessions:
            context.close()
        # Closed, so the study's reserved test subject shows again in Side by side below.
        store.close_study(sid, study["owner_key"])


def test_side_by_side_screenshot(app_url, page, review_run):
    page.goto(f"{app_url}/review")
    wait_idle(page)
    page.get_by_text("Test subjects: real | reconstruction | residual").wait_for()
    page.locator('[data-testid="stMain"] img').nth(11).wait_for()
    assert page.locator('[data-testid="stMain"] img').count() >= 12
    screenshot(page, "review.png")
