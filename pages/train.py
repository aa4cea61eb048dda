"""Train: pick a dataset and a model, launch a background job, follow its curves live."""

from pathlib import Path

import streamlit as st

from core.data.dataset import list_datasets
from core.models.presets import MODEL_TYPES, PRESET_NAMES
from core.training import jobs, runs
from ui import state, train_panel as panel

st.title("Train")
st.caption("Training runs as a background process: it keeps going when you reload the page or close "
           "the tab. Everything shown here is read back from the run's folder.")

# ------------------------------------------------------------------ new run
datasets = list_datasets()
if not datasets:
    st.info("No dataset is built yet. Build one on the **Dataset** page first (choose a slice range, "
            "then *Build dataset*); it appears here.")
    st.page_link("pages/dataset.py", label="Go to the Dataset page", icon=":material/dataset:")
else:
    with st.expander("New training run", expanded=not runs.list_runs()):
        paths = [d["path"] for d in datasets]
        last = st.session_state.get(state.LAST_DATASET)
        dataset_path = st.selectbox(
            "Dataset", paths, index=paths.index(last) if last in paths else 0, key=state.TRAIN_DATASET,
            format_func=lambda p: panel.dataset_label(datasets[paths.index(p)]),
            help="Built datasets (axis, slice range, image size, train/val/test images, hash).")
        c1, c2 = st.columns(2)
        model_type = c1.radio("Model", MODEL_TYPES, horizontal=True, key=state.TRAIN_MODEL,
                              format_func={"vae": "VAE", "vqvae": "VQ-VAE + PixelCNN prior"}.get,
                              help="VAE: smooth latent space. VQ-VAE: discrete codes, sharper; samples via its prior.")
        preset = c2.radio("Preset", PRESET_NAMES, horizontal=True, key=state.TRAIN_PRESET,
                          help="demo: 64 px, small, CPU minutes. thesis: the seed's 128 px network with our "
                               "loss fixes. quality: larger, for a GPU. cpu128: 128 px sized for a CPU "
                               "(under 30 min on ~170 slices).")
        size = datasets[paths.index(dataset_path)]["spec"]["size"]
        st.caption(f"Images are {size} px (from the dataset); the network is the preset's.")
        with st.form(state.TRAIN_FORM, border=False):
            overrides = panel.hyper_parameters(model_type, preset)
            run_name = st.text_input("Run name", runs.default_run_name(model_type, preset), key=state.TRAIN_RUN_NAME,
                                     help="Folder name of the run: letters, digits, '.', '_' and '-'.")
            submitted = st.form_submit_button("Launch", type="primary")
        if submitted:
            panel.launch(dataset_path, model_type, preset, run_name, overrides)
        message = st.session_state.pop(state.TRAIN_LAUNCH_MESSAGE, None)
        if message:
            (st.error if message[0] == "error" else st.success)(message[1])

# ------------------------------------------------------------------ live run
all_runs = runs.list_runs()
if not all_runs:
    st.caption("No runs yet.")
    st.stop()

names = [r["name"] for r in all_runs]
if st.session_state.get(state.TRAIN_RUN) not in names:
    st.session_state[state.TRAIN_RUN] = names[0]
st.subheader("Run")
st.selectbox("Run", names, key=state.TRAIN_RUN, label_visibility="collapsed")
active = any(r["state"] in runs.ACTIVE_STATES for r in all_runs)


@st.fragment(run_every=2 if active else None)
def live_run():
    panel.run_panel(Path(runs.run_path(st.session_state[state.TRAIN_RUN])))


live_run()
selected = next(r for r in all_runs if r["name"] == st.session_state[state.TRAIN_RUN])
if selected["state"] not in runs.ACTIVE_STATES:  # outside the live fragment: no rerun every 2 s
    panel.sample_panel(Path(runs.run_path(selected["name"])))

# ------------------------------------------------------------------ all runs
st.subheader("All runs")
st.caption(f"At most {jobs.max_jobs()} jobs train at once.")


@st.fragment(run_every=5 if active else None)
def all_runs_panel():
    current = runs.list_runs()
    panel.runs_table(current)
    panel.overlay(current)


all_runs_panel()
