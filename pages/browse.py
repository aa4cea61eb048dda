"""Browse: pick a subject, look at it in three planes, and choose the slice range."""

import numpy as np
import streamlit as st

from core.data.slices import AXES, middle_range, preview_indices, range_yield, thesis_spec
from core.errors import UserError
from ui import data, state, viewer
from ui.preprocess import before_after_panel

st.title("Browse")

try:
    found, is_demo = data.cohort()
except UserError as exc:
    st.error(str(exc))
    st.stop()
entries, cohort = found.entries, found.table
if is_demo:
    st.info("**Synthetic demo cohort** — deformed MNI152 templates with simulated age, sex and site "
            "effects, not real patients. Choose *Folder or IXI-T1.tar* in the sidebar for real IXI.")
st.caption(found.layout_summary())
if summary := found.demographics_summary():
    st.warning(summary[0].upper() + summary[1:])
for note in found.notes:
    st.caption(f"Demographics: {note}")
if found.problems:
    with st.expander(f"Files not used ({len(found.problems)})"):
        st.text("\n".join(found.problems))
by_id = {e.subject_id: e for e in entries}

# --- Subject table with filters ------------------------------------------------------------
with st.expander(f"Subjects ({len(cohort)})", expanded=True):
    f1, f2, f3 = st.columns(3)
    sites = sorted(cohort["site"].dropna().unique())
    chosen_sites = f1.multiselect("Site", sites, default=sites)
    chosen_sexes = f2.multiselect("Sex", ["F", "M"], default=["F", "M"])
    ages = cohort["age"].dropna()
    age_range = f3.slider("Age", 0, 100, (0, 100)) if len(ages) else (0, 100)
    keep = (cohort["site"].isin(chosen_sites) | cohort["site"].isna()) & (
        cohort["sex"].isin(chosen_sexes) | cohort["sex"].isna()
    ) & (cohort["age"].between(*age_range) | cohort["age"].isna())
    shown = cohort[keep].reset_index(drop=True)
    picked = st.dataframe(shown, on_select="rerun", selection_mode="single-row", hide_index=True,
                          height=180, width="stretch", key=state.SUBJECT_TABLE)
    if picked.selection.rows:
        st.session_state[state.SUBJECT] = shown.iloc[picked.selection.rows[0]]["subject_id"]

options = list(shown["subject_id"]) or list(cohort["subject_id"])
if st.session_state.get(state.SUBJECT) not in options:
    st.session_state[state.SUBJECT] = options[0]
subject = st.selectbox("Subject", options, key=state.SUBJECT)
entry = by_id[subject]
try:
    volume = data.volume(entry)
except UserError as exc:
    st.error(f"{exc} — the other subjects still work; pick another one.")
    st.stop()
for warning in volume.warnings:
    st.warning(f"{entry.name}: {warning}")
row = cohort.set_index("subject_id").loc[subject]
st.caption(f"{subject} · site {row['site'] or '?'} · age {row['age'] if row['age'] == row['age'] else '?'} · "
           f"sex {row['sex'] or '?'} · canonical shape {volume.shape} · voxels "
           f"{' × '.join(f'{z:.2f}' for z in volume.zooms)} mm · stored {'/'.join(volume.raw_axcodes)}")

