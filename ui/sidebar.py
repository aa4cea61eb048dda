"""The data-source sidebar shared by every page.

The choice survives a page reload: the kind of source (and an upload's content hash) is kept
in the page's URL (``?source=folder``), the folder and demographics paths typed last are kept
in a small settings file under the cache folder on this machine (``ui_settings.json``), so no
data path ever goes into a URL.
"""

from __future__ import annotations

import re

import streamlit as st

from core import settings
from core.atomic import read_json, write_json_atomic
from core.data.cohort import save_upload
from ui import state
from ui.data import default_source_kind

#: URL query parameters: the source kind, and the content hash naming an uploaded file's folder.
SOURCE_PARAM = "source"
UPLOAD_PARAM = "upload"
_UPLOAD_TOKEN = re.compile(r"[0-9a-f]{16}")


def settings_file():
    """Where the paths typed last in the sidebar are kept (on this machine, under the cache)."""
    return settings.cache_dir() / "ui_settings.json"


def _saved_paths() -> dict:
    """The paths saved by :func:`_save_paths`, or {} when none (or saved under another
    ``LATENTBRAIN_DATA``: a server started for other data starts from that data)."""
    saved = read_json(settings_file(), {})
    env = str(settings.data_source() or "")
    if not isinstance(saved, dict) or saved.get("env_data", "") != env:
        return {}
    return {k: v for k, v in saved.items() if k in ("source_path", "demographics_path") and isinstance(v, str)}


def _save_paths() -> None:
    """on_change of the path boxes: keep what was typed for the next session on this machine."""
    record = {"source_path": st.session_state.get(state.SOURCE_PATH) or "",
              "demographics_path": st.session_state.get(state.DEMOGRAPHICS_PATH) or "",
              "env_data": str(settings.data_source() or "")}
    try:
        settings_file().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(settings_file(), record)
    except OSError:
        pass  # a read-only cache only means the paths are not remembered


def _upload_folder(token) -> str | None:
    """The folder :func:`core.data.cohort.save_upload` made for ``token``, if it is one."""
    if not isinstance(token, str) or not _UPLOAD_TOKEN.fullmatch(token):
        return None
    folder = settings.cache_dir() / "uploads" / token
    return str(folder) if folder.is_dir() else None


def _restore_choice() -> None:
    """A new session (a new tab, or a reload) starts from the URL's choice and the saved paths."""
    if state.SOURCE_KIND not in st.session_state:
        kind = st.query_params.get(SOURCE_PARAM)
        st.session_state[state.SOURCE_KIND] = kind if kind in state.SOURCE_KINDS else default_source_kind()
    saved = _saved_paths()
    st.session_state.setdefault(state.SOURCE_PATH, saved.get("source_path", str(settings.data_source() or "")))
    st.session_state.setdefault(state.DEMOGRAPHICS_PATH, saved.get("demographics_path", ""))
    if state.UPLOAD not in st.session_state and (folder := _upload_folder(st.query_params.get(UPLOAD_PARAM))):
        st.session_state[state.UPLOAD] = folder


def _sync_url(kind: str) -> None:
    """Write the choice into the URL (only what changed; nothing when it is the default)."""
    wanted = {SOURCE_PARAM: kind if kind != default_source_kind() else None,
              UPLOAD_PARAM: None}
    if kind == "upload" and st.session_state.get(state.UPLOAD):
        from pathlib import Path

        token = Path(st.session_state[state.UPLOAD]).name
        wanted[UPLOAD_PARAM] = token if _UPLOAD_TOKEN.fullmatch(token) else None
    for key, value in wanted.items():
        if value is None and key in st.query_params:
            del st.query_params[key]
        elif value is not None and st.query_params.get(key) != value:
            st.query_params[key] = value


def data_source_sidebar() -> None:
    """Let the user choose the demo cohort, a folder / IXI-T1.tar, or an uploaded file."""
    _restore_choice()
    with st.sidebar:
        st.header("Data")
        st.radio("Source", list(state.SOURCE_KINDS), format_func=state.SOURCE_KINDS.get,
                 key=state.SOURCE_KIND)
        kind = st.session_state[state.SOURCE_KIND]
        if kind == "folder":
            st.text_input("Folder of NIfTI files, or IXI-T1.tar", key=state.SOURCE_PATH, on_change=_save_paths,
                          help="IXI: a folder of IXI???-{Guys|HH|IOP}-????-T1.nii.gz or the downloaded "
                               "IXI-T1.tar as it is (no need to extract it).")
            st.text_input("Demographics (IXI.xls or CSV, optional)", key=state.DEMOGRAPHICS_PATH,
                          on_change=_save_paths,
                          help="Found automatically when IXI.xls or one CSV lies next to the data.")
        elif kind == "upload":
            upload = st.file_uploader("A T1 volume (.nii / .nii.gz)", type=["nii", "gz"])
            if upload is not None:
                st.session_state[state.UPLOAD] = str(save_upload(upload.name, upload.getvalue()))
        else:
            st.caption("Synthetic subjects made from the MNI152 template: **not real patients**. "
                       "Choose *Folder or IXI-T1.tar* to use real IXI data.")
        st.caption("Images never leave this machine.")
    _sync_url(kind)
