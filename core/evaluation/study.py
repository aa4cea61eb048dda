"""Blinded reader study: studies, their fixed image sets, and answers in SQLite (WAL).

Everything lives under ``<runs folder>/.reader_study/``: ``answers.sqlite`` (WAL mode) and
one ``<study id>.npz`` per study with its images, so a study keeps working when its run is
deleted.  A study is a run, a mode (``single``: real or synthetic + confidence 1–4;
``2afc``: a real and a synthetic slice side by side, pick the real one), an image count and
a real share.  Each reviewer sees the study's items in their own random order.

Blinding: items are shuffled before they are numbered, so an item id says nothing about its
truth; each study has a secret ``token`` from which :meth:`StudyStore.item_key` derives an
opaque per-reviewer, per-item key for anything the browser sees (widget keys become CSS
classes there) and :meth:`StudyStore.image_salt` a per-reviewer salt for the image files.

What a reader could otherwise use to unblind a study, and what closes it:

- *the results*: truth, statistics, the answers file and closing the study belong to the
  study's owner only, who holds the **owner key** that :meth:`StudyStore.create_study`
  returns once (only a salted PBKDF2 hash of it is stored), or the server's passphrase in the
  environment variable :data:`OWNER_ENV`.  A reviewer's name unlocks nothing.
- *the samples*: a study draws everything (which real slices, its samples, the shuffle, each
  reviewer's order) from a **secret seed** of its own, stored here and never shown, and never
  below :data:`VIEW_SEEDS`: every seed a page samples with or lets a user type lies there, so
  no view can show a study's synthetic images.
- *the real images*: they come from test subjects the study **reserves** when it is created;
  :meth:`StudyStore.reserved_subjects` names them while the study is open, and the pages
  hide those subjects wherever they show a run's test slices.

Answers are one row each, written at once (autocommit), with the primary key
``(study, reviewer, item)``: a double click or a resubmit is ignored, never stored twice.
Each call opens its own connection, so threads, Streamlit sessions and processes can write
side by side; SQLite's lock plus a busy timeout serialises them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
import os
import re
import secrets
import sqlite3
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.errors import UserError

__all__ = ["MODES", "STUDY_DIR", "DB_NAME", "OWNER_ENV", "VIEW_SEEDS", "StudyStore", "validate_reviewer"]

MODES = ("single", "2afc")
STUDY_DIR = ".reader_study"
DB_NAME = "answers.sqlite"
_REVIEWER_RE = re.compile(r"^[\w][\w .'\-]{0,39}$")
#: Environment variable holding the server's owner passphrase: it opens every study's results.
OWNER_ENV = "LATENTBRAIN_STUDY_OWNER_KEY"
#: Seeds 0 .. VIEW_SEEDS - 1 belong to the pages: Side by side and the exports sample with seed 0,
#: the Latent and Train sample grids take a typed seed up to 10**6.  A study's secret seed is drawn
#: again until it lies above them, so no view can repeat its samples.
VIEW_SEEDS = 10**6 + 1
_KDF = "pbkdf2_sha256"
_KDF_ITERATIONS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_id TEXT PRIMARY KEY, run TEXT NOT NULL, run_path TEXT NOT NULL, mode TEXT NOT NULL,
    n_items INTEGER NOT NULL, real_share REAL NOT NULL, seed INTEGER NOT NULL,
    model_epoch INTEGER, image_size INTEGER NOT NULL, created TEXT NOT NULL,
    token TEXT, closed INTEGER NOT NULL DEFAULT 0, owner_hash TEXT,
    subjects_reserved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reserved (
    study_id TEXT NOT NULL, subject TEXT NOT NULL, PRIMARY KEY (study_id, subject)
);
CREATE TABLE IF NOT EXISTS items (
    study_id TEXT NOT NULL, item_id INTEGER NOT NULL, truth TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (study_id, item_id)
);
CREATE TABLE IF NOT EXISTS answers (
    study_id TEXT NOT NULL, reviewer TEXT NOT NULL, item_id INTEGER NOT NULL,
    truth TEXT NOT NULL, answer TEXT NOT NULL, confidence INTEGER, response_ms INTEGER,
    run TEXT NOT NULL, model_epoch INTEGER, answered_at TEXT NOT NULL,
    PRIMARY KEY (study_id, reviewer, item_id)
);
"""

