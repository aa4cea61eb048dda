"""Streamlit glue of the Review page: cached loaders, side-by-side panels, the blinded study, results."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import streamlit as st

from core.errors import UserError

# Session-state keys of the Review page (kept here, next to the only code that uses them).
RUN = "review_run"
VIEW = "review_view"
LEVEL = "review_level"
WIDTH = "review_width"
ZOOM = "review_zoom"
SUBJECT = "review_subject"
SLICES = "review_slices"
REVIEWER = "review_reviewer"
STUDY = "review_study"
SHOWN = "review_shown"  # (study, reviewer, item_id, monotonic time shown) of the item on screen
FLASH = "review_flash"  # (kind, text) shown once after a submit
RESULTS_STUDY = "review_results_study"
# Copies of the reviewer name and study outside any widget: Streamlit drops a widget's value
# once a run does not draw it, and the Study results view (which draws neither) needs both.
NAME_KEPT = "review_reviewer_kept"
STUDY_KEPT = "review_study_kept"
EVAL_MESSAGE = "review_eval_message"
OWNER_KEYS = "review_owner_keys"  # {study id: owner key} this tab has entered and that opened the study


def has_model(run_dir) -> bool:
    """Whether the run folder holds a model to review (a broken config counts as none)."""
    from core.training.runs import RunData

    try:
        return RunData.open(run_dir).has_model()
    except UserError:
        return False


def _stamp(run_dir: str) -> tuple[int, int]:
    # (model mtime, prior mtime): a VQ-VAE writes prior.keras after model.keras, once per prior
    # epoch, and a cache keyed on the model file alone would keep sampling with a stale prior.
    from core.training.runs import RunData

    return RunData.open(run_dir).stamp


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _model(run_dir: str, stamp: tuple[int, int]):
    from core.training.runs import RunData

    return RunData.open(run_dir).load_model()


def model(run_dir: str):
    """The run's model, cached per run folder and model/prior file times."""
    return _model(run_dir, _stamp(run_dir))


@st.cache_data(max_entries=4, show_spinner=False)
def _context(run_dir: str, stamp: tuple[int, int]) -> dict:
    from core.training.runs import RunData

    data = RunData.open(run_dir)
    return {"test": data.split("test").as_dict(), "train": data.split("train").as_dict(),
            "dataset": str(data.dataset_dir)}


def context(run_dir: str) -> dict:
    """Test and train arrays of the run's dataset with their subjects and sites (cached)."""
    return _context(run_dir, _stamp(run_dir))


@st.cache_data(max_entries=8, show_spinner="Reconstructing…")
def _reconstruct(run_dir: str, stamp: tuple[int, int], indices: tuple) -> np.ndarray:
    test = _context(run_dir, stamp)["test"]
    picked = list(indices)
    model = _model(run_dir, stamp)
    if test.get("conditions") is None:
        return np.asarray(model.reconstruct(test["images"][picked]))[..., 0]
    return np.asarray(model.reconstruct(test["images"][picked], condition=test["conditions"][picked]))[..., 0]


def reconstruct(run_dir: str, indices) -> np.ndarray:
    return _reconstruct(run_dir, _stamp(run_dir), tuple(int(i) for i in indices))


@st.cache_data(max_entries=4, show_spinner="Sampling and finding nearest training slices…")
def _samples_with_neighbours(run_dir: str, stamp: tuple[int, int], n: int, seed: int):
    from core.evaluation.memorisation import copy_threshold, nearest_neighbours

    train = _context(run_dir, stamp)["train"]
    samples = np.asarray(_model(run_dir, stamp).sample(n, seed=seed))[..., 0]
    index, distance = nearest_neighbours(samples, train["images"])
    try:
        threshold = copy_threshold(train["images"], train["subjects"])
    except UserError:  # one training subject: no near-copy threshold, but the samples still show and export
        threshold = None
    return samples, train["images"][index], distance, threshold


