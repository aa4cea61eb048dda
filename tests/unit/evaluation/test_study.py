"""Reader-study store: blinding order, resume, idempotent answers, concurrency, bad input, and what
only the owner may do: results, answers file, closing; the secret seed and the reserved subjects."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation import study as study_module
from core.evaluation.study import OWNER_ENV, VIEW_SEEDS, StudyStore, validate_reviewer


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory, trained_vae):
    runs_dir = tmp_path_factory.mktemp("studyruns")
    shutil.copytree(trained_vae, runs_dir / "vae-tiny")
    return runs_dir / "vae-tiny"


@pytest.fixture
def store(run_copy, tmp_path):
    return StudyStore(tmp_path / "runs")


def test_single_study_order_resume_and_duplicates(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.25)
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
    result = store.results(study["study_id"], study["owner_key"])
    assert result["pooled"]["n"] == 8 and result["per_reviewer"]["Ann"]["n"] == 8
    assert result["answers_needed"]["±10 %"] == 97
    csv_text = store.export_csv(study["study_id"], study["owner_key"])
    assert csv_text.splitlines()[0].startswith("study_id,reviewer,item_id,truth,answer,correct")
    assert len(csv_text.strip().splitlines()) == 9


def test_two_afc_study(store, run_copy):
    study = store.create_study(run_copy, "2afc", n_items=4)
    pair = store.study_images(study["study_id"])
    assert pair["left"].shape == pair["right"].shape == (4, 32, 32)
    item = store.next_item(study["study_id"], "Ann")
    assert store.record_answer(study["study_id"], "Ann", item["item_id"], "left") is True
    with pytest.raises(UserError, match="answer must be one of"):
        store.record_answer(study["study_id"], "Ann", item["item_id"], "real")


def test_concurrent_writers_lose_and_double_nothing(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.5)
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
    agreement = store.results(sid, study["owner_key"])["agreement"]
    assert agreement["readers"] == 4 and agreement["fleiss_kappa"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["", "   ", "<script>", "../etc", "a" * 41, "Ann\x00", "Ann;DROP", "😀"])
def test_odd_reviewer_names_are_refused(name):
    with pytest.raises(UserError, match="name"):
        validate_reviewer(name)


def test_more_real_than_the_test_split_has(store, run_copy):
    from core.training.runs import RunData

    n_test = len(RunData.open(run_copy).split("test"))
    with pytest.raises(UserError, match=f"has only {n_test}"):
        store.create_study(run_copy, "single", n_items=n_test + 4, real_share=1.0)
    with pytest.raises(UserError, match=f"has only {n_test}"):
        store.create_study(run_copy, "2afc", n_items=n_test + 1)
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


# ---------------------------------------------------------------------------- blinding
def _truths(store, study_id):
    with sqlite3.connect(store.path) as con:
        return [r[0] for r in con.execute("SELECT truth FROM items WHERE study_id = ? ORDER BY item_id",
                                          (study_id,))]


def test_item_ids_carry_no_truth(store, run_copy, monkeypatch):
    # Drawn in order, a single study would number every real image first: ids are shuffled first.
    # The secret seed is pinned here only so the "not in order" checks cannot fail by chance (2 / 70).
    monkeypatch.setattr(study_module, "_secret_seed", lambda: 1234)
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.5)
    truths = _truths(store, study["study_id"])
    assert sorted(truths) == ["real"] * 4 + ["synthetic"] * 4
    assert truths != sorted(truths) and truths != sorted(truths, reverse=True)
    # The images were shuffled with their truth: each real item's image is a slice of the test split.
    from core.evaluation.run import run_context

    test = run_context(run_copy)["test"]["images"]
    images = store.study_images(study["study_id"])["images"]
    for item_id, truth in enumerate(truths):
        is_test_slice = bool(np.any(np.all(np.isclose(test, images[item_id]), axis=(1, 2))))
        assert is_test_slice == (truth == "real")
    # 2AFC: pairs are not numbered in test-slice order either.
    pairs = store.create_study(run_copy, "2afc", n_items=8)
    with sqlite3.connect(store.path) as con:
        sources = [r[0] for r in con.execute("SELECT source FROM items WHERE study_id = ? ORDER BY item_id",
                                             (pairs["study_id"],))]
    test_index = [int(s.split("|")[0].split(":")[1]) for s in sources]
    assert test_index != sorted(test_index)


def test_item_keys_and_image_salts_are_opaque_and_stable(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=6, real_share=0.5)
    sid = study["study_id"]
    keys = [store.item_key(sid, "Ann", i) for i in range(6)]
    assert len(set(keys)) == 6 and all(len(k) == 16 and int(k, 16) >= 0 for k in keys)
    assert keys == [StudyStore(store.runs_dir).item_key(sid, "Ann", i) for i in range(6)]  # stable: reruns
    assert store.item_key(sid, "Bob", 0) != keys[0]  # per reviewer
    other = store.create_study(run_copy, "single", n_items=6, real_share=0.5)
    assert store.item_key(other["study_id"], "Ann", 0) != keys[0]  # a new secret per study
    # Image salts: one length, one per reviewer, item and side, and none equal to a widget key.
    salts = {store.image_salt(sid, name, i, side) for name in ("Ann", "Bob") for i in range(6)
             for side in ("", "left", "right")}
    assert len(salts) == 2 * 6 * 3 and {len(s) for s in salts} == {32} and not {s[:16] for s in salts} & set(keys)
    assert store.image_salt(sid, "Ann", 0) == StudyStore(store.runs_dir).image_salt(sid, "Ann", 0)
    # The secrets never leave the store.
    for shown in (study, store.get_study(sid), *store.list_studies()):
        assert not {"token", "seed", "owner_hash"} & set(shown)
    with pytest.raises(UserError, match="no reader study"):
        store.item_key("nope", "Ann", 0)


def test_results_csv_and_closing_belong_to_the_owner_key(store, run_copy, monkeypatch):
    monkeypatch.delenv(OWNER_ENV, raising=False)
    study = store.create_study(run_copy, "single", n_items=4, real_share=0.5)
    sid, key = study["study_id"], study["owner_key"]
    assert study["closed"] is False and len(key) >= 20
    # Only a salted hash is stored: the key is nowhere in the database files.
    with sqlite3.connect(store.path) as con:
        stored = con.execute("SELECT owner_hash FROM studies WHERE study_id = ?", (sid,)).fetchone()[0]
    assert stored.startswith("pbkdf2_sha256$") and key not in stored
    assert all(key.encode() not in p.read_bytes() for p in store.root.iterdir() if p.is_file())
    # A reader who answered every item, typing their name (or anything else) as a key, gets nothing.
    for item in store.order(sid, "Ann"):
        store.record_answer(sid, "Ann", item, "real", 2)
    assert store.progress(sid, "Ann") == {"answered": 4, "total": 4}
    assert store.progress(sid, "Bob") == {"answered": 0, "total": 4}
    other = store.create_study(run_copy, "single", n_items=4, real_share=0.5)
    for wrong in ("Ann", "", None, key.upper(), key + "x", other["owner_key"]):
        assert store.is_owner(sid, wrong) is False
        with pytest.raises(UserError, match="only the owner"):
            store.results(sid, wrong)
        with pytest.raises(UserError, match="only the owner"):
            store.export_csv(sid, wrong)
        with pytest.raises(UserError, match="only the owner"):
            store.close_study(sid, wrong)
    assert store.get_study(sid)["closed"] is False
    # The owner key opens everything, in a new store object too (another session).
    owner = StudyStore(store.runs_dir)
    assert owner.is_owner(sid, key) and owner.results(sid, key)["pooled"]["n"] == 4
    assert len(owner.export_csv(sid, key).strip().splitlines()) == 5
    # The server's passphrase opens every study; an empty one opens none.
    monkeypatch.setenv(OWNER_ENV, "")
    assert store.is_owner(sid, "") is False
    monkeypatch.setenv(OWNER_ENV, "correct horse battery")
    assert store.is_owner(sid, "correct horse battery") and store.is_owner(other["study_id"], "correct horse battery")
    assert store.close_study(other["study_id"], "correct horse battery") is True
    monkeypatch.delenv(OWNER_ENV)
    assert store.is_owner(sid, "correct horse battery") is False
    # Closing: owner only, once; a closed study takes no answers.
    assert store.close_study(sid, key) is True and store.close_study(sid, key) is False
    assert store.get_study(sid)["closed"] is True
    with pytest.raises(UserError, match="closed"):
        store.record_answer(sid, "Bob", store.next_item(sid, "Bob")["item_id"], "real", 2)
    assert len(store.answers(sid)) == 4


def test_the_study_seed_is_secret_and_never_a_view_seed(store, run_copy, monkeypatch):
    a = store.create_study(run_copy, "single", n_items=6, real_share=0.5)
    b = store.create_study(run_copy, "single", n_items=6, real_share=0.5)
    with sqlite3.connect(store.path) as con:
        seeds = [con.execute("SELECT seed FROM studies WHERE study_id = ?", (s["study_id"],)).fetchone()[0]
                 for s in (a, b)]
    assert seeds[0] != seeds[1] and min(seeds) >= VIEW_SEEDS
    # The views' samples (Side by side, the PNG grid and NIfTI exports: seed 0) are none of the study's.
    from core.training.runs import RunData

    shown = np.asarray(RunData.open(run_copy).load_model().sample(16, seed=0))[..., 0]
    truths = _truths(store, a["study_id"])
    synthetic = store.study_images(a["study_id"])["images"][[t == "synthetic" for t in truths]]
    distance = np.abs(synthetic[:, None] - shown[None]).max(axis=(2, 3))
    assert len(synthetic) == 3 and distance.min() > 1e-4
    # A draw among the views' seeds is thrown away and drawn again.
    draws = iter([0, 999, VIEW_SEEDS - 1, VIEW_SEEDS, 7])
    monkeypatch.setattr(study_module.secrets, "randbits", lambda bits: next(draws))
    assert study_module._secret_seed() == VIEW_SEEDS > 10**6  # above the pages' seed inputs too


@pytest.fixture(scope="module")
def four_subject_run(run_copy, tmp_path_factory):
    """``run_copy``'s model on a dataset of the same size whose test split has 4 subjects of 8 slices."""
    import json

    from helpers import make_tiny_dataset

    base = tmp_path_factory.mktemp("four")
    dataset = make_tiny_dataset(base / "ds", per_split=(48, 8, 32))
    run = Path(shutil.copytree(run_copy, base / "runs" / "vae-four"))
    config = json.loads((run / "config.json").read_text())
    config["dataset"]["path"] = str(dataset)
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_real_images_come_from_subjects_the_open_study_reserves(four_subject_run, tmp_path):
    from core.training.runs import RunData

    store = StudyStore(tmp_path / "runs")
    split = RunData.open(four_subject_run).split("test")
    assert sorted(set(split.subjects)) == ["S008", "S009", "S010", "S011"]
    assert store.reserved_subjects() == set()  # no database yet: nothing reserved, nothing created
    single = store.create_study(four_subject_run, "single", n_items=8, real_share=0.5)
    reserved = store.reserved_subjects()
    assert len(reserved) == 2  # half the test subjects: 4 slices need no more
    truths = _truths(store, single["study_id"])
    images = store.study_images(single["study_id"])["images"]
    for image, truth in zip(images, truths):
        hits = [s for s, real in zip(split.subjects, split.images) if np.array_equal(real, image)]
        assert bool(hits) == (truth == "real") and set(hits) <= reserved
    # A study that needs more slices than half the subjects have reserves more.
    pairs = store.create_study(four_subject_run, "2afc", n_items=20)
    with sqlite3.connect(store.path) as con:
        of_pairs = {r[0] for r in con.execute("SELECT subject FROM reserved WHERE study_id = ?",
                                              (pairs["study_id"],))}
    assert len(of_pairs) == 3 and store.reserved_subjects() == reserved | of_pairs
    # Nothing a page gets from the store names them; closing frees them.
    for shown in (single, pairs, store.get_study(single["study_id"]), *store.list_studies()):
        assert not any(s in str(shown) for s in split.subjects)
    store.close_study(pairs["study_id"], pairs["owner_key"])
    assert store.reserved_subjects() == reserved
    store.close_study(single["study_id"], single["owner_key"])
    assert store.reserved_subjects() == set()


