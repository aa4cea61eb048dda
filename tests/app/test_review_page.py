"""AppTest for the Review page: side by side, a blinded study (both modes), results for the owner only,
subjects a study reserves, evaluate, bad input."""

from __future__ import annotations

import json
import re
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


def _radio(at, label):
    """A radio by its label: the study's widget keys are opaque tokens, on purpose."""
    return next(r for r in at.radio if r.label == label)


def _answer(at, mode, choice, confidence=3):
    question = "This image is" if mode == "single" else "Which image is real?"
    _radio(at, question).set_value(choice)
    _radio(at, "Confidence" if mode == "single" else "Confidence (optional)").set_value(confidence)
    _click(at, "Submit answer")
    assert not at.exception, at.exception


def _reader(study_id, name):
    at = _page("Reader study")
    at.session_state["review_study"] = study_id
    at.text_input(key="review_reviewer").set_value(name).run()
    return at


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
    # The owner key is shown in this run only, and it is the study's real key.
    [shown_key] = [c.value for c in at.code]
    assert StudyStore(env).is_owner(study_id, shown_key) and not StudyStore(env).is_owner(study_id, "Dr Ann")
    assert "review_reviewer" in repr(at.session_state) and shown_key not in repr(at.session_state)  # not kept
    captions = json.dumps([str(getattr(i, "proto", "")) for i in at.get("image")])
    assert "real" not in captions.lower() and "synthetic" not in captions.lower()

    item = at.session_state["review_shown"][2]
    # No key of the page carries the item id: Streamlit writes keys into the DOM as CSS classes.
    from ui.review import study_keys

    keys = study_keys(StudyStore(env), study_id, "Dr Ann", item)
    assert keys["answer"] in at.session_state and f"review_answer_{item}" not in at.session_state
    assert all(re.fullmatch(r"review_(answer|confidence|form)_[0-9a-f]{16}", k) for k in keys.values())
    second_tab = _reader(study_id, "Dr Ann")  # the same reviewer in another tab, on the same first image
    assert second_tab.session_state["review_shown"][2] == item
    for session, choice in ((at, 0), (second_tab, 1)):
        _answer(session, mode, ["real", "synthetic"][choice] if mode == "single" else ["left", "right"][choice])
    store = StudyStore(env)
    rows = store.answers(study_id, "Dr Ann")
    assert [(r["item_id"], r["confidence"]) for r in rows] == [(item, 3)]  # stored once, the first answer
    assert rows[0]["answer"] == ("real" if mode == "single" else "left") and rows[0]["response_ms"] >= 0
    assert any("already recorded" in i.value for i in second_tab.info)
    # Both sessions moved on; a fresh session with the same name resumes at item 2.
    assert any("Item 2 of 4" in str(p.proto) for p in at.get("progress"))
    again = _reader(study_id, "Dr Ann")
    assert any("Item 2 of 4" in str(p.proto) for p in again.get("progress"))
    assert again.session_state["review_shown"][2] != item
    assert not at.code and not again.code  # the owner key is gone after the run that created the study


def _results_for(at, study_id):
    at.radio(key="review_view").set_value("Study results").run()
    at.selectbox(key="review_results_study").set_value(study_id).run()
    assert not at.exception, at.exception
    return at


def _enter_key(at, key):
    at.text_input(key="review_owner_key_input").set_value(key)
    _click(at, "Open results")
    assert not at.exception, at.exception


def _shows_results(at) -> bool:
    return any("Verdict" in m.value for m in at.markdown) or bool(at.dataframe) or bool(at.get("download_button"))


def test_results_csv_and_closing_open_to_the_owner_key_only(env, monkeypatch):
    from core.evaluation.study import OWNER_ENV, StudyStore

    monkeypatch.delenv(OWNER_ENV, raising=False)
    store = StudyStore(env)
    study = store.create_study(env / "vae-tiny", "single", n_items=3, real_share=0.5)
    study_id, key = study["study_id"], study["owner_key"]
    ann = _reader(study_id, "Ann")
    _answer(ann, "single", "real")
    # Halfway: her own progress, nothing else; no close button for a reader.
    _results_for(ann, study_id)
    assert any("belong to its owner" in i.value for i in ann.info)
    assert any("1 of 3 images answered" in m.value for m in ann.markdown)
    assert not _shows_results(ann) and not [b for b in ann.button if b.label == "Close study"]
    # Finished: still nothing, and neither her name nor a guess opens it.
    ann.radio(key="review_view").set_value("Reader study").run()
    for _ in range(2):
        _answer(ann, "single", "synthetic")
    assert any("Done: you answered all 3" in x.value and "owner" in x.value for x in ann.success)
    _results_for(ann, study_id)
    assert any("3 of 3 images answered" in m.value for m in ann.markdown) and not _shows_results(ann)
    for wrong in ("Ann", "x", key[:-1]):
        _enter_key(ann, wrong)
        assert any("not the owner key" in e.value for e in ann.error) and not _shows_results(ann)
    # Another reader sees only their own progress (none), not Ann's.
    bob = _results_for(_reader(study_id, "Bob"), study_id)
    assert any("0 of 3 images answered" in m.value for m in bob.markdown) and not _shows_results(bob)
    # The owner key opens the verdict, both pooled intervals, the CSV and closing, in this tab only.
    owner = _results_for(_page(), study_id)
    _enter_key(owner, key)
    assert any("Verdict" in m.value for m in owner.markdown) and len(owner.get("download_button")) == 1
    table = owner.dataframe[0].value
    assert "95 % CI (readers × images bootstrap)" in table.columns and "95 % CI (Wilson)" in table.columns
    assert not _shows_results(_results_for(_page(), study_id))  # a new tab has to enter the key again
    close = next(b for b in owner.button if b.label == "Close study")
    assert close.disabled  # closing is deliberate: the checkbox first
    owner.checkbox(key="review_close_sure").check().run()
    _click(owner, "Close study")
    assert not owner.exception, owner.exception
    assert store.get_study(study_id)["closed"] is True
    assert any("Verdict" in m.value for m in owner.markdown)
    # Lock: the owner's tab forgets the key (before it is handed to a reader).
    _click(owner, "Lock the results in this tab")
    assert not _shows_results(owner)
    # A closed study takes no more answers, and its results stay the owner's.
    bob.radio(key="review_view").set_value("Reader study").run()
    assert any("is closed" in i.value for i in bob.info) and not [r for r in bob.radio if r.label == "This image is"]
    assert not _shows_results(_results_for(bob, study_id))
    # The server's passphrase opens any study.
    monkeypatch.setenv(OWNER_ENV, "server passphrase")
    _enter_key(bob, "server passphrase")
    assert any("Verdict" in m.value for m in bob.markdown)


