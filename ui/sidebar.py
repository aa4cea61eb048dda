"""The data-source sidebar shared by every page."""

from __future__ import annotations

import streamlit as st

from core import settings
from core.data.cohort import save_upload
from ui import state
from ui.data import default_source_kind


def data_source_sidebar() -> None:
    """Let the user choose the demo cohort, a folder / IXI-T1.tar, or an uploaded file."""
    env_source = settings.data_source()
    st.session_state.setdefault(state.SOURCE_KIND, default_source_kind())
    st.session_state.setdefault(state.SOURCE_PATH, str(env_source or ""))
    with st.sidebar:
        st.header("Data")
        st.radio("Source", list(state.SOURCE_KINDS), format_func=state.SOURCE_KINDS.get,
                 key=state.SOURCE_KIND)
        kind = st.session_state[state.SOURCE_KIND]
        if kind == "folder":
            st.text_input("Folder of NIfTI files, or IXI-T1.tar", key=state.SOURCE_PATH,
                          help="IXI: a folder of IXI???-{Guys|HH|IOP}-????-T1.nii.gz or the downloaded "
                               "IXI-T1.tar as it is (no need to extract it).")
            st.text_input("Demographics (IXI.xls or CSV, optional)", key=state.DEMOGRAPHICS_PATH,
                          help="Found automatically when IXI.xls or one CSV lies next to the data.")
        elif kind == "upload":
            upload = st.file_uploader("A T1 volume (.nii / .nii.gz)", type=["nii", "gz"])
            if upload is not None:
                st.session_state[state.UPLOAD] = str(save_upload(upload.name, upload.getvalue()))
        else:
            st.caption("Synthetic subjects made from the MNI152 template: **not real patients**. "
                       "Choose *Folder or IXI-T1.tar* to use real IXI data.")
        st.caption("Images never leave this machine.")
