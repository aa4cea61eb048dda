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
    next(b for b in at.button if b.label.startswith("Thesis preset")).click().run()
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


def _warnings(at) -> str:
    return " ".join(w.value for w in at.warning)


def test_demographics_that_match_no_subject_are_reported(ixi_sample_dir):
    # IXI_demog.csv lies next to the two sample volumes but has no row for either of them.
    at = _browse(ixi_sample_dir)
    assert not at.exception
    text = _warnings(at)
    assert "matched 0 of 2 subjects" in text
    assert "IXI012-HH-1211-T1" in text and "IXI015-HH-1258-T1" in text


def test_demographics_that_match_some_subjects_name_the_others(ixi_sample_dir, tmp_path):
    for volume in ixi_sample_dir.glob("*.nii.gz"):
        (tmp_path / volume.name).write_bytes(volume.read_bytes())
    (tmp_path / "demographics.csv").write_text("ID,Age,Sex\nIXI012-HH-1211-T1,33.5,F\n")
    at = _browse(tmp_path)
    assert not at.exception
    text = _warnings(at)
    assert "demographics.csv matched 1 of 2 subjects" in text and "IXI015-HH-1258-T1" in text
    assert "IXI012" not in text
    assert "age 33.5" in " ".join(c.value for c in at.caption)


def test_other_subjects_preview_waits_for_a_click_then_comes_from_disk(ixi_sample_dir, tmp_path, monkeypatch):
    from core.data.thumbnails import is_cached
    from core.data.volumes import scan_source

    from ui import data

    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "cache"))  # no thumbnails on disk yet
    data.thumbnails.clear()  # nor in this process's memory (earlier tests' previews)
    other = scan_source(ixi_sample_dir)[1]
    at = _browse(ixi_sample_dir)
    images_before = len(at.get("image"))
    # this subject's strip (the three planes are drawn in the browser: tests/app/test_browse_viewer.py);
    # no other subject yet
    assert images_before == 1
    show = [b for b in at.button if b.label.startswith("Show 1 other subject")]
    assert show and not is_cached(other, "axial")
    show[0].click().run()
    assert not at.exception
    assert len(at.get("image")) == images_before + 1 and is_cached(other, "axial")
    # A new session finds the thumbnails on disk: the preview is shown without the click.
    again = _browse(ixi_sample_dir)
    assert not [b for b in again.button if b.label.startswith("Show")]
    assert len(again.get("image")) == images_before + 1


def test_real_dev_opens_with_ages_and_sexes(real_dev_dir):
    """Issue 19: 12 real heads named SubjN_T1.nii.gz with a participants.csv whose IDs are SubjN."""
    at = _browse(real_dev_dir)
    assert not at.exception, at.exception
    assert not at.error and not at.warning, [w.value for w in at.warning]
    captions = " ".join(c.value for c in at.caption)
    assert "flat folder: 12 volumes · participants.csv: 12 of 12 volumes matched a row" in captions
    table = at.dataframe[0].value
    assert len(table) == 12 and table["age"].notna().all() and set(table["sex"]) == {"F", "M"}
    assert at.selectbox(key="subject_id").value == "Subj13_T1"
    assert "age 72.8" in captions and "sex M" in captions


def test_bids_folder_with_a_bad_link_names_it(tmp_path, ixi_sample_dir):
    volume = next(ixi_sample_dir.glob("*.nii.gz"))
    anat = tmp_path / "sub-01" / "ses-2" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-01_ses-2_T1w.nii.gz").symlink_to(volume)
    (tmp_path / "sub-02" / "anat").mkdir(parents=True)
    (tmp_path / "sub-02" / "anat" / "sub-02_T1w.nii").symlink_to("/etc/passwd")
    (tmp_path / "participants.tsv").write_text("participant_id\tage\tsex\nsub-01\t41\tfemale\n")
    at = _browse(tmp_path)
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "BIDS dataset: 1 volume of 1 subject (1 through links), 1 not used" in captions
    assert "participants.tsv: 1 of 1 volumes matched a row" in captions
    table = at.dataframe[0].value
    assert table["session"].tolist() == ["2"] and table["link target"].tolist() == [str(volume.resolve())]
    assert table["age"].tolist() == [41.0] and table["sex"].tolist() == ["F"]
    assert any("sub-02_T1w.nii: a link to /etc/passwd, which is not a NIfTI volume" in t.value for t in at.text)
