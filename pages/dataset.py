"""Dataset: turn the chosen slice range into a leak-free, cached training dataset."""

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.cohort import build_cohort_dataset
from core.data.dataset import balance_table, list_datasets, load_manifest, load_split_images
from core.data.slices import AXES, DEFAULT_RANGE_SLICES, SliceSpec, middle_range
from core.errors import UserError
from core.viz.images import display_upscale, grid_png
from ui import data, state
from ui import preprocess as preprocess_ui

st.title("Dataset")
st.caption("Slices of each subject go to exactly one split (train / validation / test), so no "
           "subject is seen in training and in testing. Intensities are scaled per volume to [0, 1] "
           "(0.5–99.5 % percentiles); slices are padded to a square, never squashed.")

try:
    found, is_demo = data.cohort()
except UserError as exc:
    st.error(str(exc))
    st.stop()
entries = found.entries
if is_demo:
    st.info("Building from the **synthetic demo cohort** (not real patients).")

axis_default = st.session_state.get(state.CHOSEN_AXIS, "axial")
range_default = st.session_state.get(state.CHOSEN_RANGE)
c1, c2, c3, c4 = st.columns(4)
axis = c1.selectbox("Axis", list(AXES), index=list(AXES).index(axis_default), key=state.DATASET_AXIS)
if range_default is None or axis != axis_default:
    st.caption(f"No range picked on the Browse page for this axis yet: using the middle "
               f"{DEFAULT_RANGE_SLICES} slices.")
    first_shape = data.shapes(tuple(entries[:1]))[entries[0].subject_id]
    range_default = middle_range(first_shape[AXES[axis]] if not isinstance(first_shape, str) else 60)
start = c2.number_input("Start slice", 0, 2048, int(range_default[0]))
stop = c3.number_input("Stop slice (excluded)", 1, 2048, int(range_default[1]))
size = c4.radio("Image size (px)", [64, 96, 128, 192, 256], index=2, key=state.DATASET_SIZE, horizontal=True,
                    help="Square output; 64 suits the CPU `demo` preset, 128 the thesis' setting.")
s1, s2, s3, s4 = st.columns(4)
train = s1.number_input("Train fraction", 0.0, 1.0, 0.8, 0.05)
val = s2.number_input("Validation fraction", 0.0, 1.0, 0.1, 0.05)
test = s3.number_input("Test fraction", 0.0, 1.0, 0.1, 0.05)
seed = s4.number_input("Split seed", 0, 2**31 - 1, 0, help="Same seed, same subjects per split.")

try:
    spec = SliceSpec(axis=axis, start=int(start), stop=int(stop), size=int(size))
except UserError as exc:
    st.error(str(exc))
    st.stop()
st.markdown("**Preprocessing** (optional; each step is cached per volume and listed in the dataset's "
            "manifest, so it is part of the dataset's hash)")
preprocess = preprocess_ui.steps_picker()
st.markdown(f"**{spec.count} slices × {len(entries)} volumes** → up to "
            f"**{spec.count * len(entries)} images** of {size}×{size}, split by subject "
            f"({train:.0%} / {val:.0%} / {test:.0%}).")

if st.button("Build dataset", type="primary"):
    bar = st.progress(0.0, text="starting…")
    try:
        result = build_cohort_dataset(found, spec, fractions=(train, val, test), seed=int(seed),
                                      progress=lambda f, msg: bar.progress(min(1.0, f), text=msg),
                                      preprocess=preprocess)
    except UserError as exc:
        st.error(str(exc))
    else:
        st.session_state[state.LAST_DATASET] = str(result.path)
        verb = "Reused the cached dataset" if result.reused else "Built"
        st.success(f"{verb} in {result.seconds:.1f} s: `{result.path}`")
        for line in result.skipped:
            st.warning(f"Skipped {line}")
        if result.preprocess_seconds:
            st.caption("Preprocessing, seconds per volume (the time each step took when it was computed):")
            preprocess_ui.step_times(result.preprocess_seconds)

last = st.session_state.get(state.LAST_DATASET)
if last and Path(last).is_dir():
    try:
        manifest = load_manifest(last)
        st.subheader("Balance per split")
        st.dataframe(balance_table(manifest), hide_index=True, width="stretch")
        train_images = load_split_images(last, "train")
        if len(train_images):
            step = max(1, len(train_images) // 16)
            st.image(grid_png(train_images[::step][:16], ncols=8, upscale=display_upscale(spec.size)),
                     caption="Training images (every {}th)".format(step), output_format="PNG")
        overlap = set(manifest["splits"]["train"]["subjects"]) & (
            set(manifest["splits"]["val"]["subjects"]) | set(manifest["splits"]["test"]["subjects"]))
        st.caption(f"Subjects shared between train and val/test: {len(overlap)}. "
                   f"Hash {manifest['hash']}. Train a model on it on the Train page.")
    except UserError as exc:
        st.error(str(exc))

st.subheader("Datasets in the cache")
built = list_datasets()
if built:
    st.dataframe(pd.DataFrame([{
        "hash": d["hash"], "axis": d["spec"]["axis"], "range": f"{d['spec']['start']}–{d['spec']['stop'] - 1}",
        "size": d["spec"]["size"], **d["counts"], "created": d["created"], "path": d["path"]}
        for d in built]), hide_index=True, width="stretch")
else:
    st.caption("None yet.")
