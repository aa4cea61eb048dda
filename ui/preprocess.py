"""Preprocessing on the pages: the steps picker (Dataset) and the before / after panel (Browse)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.preprocess import STEP_LABELS, STEPS, PreprocessSpec, mni_template, preprocess_volume
from core.data.volumes import VolumeEntry
from core.errors import UserError
from core.viz.preprocess import before_after_png
from ui import state

__all__ = ["steps_picker", "step_times", "before_after_panel"]

_HELP = {
    "skullstrip": "Removes skull, scalp, eyes and neck (deepbet, a 3-D U-Net shipped in its package; "
                  "about 10-30 s per head on 2 cores).",
    "n4": "Evens out the scanner's smooth intensity drift (SimpleITK N4 on a shrunk copy; a few seconds).",
    "register": "Rigid alignment of each head to the MNI152 template, so a slice index is the same "
                "anatomy in every head. Slice indices are then MNI grid indices.",
    "crop": "Crops each slice's field to the brain's bounding box before resizing, so the brain fills "
            "the image.",
}


def steps_picker(key_prefix: str = state.DATASET_PREPROCESS) -> PreprocessSpec:
    """Checkboxes for the steps (in the order they run) and the registration grid; returns the spec."""
    columns = st.columns(len(STEPS) + 1)
    chosen = [step for column, step in zip(columns, STEPS)
              if column.checkbox(STEP_LABELS[step], key=f"{key_prefix}{step}", help=_HELP[step])]
    mm = 1.0
    if "register" in chosen:
        mm = float(columns[-1].selectbox("MNI grid (mm)", [1.0, 2.0], key=f"{key_prefix}register_mm",
                                         help="Voxel size of the MNI152 grid heads are aligned onto."))
    spec = PreprocessSpec(tuple(chosen), register_mm=mm)
    if "register" in chosen:
        template = mni_template(mm)[0]
        st.caption(f"With registration, slice indices are on the MNI152 {mm:g} mm grid "
                   f"{template.shape[0]}×{template.shape[1]}×{template.shape[2]} (axial index i is "
                   f"z = {mni_template(mm)[2][2, 3]:+.0f} + {mm:g}·i mm).")
    return spec


def step_times(seconds: dict, container=st) -> None:
    """A one-row table: seconds per volume for each step of the last build."""
    if seconds:
        container.dataframe(pd.DataFrame([{STEP_LABELS.get(k, k): f"{v:.1f} s" for k, v in seconds.items()}]),
                            hide_index=True, width="stretch")


@st.cache_resource(max_entries=2, show_spinner=False)
def _stages(entry: VolumeEntry, steps: tuple, register_mm: float, axis: str, _volume):
    """Every stage of ``steps`` on one volume (each step read from / written to the disk cache)."""
    return preprocess_volume(_volume, PreprocessSpec(steps, register_mm=register_mm), entry.identity(),
                             axis=axis, keep_stages=True)


@st.cache_data(max_entries=32, show_spinner=False)
def _pair_png(entry: VolumeEntry, steps: tuple, register_mm: float, axis: str, index: int,
              show_mask: bool, _stage_pair) -> bytes:
    (before, before_mask), (after, after_mask) = _stage_pair
    return before_after_png(before, before_mask, after, after_mask, axis, show_mask=show_mask)


def _request(run_key) -> None:
    st.session_state[state.PREPROCESS_RUN] = run_key


def before_after_panel(entry: VolumeEntry, volume) -> None:
    """Browse's panel: pick steps, run them on this subject, see each step before / after."""
    with st.expander("Preprocessing: each step before / after", expanded=False):
        c1, c2, c3 = st.columns([3, 1, 1])
        steps = tuple(c1.multiselect("Steps", list(STEPS), default=["skullstrip", "n4"],
                                     format_func=STEP_LABELS.get, key=state.PREPROCESS_STEPS))
        axis = c2.selectbox("Plane", ["axial", "coronal", "sagittal"], key=state.PREPROCESS_AXIS)
        show_mask = c3.toggle("Brain mask", value=True, key=state.PREPROCESS_MASK,
                              help="Draw the brain mask's outline on each picture.")
        if not steps:
            st.caption("Pick one or more steps.")
            return
        register_mm = 2.0 if float(min(volume.zooms)) >= 1.5 else 1.0  # the head's own resolution
        run_key = (entry.identity(), steps, axis)
        if st.session_state.get(state.PREPROCESS_RUN) != run_key:
            # A callback, not the button's return value: a rerun the page asks for meanwhile keeps it.
            st.button("Run on this subject", key=state.PREPROCESS_BUTTON, on_click=_request, args=(run_key,),
                      help="Cached per volume: a second look, and the dataset build, reuse it.")
            return
        try:
            with st.spinner(f"{', '.join(STEP_LABELS[s] for s in steps)}…"):
                result = _stages(entry, steps, register_mm, axis, volume)
        except UserError as exc:
            st.session_state.pop(state.PREPROCESS_RUN, None)
            st.error(str(exc))
            return
        stages = result.stages
        for (_, before, mask_before), (step, after, mask_after) in zip(stages, stages[1:]):
            png = _pair_png(entry, steps, register_mm, axis, STEPS.index(step), show_mask,
                            ((before, mask_before), (after, mask_after)))
            cached = " (read from the cache)" if result.cached.get(step) else ""
            st.image(png, caption=f"{STEP_LABELS[step]}: before | after · took {result.seconds[step]:.1f} s{cached}",
                     output_format="PNG")