def samples_with_neighbours(run_dir: str, n: int, seed: int):
    """``(samples, nearest training slices, RMS distances, near-copy threshold)``, cached."""
    return _samples_with_neighbours(run_dir, _stamp(run_dir), int(n), int(seed))


@st.cache_data(max_entries=256, show_spinner=False)
def window_png(image: np.ndarray, level: float, width: float, zoom: int) -> bytes:
    from core.viz.review import window_png as _png

    return _png(image, level, width, zoom)


@st.cache_data(max_entries=256, show_spinner=False)
def heatmap_png(residual: np.ndarray, vmax: float, zoom: int) -> bytes:
    from core.viz.review import heatmap_png as _png

    return _png(residual, vmax, zoom)


def window_controls() -> tuple[float, float, int]:
    """One window (level, width) and zoom shared by every panel of the page."""
    c1, c2, c3 = st.columns(3)
    level = c1.slider("Level", 0.0, 1.0, 0.5, 0.01, key=LEVEL, help="Centre of the intensity window (all panels).")
    width = c2.slider("Width", 0.05, 1.0, 1.0, 0.01, key=WIDTH, help="Width of the intensity window (all panels).")
    zoom = c3.select_slider("Zoom", [2, 3, 4, 5, 6, 8], value=4, key=ZOOM,
                            help="Pixels are enlarged by this factor without smoothing.")
    return level, width, int(zoom)