# Columns added after the first release: a database made before them gets them by ALTER TABLE
# (old studies then get a fresh secret token and stay open; they have no owner key, so only
# the passphrase in OWNER_ENV opens their results; their reserved subjects are worked out from
# their items' sources where the run is still there).
_ADDED_STUDY_COLUMNS = {"token": "TEXT", "closed": "INTEGER NOT NULL DEFAULT 0", "owner_hash": "TEXT",
                        "subjects_reserved": "INTEGER NOT NULL DEFAULT 0"}
#: Keys already checked against a study's hash in this process: (database, study, SHA-256 of the
#: key).  The key derivation is slow on purpose; the Results view checks on every rerun.
_VERIFIED: set[tuple[str, str, str]] = set()


def validate_reviewer(name) -> str:
    """A reviewer name: letters, digits, space, ``. ' - _``, 1–40 characters; returns it trimmed.

    >>> validate_reviewer("  Dr. Anna Müller ")
    'Dr. Anna Müller'
    """
    text = unicodedata.normalize("NFC", str(name or "")).strip()
    if not text:
        raise UserError("enter your name (letters, digits, spaces, . ' - _) to start the study")
    if not _REVIEWER_RE.fullmatch(text):
        bad = sorted({c for c in text if not (c.isalnum() or c in " .'-_")})
        shown = ", ".join(repr(c) for c in bad) or "its first character"
        raise UserError(f"reviewer name {text[:40]!r} is not allowed ({shown}): use 1–40 letters, digits, "
                        "spaces and . ' - _, starting with a letter or digit")
    return text


def _order_seed(seed: int, reviewer: str) -> list[int]:
    digest = hashlib.sha256(reviewer.encode()).digest()
    return [int(seed), int.from_bytes(digest[:8], "little")]


