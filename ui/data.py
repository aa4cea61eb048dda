"""Cached access to the cohort, volumes and rendered planes for the pages."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

from core import settings
from core.data.cohort import Cohort, load_cohort
from core.data.demographics import find_demographics
from core.data.volumes import VolumeEntry, canonical_shape, load_volume
from core.errors import UserError
from core.data import thumbnails as thumbs
from core.viz.images import auto_window, grid_png, render_plane
from ui import state


def demo_folder() -> Path:
    """The demo cohort's folder, built on first use with a visible progress bar."""
    from core.data import demo

    if demo.demo_is_built():
        return settings.demo_dir()
    with st.status("Building the synthetic demo cohort (first start only)…", expanded=True) as box:
        bar = st.progress(0.0)
        folder = demo.build_demo_cohort(progress=lambda f, msg: bar.progress(min(1.0, f), text=msg))
        box.update(label="Demo cohort ready", state="complete", expanded=False)
    return folder


class Source(NamedTuple):
    """What the sidebar names: a data source, an optional demographics file, is it the demo."""

    path: Path
    demographics: Path | None
    is_demo: bool


def default_source_kind() -> str:
    """"folder" when LATENTBRAIN_DATA names a data source, else "demo"."""
    return "folder" if settings.data_source() else "demo"


def current_source() -> Source:
    """The data source and demographics chosen in the sidebar (the demo cohort is built if needed)."""
    kind = st.session_state.get(state.SOURCE_KIND, default_source_kind())
    if kind == "folder":
        text = (st.session_state.get(state.SOURCE_PATH) or "").strip()
        if not text:
            raise UserError("type a folder of NIfTI volumes or the path of IXI-T1.tar in the sidebar")
        source = Path(text).expanduser()
    elif kind == "upload":
        source = st.session_state.get(state.UPLOAD)
        if not source:
            raise UserError("upload a .nii or .nii.gz file in the sidebar")
        source = Path(source)
    else:
        source = demo_folder()
    demographics_text = (st.session_state.get(state.DEMOGRAPHICS_PATH) or "").strip()
    return Source(source, Path(demographics_text).expanduser() if demographics_text else None, kind == "demo")


def _mtime(path: Path | None) -> int:
    try:
        return path.stat().st_mtime_ns if path else 0
    except OSError:
        return 0


@st.cache_data(show_spinner="Scanning volumes…", max_entries=8)
def _cohort(source: str, demographics: str | None, _mtimes: tuple) -> Cohort:
    return load_cohort(source, demographics)


def cohort() -> tuple[Cohort, bool]:
    """(cohort of the current data source, is it the synthetic demo) — see core.data.cohort."""
    source = current_source()
    mtimes = (_mtime(source.path), _mtime(source.demographics or find_demographics(source.path)))
    found = _cohort(str(source.path), str(source.demographics) if source.demographics else None, mtimes)
    return found, source.is_demo


@st.cache_resource(max_entries=3, show_spinner="Loading volume…")
def volume(entry: VolumeEntry):
    """A loaded volume, kept in memory (three at a time, ~40 MB each at full resolution: the
    subject shown and the last two; the range preview of other subjects reads thumbnails from
    disk, :mod:`core.data.thumbnails`, so it never needs their volumes here)."""
    return load_volume(entry)


@st.cache_data(max_entries=64, show_spinner=False)
def window_stats(entry: VolumeEntry) -> tuple[float, float, float, float]:
    """(auto level, auto width, min, max) of a volume's intensities: computed once per file."""
    data = volume(entry).data
    level, width = auto_window(data)
    return level, width, float(data.min()), float(data.max())


@st.cache_data(max_entries=16)
def shapes(entries: tuple[VolumeEntry, ...]) -> dict:
    """Canonical shape per subject, from headers only; unreadable files map to their error."""
    found = {}
    for entry in entries:
        try:
            found[entry.subject_id] = canonical_shape(entry)
        except UserError as exc:
            found[entry.subject_id] = str(exc)
    return found


@st.cache_data(max_entries=512, show_spinner=False)  # ~10 ms: a spinner would cost a thread and messages
def plane_png(entry: VolumeEntry, axis: str, index: int, level: float, width: float,
              radiological: bool, crosshair, range_lines, display_px: int = 360) -> bytes:
    """Rendered plane PNG bytes, cached per file identity and view parameters."""
    return render_plane(volume(entry), axis, index, level, width, radiological,
                        crosshair, range_lines, display_px)


@st.cache_data(max_entries=256, show_spinner=False)
def thumbnails(entry: VolumeEntry, axis: str, indices: tuple, radiological: bool, loaded: bool = False) -> bytes:
    """A row of slice thumbnails (PNG) scaled like the dataset, for the range preview.

    From the subject's thumbnail stack on disk (:mod:`core.data.thumbnails`); the first time,
    the stack is made from the volume: the one in memory when ``loaded`` (the subject shown),
    otherwise read for this once and not kept.
    """
    images = thumbs.thumbnails(entry, axis, indices, radiological, volume=volume(entry) if loaded else None)
    return grid_png(images, ncols=len(indices))


def thumbnails_ready(entries, axis: str, radiological: bool) -> bool:
    """Whether every entry's thumbnail stack along ``axis`` is on disk (previews need no volume)."""
    return all(thumbs.is_cached(entry, axis, radiological) for entry in entries)