def test_pooled_results_carry_the_crossed_bootstrap(store, run_copy):
    study = store.create_study(run_copy, "single", n_items=8, real_share=0.5)
    sid, key = study["study_id"], study["owner_key"]
    for name in ("Ann", "Bob", "Cleo"):
        for item in store.order(sid, name):  # the same answers from everyone: fully correlated readers
            store.record_answer(sid, name, item, "real" if item % 3 else "synthetic", 2)
    pooled = store.results(sid, key)["pooled"]
    lo, hi = pooled["accuracy_ci95_bootstrap"]
    w_lo, w_hi = pooled["accuracy_ci95"]
    assert pooled["n"] == 24 and hi - lo > w_hi - w_lo
    assert "bootstrap" in pooled["verdict"]
    assert store.results(sid, key)["pooled"]["accuracy_ci95_bootstrap"] == [lo, hi]  # seeded by the study


def test_a_database_from_before_blinding_keys_is_migrated(tmp_path, run_copy, monkeypatch):
    # The schema of the first release: no token, no closed column, no owner key, no reserved subjects.
    root = tmp_path / ".reader_study"
    root.mkdir()
    with sqlite3.connect(root / "answers.sqlite") as con:
        con.executescript("""
            CREATE TABLE studies (study_id TEXT PRIMARY KEY, run TEXT NOT NULL, run_path TEXT NOT NULL,
                mode TEXT NOT NULL, n_items INTEGER NOT NULL, real_share REAL NOT NULL, seed INTEGER NOT NULL,
                model_epoch INTEGER, image_size INTEGER NOT NULL, created TEXT NOT NULL);
            CREATE TABLE items (study_id TEXT NOT NULL, item_id INTEGER NOT NULL, truth TEXT NOT NULL,
                source TEXT NOT NULL, PRIMARY KEY (study_id, item_id));
            CREATE TABLE answers (study_id TEXT NOT NULL, reviewer TEXT NOT NULL, item_id INTEGER NOT NULL,
                truth TEXT NOT NULL, answer TEXT NOT NULL, confidence INTEGER, response_ms INTEGER,
                run TEXT NOT NULL, model_epoch INTEGER, answered_at TEXT NOT NULL,
                PRIMARY KEY (study_id, reviewer, item_id));
            INSERT INTO studies VALUES ('old-single-abc', 'old', '/nowhere', 'single', 2, 0.5, 0, 1, 32, 'then');
            INSERT INTO items VALUES ('old-single-abc', 0, 'real', 'test:0'), ('old-single-abc', 1, 'synthetic', 'sample:0');
        """)
        # A second old study on a run that still exists: its real slice's subject gets reserved.
        con.execute("INSERT INTO studies VALUES ('old-here', 'vae-tiny', ?, 'single', 2, 0.5, 0, 1, 32, 'then')",
                    (str(run_copy),))
        con.execute("INSERT INTO items VALUES ('old-here', 0, 'synthetic', 'sample:0'), ('old-here', 1, 'real', 'test:3')")
    store = StudyStore(tmp_path)
    old = {s["study_id"]: s for s in store.list_studies()}["old-single-abc"]
    assert old["closed"] is False
    key = store.item_key("old-single-abc", "Ann", 0)
    assert key == StudyStore(tmp_path).item_key("old-single-abc", "Ann", 0)  # the token was stored once
    assert store.record_answer("old-single-abc", "Ann", 1, "real", 2) is True
    assert store.reserved_subjects() == {"S008"}  # the tiny dataset's first test subject (slice 3 is its)
    # No owner key was ever made for them: only the server's passphrase opens and closes them.
    monkeypatch.delenv(OWNER_ENV, raising=False)
    assert not store.is_owner("old-single-abc", "Ann")
    with pytest.raises(UserError, match="only the owner"):
        store.close_study("old-single-abc", "Ann")
    monkeypatch.setenv(OWNER_ENV, "the server's passphrase")
    assert store.close_study("old-single-abc", "the server's passphrase") is True
    assert store.results("old-single-abc", "the server's passphrase")["pooled"]["n"] == 1
    assert store.close_study("old-here", "the server's passphrase") is True and store.reserved_subjects() == set()