class StudyStore:
    """The reader-study database and image sets under ``runs_dir/.reader_study``.

    Args:
        runs_dir: the runs folder (default :func:`core.settings.runs_dir`).
        timeout: seconds to wait for another writer's lock before reporting the database busy.
    """

    def __init__(self, runs_dir: str | Path | None = None, timeout: float = 10.0):
        from core import settings

        self.runs_dir = Path(runs_dir) if runs_dir is not None else settings.runs_dir()
        self.root = self.runs_dir / STUDY_DIR
        self.path = self.root / DB_NAME
        self.timeout = timeout
        self._ready = False

    # ------------------------------------------------------------------ connection
    @contextmanager
    def _connect(self, write: bool = False):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the reader-study folder {self.root}: {exc}") from exc
        con = None
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            con.row_factory = sqlite3.Row
            if not self._ready:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise UserError(f"scores database {self.path} cannot use WAL mode (got {mode})")
                con.executescript(_SCHEMA)
                _migrate(con)
                self._ready = True
            con.execute("PRAGMA synchronous=NORMAL")
            if write:
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(con)
            if "locked" in str(exc) or "busy" in str(exc):
                raise UserError(f"the scores database {self.path} is locked by another program; nothing was "
                                "saved — try again in a moment") from exc
            raise UserError(f"the scores database {self.path} cannot be used: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            _rollback(con)
            raise UserError(f"the scores database {self.path} is corrupt ({exc}): move it away to start a new "
                            "one (the answers in it stay in that file)") from exc
        except BaseException:
            _rollback(con)
            raise
        finally:
            if con is not None:
                con.close()

    # ------------------------------------------------------------------ studies
    def create_study(self, run_dir: str | Path, mode: str = "single", n_items: int = 20,
                     real_share: float = 0.5, model=None) -> dict:
        """Draw a study's images (test slices + samples), store them and return the study.

        Everything random in the study (its real slices, its samples, which side is real in
        2AFC, the shuffle, each reviewer's order) comes from a secret seed drawn here, stored
        and never shown (:data:`VIEW_SEEDS`).  The real slices come from test subjects the study
        reserves (:meth:`reserved_subjects`): a random half of the test subjects, more where the
        study needs more slices than they have.

        The returned study carries ``owner_key``: the secret that opens its results, its answers
        file and closing it (:meth:`is_owner`).  It is returned this once; only a salted hash of
        it is stored, so a lost key cannot be shown again (the passphrase in :data:`OWNER_ENV`
        still opens the study).

        Raises UserError for a bad mode, count or share, a run without a model, and a study
        that needs more real slices than the test split has.
        """
        from core.training import runs

        if mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or not 2 <= n_items <= 1000:
            raise UserError(f"image count must be a whole number from 2 to 1000, got {n_items!r}")
        if not 0.0 <= float(real_share) <= 1.0:
            raise UserError(f"real share must lie in [0, 1], got {real_share}")
        run_dir = Path(run_dir)
        if not (run_dir / runs.CONFIG).is_file():
            raise UserError(f"run {run_dir.name} no longer exists (or is not a run folder): pick another run")
        data = runs.RunData.open(run_dir)
        if not data.has_split("test"):
            raise UserError(f"the dataset of run {run_dir.name} has no test images: a study shows test slices")
        split = data.split("test")
        test = split.images
        n_items = int(n_items)
        if mode == "single":
            n_real = int(round(n_items * float(real_share)))
            n_syn = n_items - n_real
        else:
            n_real = n_syn = n_items
            real_share = 0.5
        if n_real > len(test):
            raise UserError(f"the study asks for {n_real} real slices but the test split of run {run_dir.name} "
                            f"has only {len(test)}: lower the count or the real share")
        model = model or data.load_model()
        seed = _secret_seed()
        rng = np.random.default_rng(seed)
        reserved = _reserve_subjects(list(split.subjects), n_real, rng)
        pool = np.flatnonzero(np.isin(np.asarray(split.subjects, dtype=object), list(reserved)))
        real_idx = np.sort(rng.choice(pool, n_real, replace=False))
        synthetic = np.asarray(model.sample(n_syn, seed=seed))[..., 0] if n_syn else np.zeros((0, *test.shape[1:]))
        real = np.asarray(test[real_idx], dtype=np.float32)
        if mode == "single":
            images = np.concatenate([real, synthetic]).astype(np.float32)
            truth = ["real"] * n_real + ["synthetic"] * n_syn
            source = [f"test:{i}" for i in real_idx] + [f"sample:{i}" for i in range(n_syn)]
        else:
            real_left = rng.random(n_items) < 0.5
            left = np.where(real_left[:, None, None], real, synthetic).astype(np.float32)
            right = np.where(real_left[:, None, None], synthetic, real).astype(np.float32)
            truth = ["left" if r else "right" for r in real_left]
            source = [f"test:{i}|sample:{k}" for k, i in enumerate(real_idx)]
        # Shuffle before the items get their ids: drawn as above, ids would run reals first (single)
        # or in test-slice order (2AFC), and an id that reaches a page or a file would give the answer.
        shuffle = rng.permutation(n_items)
        truth, source = [truth[i] for i in shuffle], [source[i] for i in shuffle]
        arrays = {"images": images[shuffle]} if mode == "single" else {"left": left[shuffle], "right": right[shuffle]}
        study_id = f"{run_dir.name[:40]}-{mode}-{secrets.token_hex(3)}"
        owner_key = secrets.token_urlsafe(18)
        study = {"study_id": study_id, "run": run_dir.name, "run_path": str(run_dir.resolve()), "mode": mode,
                 "n_items": n_items, "real_share": float(real_share), "seed": seed,
                 "model_epoch": runs.read_status(run_dir).get("epoch"), "image_size": int(test.shape[1]),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "token": secrets.token_hex(16), "closed": 0,
                 "owner_hash": _hash_key(owner_key), "subjects_reserved": 1}
        from core.atomic import atomic_path

        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / f"{study_id}.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        with self._connect(write=True) as con:
            # Named columns: a migrated database has the added ones at the end, in whatever order.
            con.execute(f"INSERT INTO studies ({', '.join(study)}) VALUES ({', '.join(':' + k for k in study)})",
                        study)
            con.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                            [(study_id, i, t, s) for i, (t, s) in enumerate(zip(truth, source))])
            con.executemany("INSERT INTO reserved VALUES (?, ?)", [(study_id, s) for s in sorted(reserved)])
        return {**_public(study), "owner_key": owner_key}

    def list_studies(self) -> list[dict]:
        """Every study, newest first, with its answer and reviewer counts."""
        if not self.path.is_file():
            return []
        with self._connect() as con:
            rows = con.execute(
                "SELECT s.*, (SELECT COUNT(*) FROM answers a WHERE a.study_id = s.study_id) AS n_answers, "
                "(SELECT COUNT(DISTINCT reviewer) FROM answers a WHERE a.study_id = s.study_id) AS n_reviewers "
                "FROM studies s ORDER BY s.rowid DESC").fetchall()
        return [_public(dict(r)) for r in rows]

    def get_study(self, study_id: str) -> dict:
        """One study's settings (without its secrets); UserError if unknown."""
        study = _public(self._row(study_id))
        study["run_exists"] = Path(study["run_path"]).is_dir()
        return study

    def _row(self, study_id: str) -> dict:
        """The study's whole row, secrets included: for this module only."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM studies WHERE study_id = ?", (study_id,)).fetchone()
        if row is None:
            raise UserError(f"there is no reader study {study_id!r}")
        return dict(row)

    def item_key(self, study_id: str, reviewer: str, item_id: int) -> str:
        """An opaque key for one item as one reviewer sees it, for widget and form keys in the browser.

        HMAC-SHA256 of the study's secret token over (reviewer, item), 16 hex digits: stable across
        reruns (a widget keeps its state), different for every item and reviewer, and without the
        token it tells nothing about the item's id, position or truth.
        """
        message = f"{validate_reviewer(reviewer)}\x1f{int(item_id)}".encode()
        return hmac.new(self._token(study_id), message, hashlib.sha256).hexdigest()[:16]

    def image_salt(self, study_id: str, reviewer: str, item_id: int, side: str = "") -> str:
        """32 hex digits that make one reviewer's copy of an item's image a file of its own.

        Streamlit serves an image under a hash of its bytes: the same bytes for every reviewer
        would give every reviewer the same address, and one reader's addresses (with any truth
        they learn for them) would map everybody's images.  Written into the image's metadata
        (never its pixels), this salt makes the bytes, and so the address, differ per reviewer
        and item (``side``: ``left``/``right`` in 2AFC); one length for all, so the file sizes
        stay equal.  HMAC-SHA256 of the study's secret token, like :meth:`item_key`.
        """
        message = f"image\x1f{validate_reviewer(reviewer)}\x1f{int(item_id)}\x1f{side}".encode()
        return hmac.new(self._token(study_id), message, hashlib.sha256).hexdigest()[:32]

    def _token(self, study_id: str) -> bytes:
        with self._connect() as con:
            row = con.execute("SELECT token FROM studies WHERE study_id = ?", (study_id,)).fetchone()
        if row is None:
            raise UserError(f"there is no reader study {study_id!r}")
        return str(row["token"]).encode()

    # ------------------------------------------------------------------ owner
    def is_owner(self, study_id: str, key: str | None) -> bool:
        """Whether ``key`` opens the study: its owner key, or the passphrase in :data:`OWNER_ENV`.

        Both comparisons take constant time (``hmac.compare_digest``); the owner key is checked
        against its salted PBKDF2 hash.  A reviewer's name is never a key.
        """
        row = self._row(study_id)  # UserError for an unknown study
        key = str(key or "")
        if not key:
            return False
        passphrase = os.environ.get(OWNER_ENV, "")
        if passphrase and hmac.compare_digest(key.encode(), passphrase.encode()):
            return True
        stored = row.get("owner_hash")
        if not stored:
            return False
        seen = (str(self.path), study_id, hashlib.sha256(key.encode()).hexdigest())
        if seen in _VERIFIED:
            return True
        if _check_key(key, stored):
            _VERIFIED.add(seen)
            return True
        return False

    def _require_owner(self, study_id: str, key: str | None, action: str) -> None:
        if not self.is_owner(study_id, key):
            raise UserError(f"only the owner of study {study_id} can {action}: enter its owner key (shown once "
                            f"when the study was created) or the server's passphrase ({OWNER_ENV})")

    def close_study(self, study_id: str, owner_key: str | None) -> bool:
        """Close a study (owner only): it takes no more answers, and its reserved subjects show again.

        True if this call closed it, False if it was closed already; UserError for a wrong key.
        """
        self._require_owner(study_id, owner_key, "close it")
        with self._connect(write=True) as con:
            cursor = con.execute("UPDATE studies SET closed = 1 WHERE study_id = ? AND closed = 0", (study_id,))
            return cursor.rowcount == 1

    def reserved_subjects(self) -> set[str]:
        """Test subjects reserved by open studies: the pages hide them wherever they show test slices.

        A subject id, not a (run, subject) pair: runs on the same or a rebuilt dataset show the
        same person's slices, so while any open study draws its real images from a subject, no
        run shows that subject.
        """
        if not self.path.is_file():
            return set()
        with self._connect() as con:
            rows = con.execute("SELECT DISTINCT r.subject FROM reserved r JOIN studies s ON s.study_id = r.study_id "
                               "WHERE s.closed = 0").fetchall()
        return {str(r[0]) for r in rows}

    def study_images(self, study_id: str) -> dict[str, np.ndarray]:
        """The study's images: ``{"images": (n, H, W)}`` (single) or ``{"left", "right"}`` (2AFC)."""
        path = self.root / f"{study_id}.npz"
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise UserError(f"the images of study {study_id} ({path}) are missing or corrupt: create the study "
                            "again") from exc

    # ------------------------------------------------------------------ answering
    def order(self, study_id: str, reviewer: str) -> list[int]:
        """The item ids in this reviewer's random (but repeatable) order, from the study's secret seed."""
        row = self._row(study_id)
        rng = np.random.default_rng(_order_seed(row["seed"], validate_reviewer(reviewer)))
        return [int(i) for i in rng.permutation(row["n_items"])]

    def answered(self, study_id: str, reviewer: str) -> set[int]:
        with self._connect() as con:
            rows = con.execute("SELECT item_id FROM answers WHERE study_id = ? AND reviewer = ?",
                               (study_id, validate_reviewer(reviewer))).fetchall()
        return {int(r[0]) for r in rows}

    def progress(self, study_id: str, reviewer: str) -> dict:
        """``{answered, total}`` of one reviewer: all a reader is told about a study while it runs."""
        return {"answered": len(self.answered(study_id, reviewer)), "total": int(self._row(study_id)["n_items"])}

    def next_item(self, study_id: str, reviewer: str) -> dict | None:
        """``{item_id, position, total}`` of the reviewer's first unanswered item, or None when done.

        Resumes where the reviewer stopped: answered items are skipped.
        """
        order = self.order(study_id, reviewer)
        done = self.answered(study_id, reviewer)
        for position, item_id in enumerate(order):
            if item_id not in done:
                return {"item_id": item_id, "position": len(done), "total": len(order)}
        return None

    def record_answer(self, study_id: str, reviewer: str, item_id: int, answer: str,
                      confidence: int | None = None, response_ms: int | None = None) -> bool:
        """Store one answer at once; True if stored, False if this reviewer had already answered it."""
        reviewer = validate_reviewer(reviewer)
        study = self.get_study(study_id)
        allowed = ("real", "synthetic") if study["mode"] == "single" else ("left", "right")
        if answer not in allowed:
            raise UserError(f"answer must be one of {allowed}, got {answer!r}")
        if confidence is not None:
            if isinstance(confidence, bool) or int(confidence) != confidence or not 1 <= int(confidence) <= 4:
                raise UserError(f"confidence must be 1, 2, 3 or 4, got {confidence!r}")
            confidence = int(confidence)
        elif study["mode"] == "single":
            raise UserError("choose a confidence from 1 (guess) to 4 (certain)")
        if study["closed"]:
            raise UserError(f"study {study_id} is closed: its results are open to everyone, so it takes no more "
                            "answers; set up a new study to go on")
        response_ms = None if response_ms is None else max(0, int(response_ms))
        with self._connect(write=True) as con:
            item = con.execute("SELECT truth FROM items WHERE study_id = ? AND item_id = ?",
                               (study_id, int(item_id))).fetchone()
            if item is None:
                raise UserError(f"study {study_id} has no image {item_id}")
            cursor = con.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (study_id, reviewer, int(item_id), item["truth"], answer, confidence, response_ms,
                 study["run"], study["model_epoch"], time.strftime("%Y-%m-%dT%H:%M:%S")))
            return cursor.rowcount == 1

    # ------------------------------------------------------------------ results
    def answers(self, study_id: str, reviewer: str | None = None) -> list[dict]:
        """Answer rows of a study (optionally of one reviewer), in the order they were given.

        The rows carry the truth: for the statistics and the owner's views, never for a reader's page.
        """
        query = "SELECT * FROM answers WHERE study_id = ?"
        params: tuple = (study_id,)
        if reviewer is not None:
            query += " AND reviewer = ?"
            params += (validate_reviewer(reviewer),)
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY answered_at, rowid", params).fetchall()
        return [dict(r) for r in rows]

    def results(self, study_id: str, owner_key: str | None, half_widths=(0.10, 0.05)) -> dict:
        """Per-reviewer and pooled statistics, agreement, and the answers needed per interval width.

        The pooled accuracy gets a crossed bootstrap interval (readers and items resampled) in
        ``pooled["accuracy_ci95_bootstrap"]``, and its verdict reads that interval: readers who
        answer the same images are not independent, so the pooled Wilson interval
        (``accuracy_ci95``, kept for comparison) is too narrow.

        Owner only (:meth:`is_owner`): UserError for any other key.
        """
        from core.evaluation.study_stats import (
            agreement, answers_needed, crossed_bootstrap_interval, summarise_answers, verdict,
        )

        self._require_owner(study_id, owner_key, "see its results")
        study = self.get_study(study_id)
        rows = self.answers(study_id)
        reviewers = sorted({r["reviewer"] for r in rows})
        pooled = summarise_answers(rows, study["mode"])
        if rows:
            interval = crossed_bootstrap_interval(rows, seed=int(self._row(study_id)["seed"]))
            pooled["accuracy_ci95_bootstrap"] = list(interval)
            pooled["verdict"] = verdict(pooled["correct"], pooled["n"], interval=interval,
                                        interval_name="readers × images bootstrap 95 % CI")
        return {
            "study": study, "pooled": pooled,
            "per_reviewer": {name: summarise_answers([r for r in rows if r["reviewer"] == name], study["mode"])
                             for name in reviewers},
            "agreement": agreement(rows),
            "answers_needed": {f"±{round(h * 100)} %": answers_needed(h, 0.5) for h in half_widths},
        }

    def export_csv(self, study_id: str, owner_key: str | None) -> str:
        """All answers of a study as CSV text (one row per answer, with a ``correct`` column); owner only."""
        self._require_owner(study_id, owner_key, "download its answers")
        rows = self.answers(study_id)
        out = io.StringIO()
        fields = ["study_id", "reviewer", "item_id", "truth", "answer", "correct", "confidence", "response_ms",
                  "run", "model_epoch", "answered_at"]
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r.get(k) for k in fields}, "correct": int(r["truth"] == r["answer"])})
        return out.getvalue()