# --- Viewer controls -------------------------------------------------------------------------
if st.session_state.get(state.CROSSHAIR, (None,))[0] != subject:
    st.session_state[state.CROSSHAIR] = (subject, tuple(s // 2 for s in volume.shape))
c1, c2, c3 = st.columns([1, 1, 2])
radiological = c1.toggle("Radiological (R on left)", value=True, key=state.RADIOLOGICAL,
                         help="Off: neurological convention, the subject's right on the right.")
auto = c2.toggle("Auto window (0.5–99.5 %)", value=True, key=state.AUTO_WINDOW)
auto_level, auto_width, vmin, vmax = data.window_stats(entry)
if auto:
    level, width = auto_level, auto_width
else:
    w1, w2 = c3.columns(2)
    level = w1.slider("Level", vmin, vmax, float(np.clip(auto_level, vmin, vmax)), key=state.LEVEL)
    width = w2.slider("Width", 1e-3 * (vmax - vmin), vmax - vmin,
                      float(np.clip(auto_width, 1e-3 * (vmax - vmin), vmax - vmin)), key=state.WIDTH)

# --- Slice range (drawn on the views below) --------------------------------------------------
if state.RANGE_AXIS not in st.session_state and state.CHOSEN_AXIS in st.session_state:
    st.session_state[state.RANGE_AXIS] = st.session_state[state.CHOSEN_AXIS]
    st.session_state[state.RANGE] = st.session_state[state.CHOSEN_RANGE]
range_axis = st.session_state.setdefault(state.RANGE_AXIS, "axial")
n_slices = volume.shape[AXES[range_axis]]
current = st.session_state.get(state.RANGE)
if not current or current[1] > n_slices or current[0] >= current[1]:
    st.session_state[state.RANGE] = middle_range(n_slices)
start, stop = st.session_state[state.RANGE]


# --- Three planes: drawn in the browser (one volume per subject), or on the server ---------------
viewer.three_planes(entry, volume, subject, level, width, radiological, (range_axis, start, stop))
before_after_panel(entry, volume)  # optional preprocessing of this subject, each step before / after

# --- Slice range picker ----------------------------------------------------------------------
st.subheader("Slice range for the dataset")


def _apply_thesis_preset():
    try:
        spec = thesis_spec(volume)
    except UserError as exc:
        st.session_state[state.PRESET_ERROR] = str(exc)
        return
    st.session_state[state.RANGE_AXIS] = spec.axis
    st.session_state[state.RANGE] = (spec.start, spec.stop)


r1, r2 = st.columns([1, 3])
r1.selectbox("Axis", list(AXES), key=state.RANGE_AXIS, on_change=lambda: st.session_state.pop(state.RANGE, None))
r1.button("Thesis preset 160–190", on_click=_apply_thesis_preset,
          help="The 2023 thesis' choice: full-resolution IXI, slices 160–190 of the stored "
               "superior–inferior axis, 30 per volume, mapped to canonical indices.")
if error := st.session_state.pop(state.PRESET_ERROR, None):
    r1.warning(error)
start, stop = r2.slider("Slices (start, stop — stop excluded)", 0, n_slices, key=state.RANGE)
if stop <= start:
    r2.error("The range is empty: move the stop above the start.")
    st.stop()
st.session_state[state.CHOSEN_AXIS], st.session_state[state.CHOSEN_RANGE] = range_axis, (start, stop)
a = AXES[range_axis]
first_mm, last_mm = (volume.voxel_to_mm([start if i == a else 0 for i in range(3)])[a],
                     volume.voxel_to_mm([stop - 1 if i == a else 0 for i in range(3)])[a])
yield_ = range_yield(data.shapes(tuple(entries)), range_axis, start, stop)
r2.markdown(f"**{stop - start} slices** per volume · index {start}–{stop - 1} · "
            f"{first_mm:+.1f} to {last_mm:+.1f} mm · cohort: **{yield_['slices']} slices** from "
            f"{yield_['volumes']} of {len(entries)} volumes")
if yield_["too_small"]:
    r2.warning(f"{len(yield_['too_small'])} volumes are too small for this range and would be skipped: "
               + ", ".join(yield_["too_small"][:5]))
if yield_["unreadable"]:
    r2.warning(f"{len(yield_['unreadable'])} files are unreadable: " + ", ".join(yield_["unreadable"][:5]))


st.markdown(f"**This subject** — chosen slices ({range_axis})")
strip = preview_indices(start, stop, 12)
st.image(data.thumbnails(entry, range_axis, tuple(strip), radiological, loaded=True),
         caption=" · ".join(str(i) for i in strip), output_format="PNG")
others = [s for s in options if s != subject][:6]
# The other subjects' previews come from thumbnail stacks kept on disk; making a stack reads
# the whole volume once, so until they exist the grid waits for a click (a fast first picture).
if others and not (st.session_state.get(state.SHOW_OTHERS)
                   or data.thumbnails_ready([by_id[o] for o in others], range_axis, radiological)):
    st.markdown("**Other subjects** — first / middle / last chosen slice")
    st.button(f"Show {len(others)} other subjects", on_click=st.session_state.__setitem__,
              args=(state.SHOW_OTHERS, True),
              help="Reads each subject's volume once; their thumbnails are then kept on disk, "
                   "so later previews (any range) are immediate.")
elif others:
    st.markdown("**Other subjects** — first / middle / last chosen slice")
    ends = (start, (start + stop - 1) // 2, stop - 1)
    grid = st.columns(min(3, len(others)))
    for n, other in enumerate(others):
        with grid[n % len(grid)]:
            try:
                st.image(data.thumbnails(by_id[other], range_axis, ends, radiological), caption=other,
                         output_format="PNG")
            except UserError as exc:
                st.warning(f"{other}: {exc}")
st.page_link("pages/dataset.py", label="Build a dataset from this range →", icon=":material/dataset:")
