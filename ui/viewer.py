"""Browse's three planes: drawn in the browser from one 8-bit volume per subject, or on the server.

The browser path (:mod:`ui.components.volume_viewer`) receives the subject's volume once and
draws every slice move there; the page reruns only for a click on a voxel (the readout below the
views) or a range set from the views.  The server path (``Draw in the browser`` off, no built
assets, or a browser that cannot unpack the volume) renders each plane as a PNG per move.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.viz.images import png_data_url
from core.viz.volume import preview_planes, viewer_meta, volume_payload, window_lut
from ui import data, state
from ui.components import volume_viewer as component

__all__ = ["three_planes", "payload"]

VIEWS = (("axial", 2), ("coronal", 1), ("sagittal", 0))


@st.cache_data(max_entries=4, show_spinner=False)
def payload(entry, level: float, width: float) -> bytes:
    """The volume of ``entry`` windowed to 8 bit and compressed (:func:`core.viz.volume.volume_payload`)."""
    return volume_payload(data.volume(entry), level, width)


def _on_event() -> None:
    """Apply the viewer's event (a clicked voxel or a range set from the views) to the page's state."""
    event = st.session_state.get(state.BROWSE_VIEWER) or {}
    if not event or event.get("seq") == st.session_state.get(state.BROWSE_VIEWER_SEEN):
        return
    st.session_state[state.BROWSE_VIEWER_SEEN] = event.get("seq")
    kind = event.get("event")
    subject = st.session_state.get(state.CROSSHAIR, (None,))[0]
    if kind == "voxel" and subject is not None:
        voxel = tuple(int(v) for v in event["voxel"])
        st.session_state[state.CROSSHAIR] = (subject, voxel)
        for _, a in VIEWS:  # the server path's sliders follow, should the user switch to it
            st.session_state[state.crosshair_slider(subject, a)] = voxel[a]
    elif kind == "range":
        st.session_state[state.RANGE] = tuple(int(v) for v in event["range"])
    elif kind == "unsupported":
        st.session_state[state.BROWSE_CLIENT_FAILED] = str(event.get("message", "unknown reason"))


def _readout(volume, crosshair, level: float, width: float, where: str = "") -> None:
    x, y, z = volume.voxel_to_mm(crosshair)
    st.markdown(f"**Voxel** ({crosshair[0]}, {crosshair[1]}, {crosshair[2]}){where} · **RAS** "
                f"({x:+.1f}, {y:+.1f}, {z:+.1f}) mm · **intensity** {volume.data[tuple(crosshair)]:.1f} · "
                f"window {level - width / 2:.0f}–{level + width / 2:.0f}")


def _client_planes(entry, volume, level, width, radiological, range_box):
    # Not a fragment: the viewer's events (a voxel click, a range, a fallback) rerun the whole page.
    # In a fragment, an event that arrived while a click elsewhere (the sidebar's source) was
    # rerunning the page blanked the whole app under load (Streamlit 1.67, "Bad delta path index
    # 8 (should be between [0, 2])": the fragment's elements written where the new page has none;
    # 3 times in 93 tries under load here, once in CI).  Slice moves never reach the server, so
    # what a full rerun costs falls on a click, not on a slider.
    auto_level, auto_width, _, _ = data.window_stats(entry)
    lut = window_lut(auto_level, auto_width, level, width)
    identity = bool((lut == np.arange(256)).all())
    crosshair = st.session_state[state.CROSSHAIR][1]
    meta = viewer_meta(volume, radiological, crosshair, range_box, None if identity else lut)
    token = f"{entry.identity}|{auto_level:.6g}|{auto_width:.6g}"
    # A subject's first render carries the three planes at the crosshair (drawn at once) beside the
    # volume's URL (fetched by the viewer after that).  The viewer used to ask for the volume with
    # an event of its own: that was a rerun no user asked for (one of those racing a sidebar click
    # blanked the app, see above), and now it would be a whole page's.  Making the volume here costs
    # ~140 ms for a 256×256×150 head, once per subject (cached).
    first = st.session_state.get(state.BROWSE_VIEWER_SENT) != token
    st.session_state[state.BROWSE_VIEWER_SENT] = token
    component.volume_viewer(payload=payload(entry, auto_level, auto_width), token=token, meta=meta,
                            key=state.BROWSE_VIEWER, on_change=_on_event,
                            preview=preview_planes(volume, crosshair, auto_level, auto_width, radiological) if first else None)
    _readout(volume, crosshair, level, width, " (last click)")


@st.fragment
def _server_planes(entry, volume, subject, level, width, radiological, range_box):
    # A fragment: moving a slice slider reruns only the three views and the readout (~10 ms of
    # work), not the subject table, the range picker and the thumbnails below.
    crosshair = list(st.session_state[state.CROSSHAIR][1])
    views = st.columns(3)
    for column, (axis, a) in zip(views, VIEWS):
        crosshair[a] = column.slider(f"{axis.capitalize()} slice", 0, volume.shape[a] - 1, crosshair[a],
                                     key=state.crosshair_slider(subject, a))
    st.session_state[state.CROSSHAIR] = (subject, tuple(crosshair))
    for column, (axis, a) in zip(views, VIEWS):
        png = data.plane_png(entry, axis, crosshair[a], level, width, radiological, tuple(crosshair), range_box)
        position = volume.voxel_to_mm(crosshair)[a]
        column.image(png_data_url(png), caption=f"{axis} {crosshair[a]} ({position:+.1f} mm)")
    _readout(volume, crosshair, level, width)


def three_planes(entry, volume, subject, level: float, width: float, radiological: bool, range_box) -> None:
    """Axial, coronal and sagittal planes of ``volume`` with crosshair and ``range_box``
    (``(axis, start, stop)``) lines: in the browser when it can, else on the server."""
    failed = st.session_state.get(state.BROWSE_CLIENT_FAILED)
    available = component.built() and not failed
    client = st.toggle("Draw in the browser", value=available, key=state.BROWSE_CLIENT, disabled=not available,
                       help="On: the subject's volume is sent once (8 bit) and every slice is drawn in "
                            "the browser; drag on a view to move the crosshair, right- or shift-drag "
                            "for the display window. Off: each slice move asks the server for a picture.")
    if failed:
        st.caption(f"The browser could not draw the volume ({failed}); the server draws the planes.")
    elif not component.built():
        st.caption("The browser viewer's assets are not built (scripts/build_components.sh); "
                   "the server draws the planes.")
    if client and available:
        _client_planes(entry, volume, level, width, radiological, range_box)
    else:
        _server_planes(entry, volume, subject, level, width, radiological, range_box)
