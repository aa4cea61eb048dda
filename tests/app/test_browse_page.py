"""AppTest for the Browse page, through the real entry point (app.py)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

APP = "../../app.py"


def _browse(source_path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = str(source_path)
    return at.run()


def test_browse_shows_three_planes_and_range_on_real_ixi(ixi_sample_dir):
    at = _browse(ixi_sample_dir)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="subject_id").value == "IXI012-HH-1211-T1"
    text = " ".join(m.value for m in at.markdown)
    assert "slices** per volume" in text and "cohort:" in text
    # Move the range and pick the other subject: the page follows, nothing breaks.
    at.slider(key="range").set_value((40, 60)).run()
    at.selectbox(key="subject_id").set_value("IXI015-HH-1258-T1").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "**20 slices** per volume" in text and "**40 slices** from 2 of 2 volumes" in text


def test_thesis_preset_refuses_downsampled_volumes(ixi_sample_dir):
    at = _browse(ixi_sample_dir)
    at.button[0].click().run()
    assert not at.exception
    assert any("full-resolution IXI" in w.value for w in at.warning)


def test_bad_folder_gives_a_message_not_a_crash(tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp_path / "notes.nii").write_text("this is not a NIfTI file")
    at = _browse(tmp_path)
    assert not at.exception
    assert at.error and ("gzip" in at.error[0].value or "NIfTI" in at.error[0].value)


def test_empty_folder_gives_a_message(tmp_path):
    at = _browse(tmp_path)
    assert not at.exception
    assert "no NIfTI volumes" in at.error[0].value