def _public(study: dict) -> dict:
    """A study row without its secrets (token, seed, owner key hash), ``closed`` as a bool."""
    for secret in ("token", "seed", "owner_hash", "subjects_reserved"):
        study.pop(secret, None)
    study["closed"] = bool(study.get("closed"))
    return study


def _secret_seed() -> int:
    """A study's secret seed: 31 random bits, drawn again while it falls among the views' seeds."""
    while True:
        seed = secrets.randbits(31)
        if seed >= VIEW_SEEDS:
            return seed


def _reserve_subjects(subjects: list[str], n_real: int, rng: np.random.Generator) -> set[str]:
    """The test subjects a study draws its ``n_real`` real slices from (``subjects``: one per slice).

    A random half of the subjects (rounded up), then more in the same random order until they
    have ``n_real`` slices: the reserved subjects are hidden from the pages while the study is
    open, so the other half stays to look at, and the real images still come from several people.
    """
    if n_real <= 0:
        return set()
    unique = sorted(set(subjects))
    counts = {s: subjects.count(s) for s in unique}
    order = [unique[i] for i in rng.permutation(len(unique))]
    chosen, slices = [], 0
    for subject in order:
        if len(chosen) >= math.ceil(len(unique) / 2) and slices >= n_real:
            break
        chosen.append(subject)
        slices += counts[subject]
    return set(chosen)


