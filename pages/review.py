"""Review: real vs reconstruction vs residual, samples beside their nearest real slice,
measured quality of a run, and a blinded reader study with its statistics."""


import streamlit as st

from core.errors import UserError
from core.evaluation.export import html_report, nifti_bytes, samples_grid_png
from core.evaluation.run import read_evaluation
from core.evaluation.study import StudyStore
from core.training import runs
from ui import review

st.title("Review")
all_runs = [r for r in runs.list_runs() if review.has_model(r["path"])]
if not all_runs:
    st.info("No trained run yet. Train a model on the **Train** page first; it appears here.")
    st.stop()
run_dirs = {r["name"]: str(r["path"]) for r in all_runs}
store = StudyStore()

view = st.radio("View", ["Side by side", "Reader study", "Study results", "Metrics & export"], horizontal=True,
                key=review.VIEW, label_visibility="collapsed")

try:
    if view == "Reader study":
        st.caption("Blinded: images come in your own random order, with neutral captions and no answer shown. "
                   "Each answer is saved at once; close the tab and come back with the same name to resume. "
                   "Results go to the study's owner only.")
        study_id = review.study_setup(store, run_dirs)
        if study_id:
            review.study_item(store, study_id, st.session_state[review.REVIEWER].strip(), zoom=5)
    elif view == "Study results":
        review.results_panel(store)
    else:
        if st.session_state.get(review.RUN) not in run_dirs:
            st.session_state[review.RUN] = next(iter(run_dirs))
        run = st.selectbox("Run", list(run_dirs), key=review.RUN)
        run_dir = run_dirs[run]
        if view == "Side by side":
            level, width, zoom = review.window_controls()
            st.subheader("Test subjects: real | reconstruction | residual")
            review.side_by_side(run_dir, level, width, zoom, hidden=store.reserved_subjects())
            st.subheader("Synthetic samples beside their nearest training slice")
            review.nearest_grid(run_dir, level, width, zoom)
        else:
            message = st.session_state.pop(review.EVAL_MESSAGE, None)
            if message:
                st.success(message)
            evaluation = read_evaluation(run_dir)
            if evaluation:
                st.caption(f"Evaluated {evaluation.get('created')} at epoch {evaluation.get('model_epoch')} on "
                           f"{evaluation.get('n_test')} test slices and {evaluation.get('n_samples')} samples "
                           f"(from the {evaluation.get('sample_source', 'prior')}), "
                           f"in {evaluation.get('seconds')} s.")
                from core.evaluation.summary import verdict_line

                verdict = (evaluation.get("verdict") or {}).get("indistinguishable")
                (st.success if verdict else st.warning)(verdict_line(evaluation))
                st.caption("Every sample figure stands beside what two sets of different real people score at the "
                           "same sizes (held-out subjects, split by subject). Indistinguishable needs the two-sample "
                           "accuracy within that real baseline and no more near-copies than real strangers.")
                table = review.metrics_table(evaluation)
                # Tall enough for every row: a scrolled table hid the last figures below the fold.
                st.dataframe(table, hide_index=True, width="stretch", height=36 * (len(table) + 1) + 2)
            else:
                st.info("This run has not been evaluated yet.")
            review.evaluate_button(run_dir)
            st.subheader("Export")
            try:
                # Seed 0, a views' seed: no reader study samples with one (core.evaluation.study.VIEW_SEEDS).
                samples, *_ = review.samples_with_neighbours(run_dir, 16, 0)
            except UserError as exc:
                samples = None
                st.caption(f"No samples to export: {exc}")
            c1, c2, c3 = st.columns(3)
            if samples is not None:
                c1.download_button("Samples grid (PNG)", samples_grid_png(samples, ncols=4), f"{run}-samples.png",
                                   "image/png", key="review_png")
                c2.download_button("Samples stack (NIfTI)", nifti_bytes(samples, f"latentbrain {run} samples seed 0"),
                                   f"{run}-samples.nii.gz", "application/gzip", key="review_nifti")
            # Closed studies whose owner key this tab holds: study results belong to their owner.
            studies = review.owned_closed_results(store, run)
            c3.download_button("Run report (HTML, offline)", html_report(run_dir, evaluation, samples, studies),
                               f"{run}-report.html", "text/html", key="review_html")
except UserError as exc:
    st.error(str(exc))
