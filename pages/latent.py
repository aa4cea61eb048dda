"""Latent explorer: sliders along learned directions, samples, interpolation, maps that decode on click."""

import streamlit as st

from core.errors import UserError
from core.latent import DatasetMissing, maps
from ui import latent as panel, state

st.title("Latent explorer")
st.caption("Look inside a trained model: move along its learned directions, sample, interpolate, and map every "
           "slice of its dataset — each point tied back to its subject.")

runs = panel.runs_with_model()
if not runs:
    st.info("No run has a model yet. Train a VAE or VQ-VAE on the **Train** page; it appears here after its "
            "first epoch.")
    st.page_link("pages/train.py", label="Go to the Train page", icon=":material/model_training:")
    st.stop()

paths = [str(r["path"]) for r in runs]
if st.session_state.get(state.LATENT_RUN) not in paths:
    st.session_state[state.LATENT_RUN] = paths[0]
labels = {str(r["path"]): f"{r['name']} · {r.get('model_type') or r.get('model')} · {r.get('preset')} · {r.get('state')}"
          for r in runs}
run_dir = st.selectbox("Run", paths, format_func=labels.get, key=state.LATENT_RUN)

try:
    ex = panel.explorer(run_dir)
except DatasetMissing as exc:
    st.error(str(exc))
    panel.rebuild_dataset(exc)
    st.stop()
except UserError as exc:
    st.error(str(exc))
    st.stop()

maps.warm_umap()  # compile UMAP's kernels in the background before anyone asks for a map
kind = "VAE" if ex.model_type == "vae" else "VQ-VAE" + ("" if ex.can_sample else " (prior not trained)")
st.caption(f"{kind} · {len(ex.enc)} slices of {ex.enc.meta['subject'].nunique()} subjects encoded in "
           f"{ex.enc.seconds:.1f} s · {ex.image_size} px")
if ex.hidden_subjects:
    st.caption(f"{ex.hidden_subjects} test subject(s) hidden: an open reader study reserves them (its real images "
               "are their slices). They show again when the study is closed.")
if not ex.can_sample:
    st.warning("This VQ-VAE's prior is not trained, so sampling is off; everything else works.")
elif note := panel.prior_note(next(r for r in runs if str(r["path"]) == run_dir)):
    st.info(note)

sliders, samples, interpolation, latent_map = st.tabs(["Sliders", "Samples", "Interpolation", "Map"])
with sliders:
    panel.slider_panel(ex)
with samples:
    panel.samples_panel(ex)
with interpolation:
    panel.interpolation_panel(ex)
with latent_map:
    panel.map_panel(ex)
