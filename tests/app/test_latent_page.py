"""AppTest for the Latent explorer page on a tiny trained VAE run: sliders, copy view, samples, map click."""

from __future__ import annotations

import json
import shutil

import pytest

from streamlit.testing.v1 import AppTest

from core.latent.view import parse_view
from ui import state

APP = "../../app.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_vae_run):
    """A runs folder holding a copy of the session's tiny VAE run (the page may write caches into it)."""
    root = tmp_path_factory.mktemp("latent_page_runs")
    shutil.copytree(tiny_vae_run, root / "vae-tiny")
    return root


@pytest.fixture
def env(runs_dir, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(runs_dir))
    return runs_dir


def _page(client: bool = False) -> AppTest:
    """The Latent page; ``client=False`` decodes on the server (AppTest runs no component JavaScript,
    so the server's sliders are what these tests drive)."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.SOURCE_KIND] = "folder"
    at.session_state[state.SOURCE_PATH] = ""
    at.session_state[state.LATENT_CLIENT] = client
    at.run()
    return at.switch_page("pages/latent.py").run()


def _view(at):
    return parse_view(at.code[0].value)


def test_without_runs_points_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(tmp_path / "none"))
    at = _page()
    assert not at.exception, at.exception
    assert any("No run has a model yet" in i.value for i in at.info)


def test_sliders_copy_view_samples_and_map_click(env):
    at = _page()
    assert not at.exception, at.exception
    first = _view(at)
    assert first.run.startswith("vae-tiny@") and first.start == "slice" and not first.sliders

    at.slider(key=state.LATENT_SLIDER + "pc1").set_value(2.0).run()
    assert not at.exception, at.exception
    moved = _view(at)
    assert moved.sliders == {"pc1": 2.0}
    assert "moved" in at.markdown[-1].value or any("moved" in m.value for m in at.markdown)

    # paste the string back after a reset: the same view comes back
    reset = next(b for b in at.button if b.label == "Reset sliders")
    reset.click().run()
    assert _view(at).sliders == {}
    at.text_input(key=state.LATENT_PASTE).set_value(moved.to_string())
    next(b for b in at.button if b.label == "Apply view").click().run()
    assert not at.exception, at.exception
    assert any("View applied" in s.value for s in at.success)
    assert _view(at) == moved

    # malformed and foreign strings: a message, the page keeps working
    at.text_input(key=state.LATENT_PASTE).set_value("lbview1.nonsense.00000000")
    next(b for b in at.button if b.label == "Apply view").click().run()
    assert any("Cannot apply this view" in e.value for e in at.error)
    other = moved.__class__("other-run@1", sliders={"pc1": 1}).to_string()
    at.text_input(key=state.LATENT_PASTE).set_value(other)
    next(b for b in at.button if b.label == "Apply view").click().run()
    assert any("belongs to run 'other-run'" in e.value for e in at.error)
    assert not at.exception and _view(at) == moved

    # a sample tile loads into the sliders
    at.button(key="latent_tile_3").click().run()
    assert not at.exception, at.exception
    view = _view(at)
    assert (view.start, view.sample_index, view.sliders) == ("sample", 3, {})

    # map: a Vega-Lite chart whose hover tooltip carries each slice's thumbnail (field "image")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, "the map (one point a slice) is drawn with Altair / Vega-Lite"
    chart = charts[0].proto
    spec = json.loads(chart.spec)
    tooltip = [t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert tooltip[0] == "image" and "row" in tooltip
    assert list(chart.selection_mode) == ["pick"]
    import pyarrow as pa

    table = pa.ipc.open_stream(chart.datasets[0].data.data).read_all().to_pandas()
    assert table["row"].tolist() == list(range(72))  # the tiny dataset's 48 + 8 + 16 slices
    assert table["image"].str.startswith("data:image/png;base64,").all() and table["image"].nunique() > 1
    # the chart's selection state before any click holds no row, and selects nothing
    assert at.session_state[state.LATENT_MAP_CHART]["selection"]["pick"] in ({}, [])
    assert at.session_state[state.LATENT_SELECTED_ROW] is None

    # the chart's click callback writes the selected row; the row box is the same key
    at.number_input(key=state.LATENT_SELECTED_ROW).set_value(5).run()
    assert not at.exception, at.exception
    assert any(h.value.startswith("Point 5:") for h in at.subheader)
    assert len(at.get("download_button")) >= 3  # PNG strip, GIF, CSV
    at.button(key="latent_from_point").click().run()
    view = _view(at)
    assert view.start == "slice" and view.subject and not at.exception


def test_map_callback_takes_the_global_row_from_the_selection(env):
    """The function the chart calls on a click, fed the event shapes Streamlit gives it: the Altair
    map's point selection over ``row``, and plotly's ``customdata`` (maps above the thumbnail limit)."""
    at = _page()
    from ui import latent as panel

    fake = {"selection": {"points": [{"curve_number": 2, "point_index": 0, "customdata": 17}]}}
    with pytest.MonkeyPatch.context() as mp:
        store = {state.LATENT_MAP_CHART: fake}
        mp.setattr(panel.st, "session_state", store)
        panel.on_map_select()
        assert store[state.LATENT_SELECTED_ROW] == 17
        store[state.LATENT_MAP_CHART] = {"selection": {"points": [{"customdata": [-1]}, {"customdata": [4]}]}}
        panel.on_map_select()
        assert store[state.LATENT_SELECTED_ROW] == 4
        store[state.LATENT_MAP_CHART] = {"selection": {"pick": [{"row": 23}]}}
        panel.on_map_select()
        assert store[state.LATENT_SELECTED_ROW] == 23
        store[state.LATENT_MAP_CHART] = {"selection": {"pick": {"row": [31]}}}
        panel.on_map_select()
        assert store[state.LATENT_SELECTED_ROW] == 31
        # a click on empty space clears the chart's selection: the panel keeps the last point
        store[state.LATENT_MAP_CHART] = {"selection": {"pick": {}}}
        panel.on_map_select()
        assert store[state.LATENT_SELECTED_ROW] == 31
    assert not at.exception


def test_dataset_gone_is_a_message_with_a_rebuild_offer(env, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(env / "vae-tiny", root / "lost")
    config = json.loads((root / "lost" / "config.json").read_text())
    config["dataset"]["path"] = str(tmp_path / "deleted")
    (root / "lost" / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(root))
    at = _page()
    assert not at.exception, at.exception
    assert any("gone from the cache" in e.value for e in at.error)
    assert any(b.label == "Rebuild the dataset" for b in at.button)


def test_browser_decoding_renders_the_component_and_exports_the_decoder(env):
    """Default mode: the sliders are the client-side component's (no server slider per direction),
    the decoder is exported into the run folder once, keyed on the model stamp, and the view string
    is still on the page."""
    from core.training.runs import RunData

    at = _page(client=True)
    assert not at.exception, at.exception
    assert at.toggle(key=state.LATENT_CLIENT).value is True
    assert not [s for s in at.slider if str(s.key).startswith(state.LATENT_SLIDER)]
    components = at.get("component_instance")
    assert [c.proto.component_name.rsplit(".", 1)[-1] for c in components] == ["latent_decoder"]
    assert json.loads(components[0].proto.json_args)["model_key"] == RunData.open(env / "vae-tiny").fingerprint
    run = RunData.open(env / "vae-tiny")
    assert (run.path / "export" / f"decoder-{run.stamp[0]}.onnx").is_file()
    assert _view(at).run == run.fingerprint
    assert not any("Decoding on the server" in c.value for c in at.caption)


def test_a_browser_that_cannot_decode_falls_back_to_the_server_in_one_line(env):
    """The component's "unsupported" report (here put in session state as the page stores it) makes
    the page decode on the server, with the server's sliders and a one-line reason."""
    from core.training.runs import RunData

    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.SOURCE_KIND] = "folder"
    at.session_state[state.SOURCE_PATH] = ""
    at.session_state[state.LATENT_CLIENT_FAILED] = {RunData.open(env / "vae-tiny").fingerprint: "no WebAssembly"}
    at.run()
    at = at.switch_page("pages/latent.py").run()
    assert not at.exception, at.exception
    lines = [c.value for c in at.caption if "Decoding on the server" in c.value]
    assert lines == ["Decoding on the server: this browser could not run the decoder (no WebAssembly)."]
    assert at.slider(key=state.LATENT_SLIDER + "pc1").value == 0.0
    assert at.toggle(key=state.LATENT_CLIENT).disabled


def test_subjects_an_open_reader_study_reserves_are_left_out(env):
    # A study's real images are test slices of the subjects it reserves: the explorer (map, pickers,
    # point panel) leaves those subjects out while it is open.
    from core.evaluation.study import StudyStore
    from core.training.runs import RunData

    store = StudyStore(env)
    study = store.create_study(env / "vae-tiny", "single", n_items=4, real_share=0.5)
    try:
        [hidden] = store.reserved_subjects()
        meta = RunData.open(env / "vae-tiny").metadata()
        left = meta[meta["subject"] != hidden]
        at = _page()
        assert not at.exception, at.exception
        captions = [c.value for c in at.caption]
        assert any("1 test subject(s) hidden" in c for c in captions), captions
        assert any(f"{len(left)} slices of {left['subject'].nunique()} subjects" in c for c in captions), captions
        offered = [o for s in at.selectbox if s.label.endswith("Subject") for o in s.options]
        assert offered and not any(hidden in o for o in offered)
    finally:
        store.close_study(study["study_id"], study["owner_key"])
    at.run()
    assert not at.exception, at.exception
    assert not any("hidden" in c.value for c in at.caption)
