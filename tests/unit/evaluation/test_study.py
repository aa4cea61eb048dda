"""Reader-study store: blinding order, resume, idempotent answers, concurrency, bad input."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.study import StudyStore, validate_reviewer


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory, trained_vae):
    runs_dir = tmp_path_factory.mktemp("studyruns")
    shutil.copytree(trained_vae, runs_dir / "vae-tiny")
    return runs_dir / "vae-tiny"


@pytest.fixture
def store(run_copy, tmp_path):
    return StudyStore(tmp_path / "runs")


def test_single_study_order_resume_and_duplicates(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.25, seed=1)
    assert study["n_items"] == 8 and store.path.is_file()
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        truths = [r[0] for r in con.execute("SELECT truth FROM items WHERE study_id = ?", (study["study_id"],))]
    assert truths.count("real") == 2 and truths.count("synthetic") == 6
    images = store.study_images(study["study_id"])["images"]
    assert images.shape == (8, 32, 32) and 0 <= images.min() and images.max() <= 1
    order_a, order_b = store.order(study["study_id"], "Ann"), store.order(study["study_id"], "Bob")
    assert sorted(order_a) == list(range(8)) and order_a != order_b
    assert store.order(study["study_id"], "Ann") == order_a  # repeatable: resume sees the same order
    first = store.next_item(study["study_id"], "Ann")
    assert first == {"item_id": order_a[0], "position": 0, "total": 8}
    assert store.record_answer(study["study_id"], "Ann", first["item_id"], "real", 3, 1200) is True
    assert store.record_answer(study["study_id"], "Ann", first["item_id"], "synthetic", 1, 50) is False
    rows = store.answers(study["study_id"])
    assert len(rows) == 1 and rows[0]["answer"] == "real" and rows[0]["response_ms"] == 1200
    assert rows[0]["run"] == "vae-tiny" and rows[0]["model_epoch"] == 2
    # A new store object (a closed tab, a new session) resumes at the second item.
    again = StudyStore(store.runs_dir).next_item(study["study_id"], "Ann")
    assert again == {"item_id": order_a[1], "position": 1, "total": 8}
    for item in order_a[1:]:
        store.record_answer(study["study_id"], "Ann", item, "synthetic", 2)
    assert store.next_item(study["study_id"], "Ann") is None
    result = store.results(study["study_id"])
    assert result["pooled"]["n"] == 8 and result["per_reviewer"]["Ann"]["n"] == 8
    assert result["answers_needed"]["±10 %"] == 97
    csv_text = store.export_csv(study["study_id"])
    assert csv_text.splitlines()[0].startswith("study_id,reviewer,item_id,truth,answer,correct")
    assert len(csv_text.strip().splitlines()) == 9


def test_two_afc_study(store, run_copy):
    study = store.create_study(run_copy, "2afc", n_items=4, seed=2)
    pair = store.study_images(study["study_id"])
    assert pair["left"].shape == pair["right"].shape == (4, 32, 32)
    item = store.next_item(study["study_id"], "Ann")
    assert store.record_answer(study["study_id"], "Ann", item["item_id"], "left") is True
    with pytest.raises(UserError, match="answer must be one of"):
        store.record_answer(study["study_id"], "Ann", item["item_id"], "real")


def test_concurrent_writers_lose_and_double_nothing(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.5, seed=3)
    sid = study["study_id"]
    reviewers = ["Ann", "Bob", "Cleo", "Dev"]
    errors = []

    def answer_all(name, repeat):
        own = StudyStore(store.runs_dir)  # each thread its own store, as each browser session has
        try:
            for _ in range(repeat):  # every answer submitted twice (double click) by two threads each
                for item in own.order(sid, name):
                    own.record_answer(sid, name, item, "real" if item % 2 else "synthetic", 1 + item % 4, 10)
        except Exception as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=answer_all, args=(name, 2)) for name in reviewers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.answers(sid)
    assert len(rows) == len(reviewers) * 8
    assert sorted((r["reviewer"], r["item_id"]) for r in rows) == sorted(
        (name, i) for name in reviewers for i in range(8))
    agreement = store.results(sid)["agreement"]
    assert agreement["readers"] == 4 and agreement["fleiss_kappa"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["", "   ", "<script>", "../etc", "a" * 41, "Ann\x00", "Ann;DROP", "😀"])
def test_odd_reviewer_names_are_refused(name):
    with pytest.raises(UserError, match="name"):
        validate_reviewer(name)


def test_more_real_than_the_test_split_has(store, run_copy):
    with pytest.raises(UserError, match="has only 8"):
        store.create_study(run_copy, "single", n_items=20, real_share=1.0)
    with pytest.raises(UserError, match="has only 8"):
        store.create_study(run_copy, "2afc", n_items=9)
    with pytest.raises(UserError, match="mode"):
        store.create_study(run_copy, "triple", n_items=4)


def test_run_deleted_while_a_study_is_open(store, run_copy, tmp_path):
    doomed = tmp_path / "doomed"
    shutil.copytree(run_copy, doomed)
    study = store.create_study(doomed, "single", n_items=4, real_share=0.5)
    shutil.rmtree(doomed)
    assert store.get_study(study["study_id"])["run_exists"] is False
    item = store.next_item(study["study_id"], "Ann")
    assert store.record_answer(study["study_id"], "Ann", item["item_id"], "real", 2) is True
    with pytest.raises(UserError, match="no longer exists"):
        store.create_study(doomed, "single", n_items=4)


def test_corrupt_database_is_a_clear_error(tmp_path):
    store = StudyStore(tmp_path)
    store.root.mkdir(parents=True)
    store.path.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(UserError, match="corrupt"):
        store.list_studies()


def test_locked_database_keeps_the_answer_for_a_retry(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=4, real_share=0.5)
    sid = study["study_id"]
    item = store.next_item(sid, "Ann")["item_id"]
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    impatient = StudyStore(store.runs_dir, timeout=0.2)
    try:
        with pytest.raises(UserError, match="locked"):
            impatient.record_answer(sid, "Ann", item, "real", 2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert impatient.record_answer(sid, "Ann", item, "real", 2) is True
    assert len(store.answers(sid)) == 1


def test_bad_answers(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=4, real_share=0.5)
    sid = study["study_id"]
    with pytest.raises(UserError, match="confidence"):
        store.record_answer(sid, "Ann", 0, "real", 7)
    with pytest.raises(UserError, match="confidence"):
        store.record_answer(sid, "Ann", 0, "real", None)
    with pytest.raises(UserError, match="no image"):
        store.record_answer(sid, "Ann", 99, "real", 2)
    with pytest.raises(UserError, match="no reader study"):
        store.get_study("nope")
    assert store.answers(sid) == []
