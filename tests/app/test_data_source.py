"""The sidebar's data-source choice survives a page reload (a new session of the same tab).

The kind of source is kept in the URL (``?source=folder``); the paths typed in the sidebar are
kept on this machine, in ``ui_settings.json`` under the cache folder, never in the URL.
"""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from helpers import smooth_head, write_nifti
from ui import state

APP = "../../app.py"


def _app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query or {})
    return at


def test_a_reload_keeps_the_folder_choice_and_path(ixi_sample_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "cache"))
    # The radio writes the session state key; the sidebar puts the choice in the URL.
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state[state.SOURCE_KIND] = "folder"
    at.run()
    assert at.query_params == {"source": "folder"}
    assert "type a folder" in at.error[0].value
    # Typing the folder (on_change) keeps it on this machine, not in the URL.
    at.text_input(key=state.SOURCE_PATH).set_value(str(ixi_sample_dir)).run()
    assert not at.exception
    assert at.selectbox(key=state.SUBJECT).value == "IXI012-HH-1211-T1"
    saved = json.loads((tmp_path / "cache" / "ui_settings.json").read_text())
    assert saved["source_path"] == str(ixi_sample_dir)

    reloaded = _app({"source": "folder"}).run()  # the URL the browser reloads
    assert not reloaded.exception
    assert reloaded.radio(key=state.SOURCE_KIND).value == "folder"
    assert reloaded.text_input(key=state.SOURCE_PATH).value == str(ixi_sample_dir)
    assert reloaded.selectbox(key=state.SUBJECT).value == "IXI012-HH-1211-T1"
    assert reloaded.query_params == {"source": "folder"}
    # The URL's choice wins over the default (demo here).
    assert _app({"source": "upload"}).run().radio(key=state.SOURCE_KIND).value == "upload"


def test_a_server_started_for_other_data_starts_from_that_data(ixi_sample_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "cache"))
    at = _app({"source": "folder"}).run()
    at.text_input(key=state.SOURCE_PATH).set_value(str(ixi_sample_dir)).run()
    assert at.selectbox(key=state.SUBJECT).value == "IXI012-HH-1211-T1"
    assert (tmp_path / "cache" / "ui_settings.json").is_file()
    # A new server with LATENTBRAIN_DATA naming another folder: its data, not the saved path.
    other = tmp_path / "other"
    other.mkdir()
    write_nifti(other / "IXI901-Guys-0001-T1.nii.gz", smooth_head())
    monkeypatch.setenv("LATENTBRAIN_DATA", str(other))
    fresh = _app().run()
    assert not fresh.exception
    assert fresh.radio(key=state.SOURCE_KIND).value == "folder" and fresh.query_params == {}
    assert fresh.selectbox(key=state.SUBJECT).value == "IXI901-Guys-0001-T1"


def test_a_reload_keeps_an_uploaded_file(tmp_path, monkeypatch):
    from core.data.cohort import save_upload

    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "cache"))
    volume = write_nifti(tmp_path / "IXI902-HH-0002-T1.nii.gz", smooth_head(seed=2))
    folder = save_upload(volume.name, volume.read_bytes())  # what the file uploader does
    at = _app({"source": "upload"})
    at.session_state[state.UPLOAD] = str(folder)
    at.run()
    assert at.query_params == {"source": "upload", "upload": folder.name}
    reloaded = _app(at.query_params).run()
    assert not reloaded.exception
    assert reloaded.selectbox(key=state.SUBJECT).value == "IXI902-HH-0002-T1"
    # A token that names no upload (or is not a hash) is ignored: the page asks for a file.
    for token in ("0123456789abcdef", "../../etc"):
        stranger = _app({"source": "upload", "upload": token}).run()
        assert not stranger.exception
        assert "upload a .nii or .nii.gz file" in stranger.error[0].value
