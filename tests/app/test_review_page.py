"""AppTest for the Review page: side by side, a blinded study (both modes), results, evaluate, bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from streamlit.testing.v1 import AppTest

APP = "../../app.py"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_vae_run):
    """A runs folder with one finished tiny VAE run on a 32-px dataset (8 test slices): a copy of the
    session's ``tiny_vae_run`` (TINY_VAE on ``tiny_dataset``), so this module trains nothing itself."""
    base = tmp_path_factory.mktemp("review")
    shutil.copytree(tiny_vae_run, base / "runs" / "vae-tiny")
    return base / "runs"


@pytest.fixture
def env(runs_dir, monkeypatch):
    # The cache stays the session's (tests/conftest.py): the Evaluate button's slice-position net for the
    # tiny dataset is then trained once per session, not once here and again in the unit tests.
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(runs_dir))
    return runs_dir


def _page(view: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = ""
    at.run()
    at.switch_page("pages/review.py").run()
    if view:
        at.radio(key="review_view").set_value(view).run()
    return at


def _click(at, label, timeout=120):
    next(b for b in at.button if b.label == label).click()
    at.run(timeout=timeout)


def test_no_runs_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(tmp_path / "none"))
    at = _page()
    assert not at.exception
    assert any("Train" in i.value for i in at.info)


def test_side_by_side_shows_real_reconstruction_residual(env):
    at = _page()
    assert not at.exception, at.exception
    images = at.get("image")
    # 3 slices x (real, reconstruction, residual, colour bar) + 8 sample|neighbour pairs
    assert len(images) >= 3 * 4 + 8
    at.slider(key="review_level").set_value(0.4).run()
    at.select_slider(key="review_zoom").set_value(2).run()
    assert not at.exception


@pytest.mark.parametrize("mode", ["single", "2afc"])
def test_blinded_study_answers_once_and_resumes(env, mode):
    from core.evaluation.study import StudyStore

    at = _page("Reader study")
    at.text_input(key="review_reviewer").set_value("Dr Ann").run()
    at.radio(key="review_study_mode").set_value(mode)
    at.number_input(key="review_study_count").set_value(4)
    _click(at, "Create study")
    assert not at.exception, at.exception
    study_id = at.session_state["review_study"]
    assert mode in study_id
    captions = json.dumps([str(getattr(i, "proto", "")) for i in at.get("image")])
    assert "real" not in captions.lower() and "synthetic" not in captions.lower()

    second_tab = _page("Reader study")  # the same reviewer in another tab, on the same first image
    second_tab.session_state["review_study"] = study_id
    second_tab.text_input(key="review_reviewer").set_value("Dr Ann").run()
    item = at.session_state["review_shown"][2]
    assert second_tab.session_state["review_shown"][2] == item
    for session, choice in ((at, 0), (second_tab, 1)):
        session.radio(key=f"review_answer_{item}").set_value(["real", "synthetic"][choice] if mode == "single"
                                                             else ["left", "right"][choice])
        session.radio(key=f"review_confidence_{item}").set_value(3)
        _click(session, "Submit answer")
        assert not session.exception, session.exception
    store = StudyStore(env)
    rows = store.answers(study_id, "Dr Ann")
    assert [(r["item_id"], r["confidence"]) for r in rows] == [(item, 3)]  # stored once, the first answer
    assert rows[0]["answer"] == ("real" if mode == "single" else "left") and rows[0]["response_ms"] >= 0
    assert any("already recorded" in i.value for i in second_tab.info)
    # Both sessions moved on; a fresh session with the same name resumes at item 2.
    assert any("Item 2 of 4" in str(p.proto) for p in at.get("progress"))
    again = _page("Reader study")
    again.session_state["review_study"] = study_id
    again.text_input(key="review_reviewer").set_value("Dr Ann").run()
    assert any("Item 2 of 4" in str(p.proto) for p in again.get("progress"))
    assert again.session_state["review_shown"][2] != item


def test_odd_reviewer_name_is_refused_and_results_show_the_verdict(env):
    at = _page("Reader study")
    at.text_input(key="review_reviewer").set_value("<script>alert(1)</script>").run()
    if not at.error:  # no study yet: create one so the name is checked
        at.number_input(key="review_study_count").set_value(4)
        _click(at, "Create study")
    assert any("not allowed" in e.value for e in at.error)
    assert not at.exception
    results = _page("Study results")
    assert not results.exception, results.exception


def test_evaluate_button_writes_evaluation_json(env):
    at = _page("Metrics & export")
    assert any("not been evaluated" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Evaluate").click()
    at.run(timeout=600)
    assert not at.exception, at.exception
    assert (env / "vae-tiny" / "evaluation.json").is_file()
    assert any("Evaluation finished" in s.value for s in at.success)
    assert len(at.dataframe) >= 1