def test_side_by_side_hides_the_subjects_an_open_study_reserves(env, monkeypatch):
    from core.evaluation.study import OWNER_ENV, StudyStore
    from core.training.runs import RunData

    monkeypatch.setenv(OWNER_ENV, "server passphrase")
    store = StudyStore(env)
    for s in store.list_studies():  # studies left open by the tests above
        store.close_study(s["study_id"], "server passphrase")
    subjects = sorted(set(RunData.open(env / "vae-tiny").split("test").subjects))
    study = store.create_study(env / "vae-tiny", "single", n_items=4, real_share=0.5)
    [hidden] = store.reserved_subjects()  # half the test subjects, rounded up: one of the tiny dataset's
    at = _page()
    assert not at.exception, at.exception
    assert any(f"1 of {len(subjects)} test subjects is hidden" in c.value for c in at.caption)
    texts = [c.value for c in at.caption] + [i.value for i in at.info] + [m.value for m in at.markdown]
    assert hidden not in str(texts)  # never named
    offered = [o for s in at.selectbox if s.label == "Test subject" for o in s.options]
    assert not any(hidden in o for o in offered)
    if len(subjects) == 1:
        assert any("Every test subject of this run is reserved" in i.value for i in at.info)
        assert not any("Real (test subject)" in m.value for m in at.markdown)
    store.close_study(study["study_id"], study["owner_key"])
    at.run()
    assert any("Real (test subject)" in m.value for m in at.markdown)
    assert [o.split(" (")[0] for o in at.selectbox(key="review_subject").options] == subjects


def test_study_images_are_salted_per_reviewer_not_in_their_pixels():
    import io

    import numpy as np
    from PIL import Image

    from ui.review import blind_png

    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    ann, bob = blind_png(image, 5, "a" * 32), blind_png(image, 5, "b" * 32)
    assert ann != bob and len(ann) == len(bob)  # other bytes (so another address), one size
    pixels = [np.asarray(Image.open(io.BytesIO(png))) for png in (ann, bob, blind_png(image, 5))]
    assert all(np.array_equal(pixels[0], p) for p in pixels[1:]) and pixels[0].shape == (160, 160)


def test_odd_reviewer_name_is_refused_and_the_results_view_draws(env):
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
    at.checkbox(key="review_eval_quick").check()  # a first look: the full judge's power is tested elsewhere
    next(b for b in at.button if b.label == "Evaluate").click()
    at.run(timeout=600)
    assert not at.exception, at.exception
    stored = json.loads((env / "vae-tiny" / "evaluation.json").read_text())
    assert stored["quick"] is True and stored["c2st"]["n_folds"] <= 2
    assert any("Evaluation finished" in s.value for s in at.success)
    assert any(m.value.startswith("Quick look") for m in [*at.success, *at.warning])
    assert len(at.dataframe) >= 1
    figures = [str(v) for frame in at.dataframe for v in frame.value.iloc[:, 0]]
    assert any(f.startswith("Checkerboard index of samples") for f in figures), figures
    # The anatomy-aware figures have their rows, each with a value (the tiny run's held-out side
    # has 2 subjects: enough for a by-subject spread).
    table = next(frame.value for frame in at.dataframe if "Two-sample accuracy, anatomy-aware space"
                 in [str(v) for v in frame.value.iloc[:, 0]])
    for label in ("Two-sample accuracy, anatomy-aware space", "Precision, anatomy space (realism)",
                  "Recall, anatomy space (variety)", "Density, anatomy space", "Coverage, anatomy space"):
        row = table[table.iloc[:, 0] == label]
        assert len(row) == 1 and row.iloc[0, 1] is not None and row.iloc[0, 1] == row.iloc[0, 1], (label, table)
    assert stored["c2st_anatomy"]["accuracy"] is not None and "precision" in stored
