"""AppTest of Browse's three planes: the browser viewer's arguments, its events, the server fallback."""

from __future__ import annotations

import json
import zlib

import numpy as np
from streamlit.testing.v1 import AppTest

from core.data.volumes import load_volume, scan_source
from core.viz.images import apply_window, auto_window

APP = "../../app.py"


def _browse(source_path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = str(source_path)
    return at.run()


def _viewer(at):
    found = [e for e in at.get("component_instance")
             if "volume_viewer" in e.proto.component_name]
    assert len(found) == 1
    instance = found[0].proto
    return json.loads(instance.json_args), instance


def test_the_viewer_gets_planes_and_the_volume_url_in_one_render(ixi_sample_dir):
    at = _browse(ixi_sample_dir)
    assert not at.exception, at.exception
    args, instance = _viewer(at)
    volume = load_volume(scan_source(ixi_sample_dir)[0])
    meta = args["meta"]
    assert meta["shape"] == list(volume.shape) and meta["crosshair"] == [s // 2 for s in volume.shape]
    assert meta["radiological"] is True and meta["lut"] is None  # auto window: the 8-bit values as they are
    assert meta["range"][0] == "axial" and np.allclose(meta["affine"], volume.affine, atol=1e-5)
    # A subject's first render: the three planes at the crosshair, as the server cuts them (drawn
    # at once), and the volume's media URL beside them (fetched after), so that the viewer never
    # has to ask for it with a rerun of its own (one such rerun, racing a sidebar click, blanked
    # the app).
    assert "/media/" in args["url"] and args["url"].endswith(".bin") and "data" not in args
    preview = {a.key: a.bytes for a in instance.special_args}
    assert set(preview) == {"preview_axial", "preview_coronal", "preview_sagittal"}
    from core.data.slices import AXES, plane

    level, width = auto_window(volume.data)
    for axis, a in AXES.items():
        expected = apply_window(plane(volume.data, axis, volume.shape[a] // 2, True), level, width)
        assert preview[f"preview_{axis}"] == expected.tobytes(), axis
    # A later run: the same URL (the browser keeps the volume), no planes.
    at.slider(key="range").set_value((40, 60)).run()
    again, instance = _viewer(at)
    assert again["url"] == args["url"] and not instance.special_args
    assert again["meta"]["range"] == ["axial", 40, 60]
    at.slider(key="range").set_value((41, 60)).run()
    assert _viewer(at)[0]["url"] == again["url"]
    # A new subject: its planes and its own volume again, in one render.
    at.selectbox(key="subject_id").set_value("IXI015-HH-1258-T1").run()
    other, instance = _viewer(at)
    assert other["url"] not in (None, again["url"]) and len(instance.special_args) == 3


def test_the_payload_is_the_servers_window_of_the_volume(ixi_sample_dir):
    from ui.viewer import payload

    entry = scan_source(ixi_sample_dir)[0]
    volume = load_volume(entry)
    level, width = auto_window(volume.data)
    raw = np.frombuffer(zlib.decompress(payload(entry, level, width)), np.uint8).reshape(volume.shape)
    np.testing.assert_array_equal(raw, apply_window(volume.data, level, width))


def test_a_manual_window_is_a_table_over_the_same_bytes(ixi_sample_dir):
    at = _browse(ixi_sample_dir)
    url = _viewer(at)[0]["url"]
    at.toggle(key="auto_window").set_value(False).run()
    at.slider(key="window_level").set_value(400.0).run()
    args, _ = _viewer(at)
    assert args["url"] == url and len(args["meta"]["lut"]) == 256
    assert args["meta"]["lut"] == sorted(args["meta"]["lut"])  # monotone: brighter stays brighter


def test_server_fallback_draws_three_planes_with_sliders(ixi_sample_dir):
    at = _browse(ixi_sample_dir)
    images = len(at.get("image"))  # the range previews
    at.toggle(key="browse_client").set_value(False).run()
    assert not at.exception
    assert not [e for e in at.get("component_instance")
                if "volume_viewer" in e.proto.component_name]
    assert len(at.get("image")) == images + 3  # the three planes, as PNGs from the server
    sliders = [s.label for s in at.slider]
    assert {"Axial slice", "Coronal slice", "Sagittal slice"} <= set(sliders)


def _events_script():
    import streamlit as st

    from ui import state
    from ui.viewer import _on_event

    st.session_state.setdefault(state.CROSSHAIR, ("S1", (1, 2, 3)))
    st.session_state.setdefault(state.RANGE, (0, 10))
    event = st.session_state.get("next_event")
    if event:
        st.session_state[state.BROWSE_VIEWER] = event
        _on_event()
    st.write(repr((st.session_state[state.CROSSHAIR], st.session_state[state.RANGE],
                   st.session_state.get(state.BROWSE_CLIENT_FAILED))))


def test_viewer_events_move_the_crosshair_and_the_range_once_each():
    at = AppTest.from_function(_events_script).run()
    at.session_state["next_event"] = {"event": "voxel", "voxel": [4, 5, 6], "seq": 1}
    at.run()
    assert at.markdown[-1].value == repr((("S1", (4, 5, 6)), (0, 10), None))
    at.session_state["next_event"] = {"event": "range", "range": [3, 8], "seq": 2}
    at.run()
    assert at.markdown[-1].value == repr((("S1", (4, 5, 6)), (3, 8), None))
    # the same event again (a rerun that carries the last value) changes nothing
    at.session_state["next_event"] = {"event": "voxel", "voxel": [9, 9, 9], "seq": 2}
    at.run()
    assert at.markdown[-1].value == repr((("S1", (4, 5, 6)), (3, 8), None))
    at.session_state["next_event"] = {"event": "unsupported", "message": "no DecompressionStream", "seq": 3}
    at.run()
    assert at.markdown[-1].value == repr((("S1", (4, 5, 6)), (3, 8), "no DecompressionStream"))