# ---------------------------------------------------------------------------- side by side
def side_by_side(run_dir: str, level: float, width: float, zoom: int, hidden: set[str] = frozenset()) -> None:
    """Chosen test slices as real | reconstruction | residual heat map with a colour bar.

    ``hidden``: test subjects an open reader study reserves
    (:meth:`~core.evaluation.study.StudyStore.reserved_subjects`): the study's real images are
    their slices, so they are left out here, with only their number said.
    """
    from core.viz.review import colorbar_png

    test = context(run_dir)["test"]
    every = list(dict.fromkeys(test["subjects"]))
    subjects = [s for s in every if s not in hidden]
    if len(subjects) < len(every):
        n = len(every) - len(subjects)
        one = n == 1
        it = "it" if one else "them"
        st.caption(f"{n} of {len(every)} test subjects {'is' if one else 'are'} hidden: an open reader study "
                   f"reserves {it} (its real images are slices of {it}). {'It shows' if one else 'They show'} "
                   "again when the study is closed.")
    if not subjects:
        st.info("Every test subject of this run is reserved by an open reader study, so none is shown here.")
        return
    if st.session_state.get(SUBJECT) not in subjects:
        st.session_state.pop(SUBJECT, None)  # e.g. a subject a study reserved since it was chosen
        st.session_state.pop(SLICES, None)
    subject = st.selectbox("Test subject", subjects, key=SUBJECT,
                           format_func=lambda s: f"{s} ({test['sites'][test['subjects'].index(s)]})")
    rows = [i for i, s in enumerate(test["subjects"]) if s == subject]
    positions = [int(test["positions"][i]) for i in rows]
    default = [positions[len(positions) // 4], positions[len(positions) // 2], positions[3 * len(positions) // 4]]
    chosen = st.multiselect("Slices", positions, default=sorted(set(default)), key=SLICES, max_selections=6)
    if not chosen:
        st.info("Choose one or more slices.")
        return
    indices = [rows[positions.index(p)] for p in chosen]
    recon = reconstruct(run_dir, indices)
    real = test["images"][indices]
    residual = np.abs(real - recon)
    vmax = float(max(0.05, np.percentile(residual, 99.5)))
    head = st.columns([3, 3, 3, 1])
    for col, title in zip(head, ["Real (test subject)", "Reconstruction", "|Residual|", ""]):
        col.markdown(f"**{title}**")
    from core.evaluation.metrics import compute_psnr, compute_ssim

    ssim, psnr = compute_ssim(real, recon), compute_psnr(real, recon)
    for k, position in enumerate(chosen):
        c1, c2, c3, c4 = st.columns([3, 3, 3, 1])
        c1.image(window_png(real[k], level, width, zoom), caption=f"slice {position}", output_format="PNG")
        c2.image(window_png(recon[k], level, width, zoom), caption=f"SSIM {ssim[k]:.3f} · PSNR {psnr[k]:.1f} dB",
                 output_format="PNG")
        c3.image(heatmap_png(residual[k], vmax, zoom), caption=f"max {residual[k].max():.2f}", output_format="PNG")
        c4.image(colorbar_png(vmax, height=real.shape[1] * zoom), output_format="PNG")


def nearest_grid(run_dir: str, level: float, width: float, zoom: int, n: int = 8, seed: int = 0) -> None:
    """Synthetic samples, each beside its nearest real training slice and their distance.

    ``seed`` stays below :data:`core.evaluation.study.VIEW_SEEDS`: a reader study never samples
    with such a seed, so these tiles are never one of its synthetic images.
    """
    try:
        samples, neighbours, distance, threshold = samples_with_neighbours(run_dir, n, seed)
    except UserError as exc:
        st.info(f"No samples: {exc}")
        return
    if threshold is None:
        st.caption("Nearest = smallest root-mean-square pixel distance over the training slices. No near-copy "
                   "flag: that needs training slices of at least 2 subjects.")
    else:
        st.caption(f"Nearest = smallest root-mean-square pixel distance over the training slices. A sample closer "
                   f"than {threshold:.3f} (the closest two training slices of different subjects) is flagged as a "
                   "near-copy.")
    cols = st.columns(4)
    for k in range(len(samples)):
        with cols[k % 4]:
            pair = np.concatenate([samples[k], np.ones((samples.shape[1], 2), np.float32), neighbours[k]], axis=1)
            flag = " · near-copy!" if threshold is not None and distance[k] < threshold else ""
            st.image(window_png(pair, level, width, max(1, zoom // 2)),
                     caption=f"sample {k + 1} | nearest real · d = {distance[k]:.3f}{flag}", output_format="PNG")


# ---------------------------------------------------------------------------- evaluation
def evaluate_button(run_dir: str) -> None:
    """Run the evaluator with a progress bar; the figures are read back from evaluation.json."""
    from core.evaluation.run import evaluate_run

    from core.training.runs import RunData

    source = "prior"
    if RunData.open(run_dir).model_type == "vae":
        source = st.radio(
            "Samples from", ["prior", "aggregate"], horizontal=True, key="review_eval_source",
            format_func={"prior": "N(0, I) prior",
                         "aggregate": "aggregate posterior (Gaussian mixture on training latents)"}.get,
            help="A VAE decodes poorly where N(0, I) puts mass the training images never reached; "
                 "the aggregate posterior samples where they live. The choice is kept in evaluation.json.")
    quick = st.checkbox("Quick look (2 folds, 15 epochs)", key="review_eval_quick",
                        help="Two-sample tests with two folds and at most 15 classifier epochs: about three "
                             "times faster, with less power, so not figures to quote. Kept in evaluation.json.")
    if st.button("Evaluate", type="primary", key="review_evaluate",
                 help="Measure this run on its held-out subjects and samples (a few minutes for a demo run: three two-sample tests train classifiers to convergence)."):
        bar = st.progress(0.0, text="starting")
        try:
            evaluate_run(run_dir, progress=lambda f, m: bar.progress(min(1.0, f), text=m),
                         sample_source=source, quick=quick)
        except UserError as exc:
            st.error(str(exc))
        else:
            st.session_state[EVAL_MESSAGE] = "Evaluation finished and saved to evaluation.json."
            st.rerun()


def metrics_table(evaluation: dict):
    """Each figure beside its real-vs-real baseline, for ``st.dataframe`` (core.evaluation.summary)."""
    import pandas as pd

    from core.evaluation.summary import judge_rows

    rows = judge_rows(evaluation)
    for row in rows:
        row["value"] = None if row["value"] is None else round(float(row["value"]), 4)
    return pd.DataFrame(rows, columns=["figure", "value", "real", "verdict", "detail"])


def _short(value):
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------- study
def _flash():
    message = st.session_state.pop(FLASH, None)
    if message:
        getattr(st, message[0])(message[1])


def study_setup(store, run_dirs: dict[str, str]) -> str | None:
    """Reviewer name + study choice or creation; returns the chosen study id (or None)."""
    from core.evaluation.study import validate_reviewer

    if REVIEWER not in st.session_state and NAME_KEPT in st.session_state:
        st.session_state[REVIEWER] = st.session_state[NAME_KEPT]
    name = st.text_input("Your name (reviewer)", key=REVIEWER, max_chars=40,
                         help="Answers are stored under this name; use the same name to resume later.")
    st.session_state[NAME_KEPT] = name
    studies = store.list_studies()
    with st.expander("Set up a new study", expanded=not studies):
        st.caption("A study draws its images with a secret seed of its own and takes its real slices from test "
                   "subjects it reserves: while it is open, no page shows those subjects. You get an owner key: "
                   "it alone opens the results, the answers file and closing the study.")
        with st.form("review_new_study", border=False):
            c1, c2 = st.columns(2)
            run = c1.selectbox("Run", list(run_dirs), key="review_study_run")
            mode = c2.radio("Mode", ["single", "2afc"], horizontal=True, key="review_study_mode",
                            format_func={"single": "Single image: real or synthetic?",
                                         "2afc": "Two images: which one is real?"}.get)
            c3, c4 = st.columns(2)
            count = c3.number_input("Images (pairs in 2AFC)", 2, 1000, 20, key="review_study_count")
            share = c4.slider("Real share (single mode)", 0.0, 1.0, 0.5, 0.05, key="review_study_share")
            created = st.form_submit_button("Create study")
        if created:
            try:
                with st.spinner("Drawing the study's images…"):
                    study = store.create_study(run_dirs[run], mode, int(count), float(share),
                                               model=model(run_dirs[run]))
            except UserError as exc:
                st.error(str(exc))
            else:
                st.session_state[STUDY] = study["study_id"]
                show_owner_key(study)
                studies = store.list_studies()
    if not studies:
        st.info("No study yet: set one up above.")
        return None
    ids = [s["study_id"] for s in studies]
    if st.session_state.get(STUDY) not in ids:
        kept = st.session_state.get(STUDY_KEPT)
        st.session_state[STUDY] = kept if kept in ids else ids[0]
    # Mode and size only: how many answers others gave is the owner's business, not a reader's.
    labels = {s["study_id"]: f"{s['study_id']} · {s['mode']} · {s['n_items']} images"
                             + (" · closed" if s["closed"] else "") for s in studies}
    study_id = st.selectbox("Study", ids, key=STUDY, format_func=labels.get)
    st.session_state[STUDY_KEPT] = study_id
    if not name.strip():
        st.info("Enter your name to start or resume this study.")
        return None
    try:
        validate_reviewer(name)
    except UserError as exc:
        st.error(str(exc))
        return None
    return study_id


def show_owner_key(study: dict) -> None:
    """The new study's owner key, shown in this one run only: nothing keeps it (the store has its hash).

    Not remembered in the session either: the tab that created a study is often the one handed
    to the readers.
    """
    st.success(f"Study {study['study_id']} created.")
    st.warning("**Owner key** of this study, shown only this once: copy it now and keep it from the readers. "
               "It opens the results, the answers file and closing the study (under **Study results**).")
    st.code(study["owner_key"], language=None)


def study_keys(store, study_id: str, reviewer: str, item_id: int) -> dict[str, str]:
    """Widget and form keys of one item as one reviewer sees it: ``{answer, confidence, form}``.

    Streamlit writes every key into the page (as a ``st-key-…`` CSS class), so a key must carry
    neither the item id nor anything in step with it: they are built from the store's opaque
    :meth:`~core.evaluation.study.StudyStore.item_key`.
    """
    token = store.item_key(study_id, reviewer, item_id)
    return {"answer": f"review_answer_{token}", "confidence": f"review_confidence_{token}",
            "form": f"review_form_{token}"}


def blind_png(image: np.ndarray, zoom: int, salt: str = "") -> bytes:
    """A study image as an uncompressed PNG of one size, salted per reviewer (:func:`core.viz.review.study_png`)."""
    from core.viz.review import study_png

    return study_png(image, zoom, salt)


def study_item(store, study_id: str, reviewer: str, zoom: int) -> None:
    """Show the reviewer's next unanswered image(s) with neutral captions and take the answer."""
    _flash()
    study = store.get_study(study_id)
    if study["closed"]:
        st.info(f"Study {study_id} is closed: it takes no more answers.")
        return
    if not study["run_exists"]:
        st.warning(f"Run {study['run']} was deleted; this study continues on its stored images.")
    item = store.next_item(study_id, reviewer)
    if item is None:
        st.success(f"Done: you answered all {study['n_items']} items of this study. Thank you: the results go to "
                   "the study's owner.")
        return
    shown = st.session_state.get(SHOWN)
    if not shown or shown[:3] != (study_id, reviewer, item["item_id"]):
        shown = (study_id, reviewer, item["item_id"], time.monotonic())
        st.session_state[SHOWN] = shown
    st.progress(item["position"] / item["total"], text=f"Item {item['position'] + 1} of {item['total']}")
    images = store.study_images(study_id)
    item_id = item["item_id"]
    # Keys are opaque per item (see study_keys), and the submit callback is bound to the item on
    # screen when the button was drawn: a late second click can only ever answer that same item
    # again, which the store refuses (and we say so).  The item id stays on the server.
    keys = study_keys(store, study_id, reviewer, item_id)
    levels = {1: "1 guess", 2: "2", 3: "3", 4: "4 certain"}
    # Neutral: uncompressed PNGs of one size, salted per reviewer so each reviewer gets their own
    # addresses (Streamlit serves them under a hash of their bytes), captions that never name the
    # truth, the source or the item id.
    if study["mode"] == "single":
        png = blind_png(images["images"][item_id], zoom, store.image_salt(study_id, reviewer, item_id))
        st.image(png, caption="Image", output_format="PNG")
        question, options, confidence_label = "This image is", ["real", "synthetic"], "Confidence"
    else:
        c1, c2 = st.columns(2)
        for col, side in ((c1, "left"), (c2, "right")):
            png = blind_png(images[side][item_id], zoom, store.image_salt(study_id, reviewer, item_id, side))
            col.image(png, caption=side.capitalize(), output_format="PNG")
        question, options, confidence_label = "Which image is real?", ["left", "right"], "Confidence (optional)"
    with st.form(keys["form"], border=False):
        st.radio(question, options, index=None, horizontal=True, key=keys["answer"], format_func=str.capitalize)
        st.radio(confidence_label, [1, 2, 3, 4], index=None, horizontal=True, key=keys["confidence"],
                 format_func=levels.get)
        st.form_submit_button("Submit answer", type="primary", on_click=submit,
                              args=(str(store.runs_dir), study_id, reviewer, item_id, shown[3], keys))


def submit(runs_dir: str, study_id: str, reviewer: str, item_id: int, shown_at: float, keys: dict) -> None:
    """Submit callback: store the answer for the item it was drawn for; a repeat is reported, never stored twice."""
    from core.evaluation.study import StudyStore

    answer = st.session_state.get(keys["answer"])
    confidence = st.session_state.get(keys["confidence"])
    if answer is None:
        st.session_state[FLASH] = ("warning", "Choose an answer first.")
        return
    elapsed = int((time.monotonic() - shown_at) * 1000)
    try:
        stored = StudyStore(runs_dir).record_answer(study_id, reviewer, item_id, answer, confidence, elapsed)
    except UserError as exc:
        st.session_state[FLASH] = ("error", str(exc))
        return
    if not stored:
        st.session_state[FLASH] = ("info", "That answer was already recorded (double click, resubmit or another "
                                           "tab); it was not stored again.")


def _current_reviewer() -> str | None:
    """The reviewer name typed on the Reader study view, if it is a valid one."""
    from core.evaluation.study import validate_reviewer

    try:
        return validate_reviewer(st.session_state.get(REVIEWER, st.session_state.get(NAME_KEPT)))
    except UserError:
        return None


def owner_key(store, study_id: str) -> str | None:
    """The owner key this tab has entered for ``study_id``, if it (still) opens the study."""
    key = st.session_state.get(OWNER_KEYS, {}).get(study_id)
    return key if key and store.is_owner(study_id, key) else None


def owned_closed_results(store, run: str) -> list[dict]:
    """Results of the closed studies of ``run`` whose owner key this tab holds (for the run report)."""
    out = []
    for study in store.list_studies():
        if study["run"] == run and study["closed"]:
            key = owner_key(store, study["study_id"])
            if key:
                out.append(store.results(study["study_id"], key))
    return out


def owner_unlock(store, study_id: str) -> None:
    """A password box for the owner key (or the server's passphrase); a right one opens the study in this tab."""
    from core.evaluation.study import OWNER_ENV

    with st.form("review_owner_form", clear_on_submit=True, border=False):
        key = st.text_input("Owner key", type="password", key="review_owner_key_input",
                            help="Shown once when the study was created; the server's passphrase "
                                 f"({OWNER_ENV}) opens every study.")
        opened = st.form_submit_button("Open results")
    if opened:
        if store.is_owner(study_id, key.strip()):
            st.session_state.setdefault(OWNER_KEYS, {})[study_id] = key.strip()
            st.rerun()
        st.error(f"That is not the owner key of study {study_id}.")


def close_study_control(store, study_id: str, key: str) -> None:
    """The owner's deliberate 'close study' action: no more answers, its reserved subjects show again."""
    with st.expander("Close this study"):
        st.caption("Closing ends the study for every reader: no more answers are taken, and the test subjects it "
                   "reserved show again on the other views.")
        sure = st.checkbox("Yes, close it for everyone", key="review_close_sure")
        if st.button("Close study", key="review_close", disabled=not sure):
            store.close_study(study_id, key)
            st.session_state.pop("review_close_sure", None)
            st.rerun()


def results_panel(store) -> None:
    """The owner's view of a study: statistics, verdict, confusion matrix, ROC, agreement, CSV, closing.

    Everyone else (a reader, finished or not) sees only their own progress: the truth, the
    statistics and the answers file would unblind the images to anyone who could reach them,
    and a reader who has finished can still tell others.
    """
    import pandas as pd
    import plotly.graph_objects as go

    studies = store.list_studies()
    if not studies:
        st.info("No reader study yet.")
        return
    ids = [s["study_id"] for s in studies]
    closed = {s["study_id"]: s["closed"] for s in studies}
    if st.session_state.get(RESULTS_STUDY) not in ids and st.session_state.get(STUDY_KEPT) in ids:
        st.session_state[RESULTS_STUDY] = st.session_state[STUDY_KEPT]  # open on the study being answered
    study_id = st.selectbox("Study", ids, key=RESULTS_STUDY,
                            format_func=lambda i: f"{i} · closed" if closed[i] else f"{i} · open")
    key = owner_key(store, study_id)
    if not key:
        reviewer = _current_reviewer()
        if reviewer:
            mine = store.progress(study_id, reviewer)
            st.markdown(f"**Your progress** ({reviewer}): {mine['answered']} of {mine['total']} images answered.")
        st.info(f"The results of study {study_id} (truth, statistics, the answers file) and closing it belong to "
                "its owner: enter the owner key shown when the study was created.")
        owner_unlock(store, study_id)
        return
    if st.button("Lock the results in this tab", key="review_owner_lock",
                 help="Forget the owner key here, e.g. before handing this browser to a reader."):
        st.session_state.get(OWNER_KEYS, {}).pop(study_id, None)
        st.rerun()
    result = store.results(study_id, key)
    pooled, study = result["pooled"], result["study"]
    if pooled["n"] == 0:
        st.info("No answers yet in this study.")
        if not study["closed"]:
            close_study_control(store, study_id, key)
        return
    st.markdown(f"**Verdict.** {pooled['verdict']}")
    rows = []
    boot = pooled.get("accuracy_ci95_bootstrap")
    for name, s in [("All readers (pooled)", pooled), *result["per_reviewer"].items()]:
        row = {"reader": name, "answers": s["n"], "accuracy": s["accuracy"],
               "95 % CI (Wilson)": f"{s['accuracy_ci95'][0]:.2f}–{s['accuracy_ci95'][1]:.2f}",
               "95 % CI (readers × images bootstrap)": "{:.2f}–{:.2f}".format(*boot) if s is pooled and boot else "",
               "p vs 50 % (exact)": s["p_value"]}
        if study["mode"] == "single":
            row.update({"sensitivity": s.get("sensitivity"),
                        "sens. CI": "{:.2f}–{:.2f}".format(*s["sensitivity_ci95"]) if "sensitivity_ci95" in s else "",
                        "specificity": s.get("specificity"),
                        "spec. CI": "{:.2f}–{:.2f}".format(*s["specificity_ci95"]) if "specificity_ci95" in s else "",
                        "ROC AUC": (s.get("roc") or {}).get("auc")})
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("Sensitivity: synthetic images called synthetic. Specificity: real images called real. "
               "Per-reader intervals: Wilson 95 %. Pooled: the Wilson interval treats every answer as independent "
               "and is too narrow when several readers judge the same images; the verdict uses the bootstrap "
               "interval, which resamples readers and images (2000 draws). p: exact two-sided binomial test "
               "against 50 % (it too treats answers as independent).")
    agreement = result["agreement"]
    kappa = agreement["cohen_kappa"] if agreement["readers"] == 2 else agreement["fleiss_kappa"]
    kind = "Cohen's κ" if agreement["readers"] == 2 else "Fleiss' κ"
    if agreement["readers"] >= 2 and kappa is not None:
        st.markdown(f"**Agreement** between {agreement['readers']} readers on {agreement['common_items']} common "
                    f"items: {kind} = {kappa:.2f}")
    c1, c2 = st.columns(2)
    if study["mode"] == "single":
        cm = pooled["confusion"]
        c1.markdown("**Confusion matrix** (pooled)")
        c1.dataframe(pd.DataFrame({"called synthetic": [cm["tp"], cm["fp"]], "called real": [cm["fn"], cm["tn"]]},
                                  index=["truly synthetic", "truly real"]), width="stretch")
        roc = pooled["roc"]
        if roc["auc"] is not None:
            fig = go.Figure([go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines+markers", name="readers"),
                             go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dash", name="chance")])
            fig.update_layout(title=f"ROC from confidence (AUC {roc['auc']:.2f})", height=320,
                              xaxis_title="real called synthetic", yaxis_title="synthetic called synthetic")
            c2.plotly_chart(fig, width="stretch")
    from core.evaluation.study_stats import answers_needed

    half = c1.select_slider("Interval half-width", [0.03, 0.05, 0.10, 0.15], value=0.10, key="review_half",
                            format_func=lambda h: f"±{h:.0%}")
    c1.markdown(f"About **{answers_needed(half, 0.5)} answers** give a 95 % interval of ±{half:.0%} at 50 % "
                f"accuracy (this study has {pooled['n']}).")
    st.download_button("Download answers (CSV)", store.export_csv(study_id, key), file_name=f"{study_id}.csv",
                       mime="text/csv", key="review_csv")
    if not study["closed"]:
        close_study_control(store, study_id, key)