def _hash_key(key: str, salt: bytes | None = None, iterations: int = _KDF_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<digest hex>`` of an owner key (16 random salt bytes)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return f"{_KDF}${iterations}${salt.hex()}${digest.hex()}"


def _check_key(key: str, stored: str) -> bool:
    """Whether ``key`` hashes to ``stored`` (:func:`_hash_key`), compared in constant time."""
    try:
        kind, iterations, salt, digest = stored.split("$")
        if kind != _KDF:
            return False
        again = _hash_key(key, bytes.fromhex(salt), int(iterations)).rsplit("$", 1)[1]
    except ValueError:
        return False
    return hmac.compare_digest(again, digest)


def _migrate(con) -> None:
    """Add the study columns a database made by an older version lacks; give old studies a token."""
    have = {row[1] for row in con.execute("PRAGMA table_info(studies)")}
    for name, kind in _ADDED_STUDY_COLUMNS.items():
        if name not in have:
            try:
                con.execute(f"ALTER TABLE studies ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise
    for (study_id,) in con.execute("SELECT study_id FROM studies WHERE token IS NULL").fetchall():
        con.execute("UPDATE studies SET token = ? WHERE study_id = ? AND token IS NULL",
                    (secrets.token_hex(16), study_id))
    for study_id, run_path in con.execute(
            "SELECT study_id, run_path FROM studies WHERE subjects_reserved = 0").fetchall():
        subjects = _old_study_subjects(con, study_id, run_path)
        con.executemany("INSERT OR IGNORE INTO reserved VALUES (?, ?)", [(study_id, s) for s in sorted(subjects)])
        con.execute("UPDATE studies SET subjects_reserved = 1 WHERE study_id = ?", (study_id,))


def _old_study_subjects(con, study_id: str, run_path: str) -> set[str]:
    """The test subjects of a study made before reservations, from its items' ``test:<index>``
    sources and its run's test split; none when the run is gone (then no page shows it either)."""
    from core.training.runs import RunData

    indices = {int(i) for (source,) in con.execute("SELECT source FROM items WHERE study_id = ?", (study_id,))
               for i in re.findall(r"test:(\d+)", source)}
    if not indices:
        return set()
    try:
        subjects = RunData.open(run_path).split("test").subjects
    except (UserError, OSError):
        return set()
    return {str(subjects[i]) for i in indices if i < len(subjects)}


def _rollback(con):
    if con is not None and con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass
