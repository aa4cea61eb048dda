"""core.data.demographics: IXI's CSV and xls conventions, duplicates, joins to volumes."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data.demographics import cohort_table, find_demographics, load_demographics, subject_key
from core.data.volumes import VolumeEntry, scan_source
from core.errors import UserError


def test_shared_ixi_demographics_join(ixi_sample_dir):
    table, notes = load_demographics(ixi_sample_dir / "IXI_demog.csv")
    assert len(table) == 291 and not notes
    assert table.loc["IXI013", "age"] == pytest.approx(46.71) and table.loc["IXI013", "sex"] == "M"
    # The two sample volumes are not in this table: their demographics stay unknown, honestly.
    sample = cohort_table(scan_source(ixi_sample_dir), table)
    assert sample["age"].isna().all() and sample["site"].tolist() == ["HH", "HH"]
    # Volumes named like rows of the table get their age, sex and site.
    entries = [VolumeEntry("IXI013-HH-1212-T1", "HH", "x"), VolumeEntry("IXI029-Guys-0829-T1", "Guys", "y")]
    joined = cohort_table(entries, table)
    assert joined["age"].tolist() == [46.7, 59.2] and joined["sex"].tolist() == ["M", "F"]
    assert find_demographics(ixi_sample_dir) == ixi_sample_dir / "IXI_demog.csv"


def test_ixi_xls_style_columns_duplicates_and_missing(tmp_path):
    path = tmp_path / "ixi_like.csv"
    pd.DataFrame({
        "IXI_ID": [2, 2, 12, 15, 99],
        "SEX_ID": [2, 2, 1, 1, None],
        "AGE": [None, 35.8, 38.8, 24.3, None],
    }).to_csv(path, index=False)
    table, notes = load_demographics(path)
    assert table.loc["IXI002", "age"] == pytest.approx(35.8)  # the duplicate with an age wins
    assert table.loc["IXI002", "sex"] == "F" and table.loc["IXI012", "sex"] == "M"
    assert pd.isna(table.loc["IXI099", "age"])
    assert any("duplicated" in n for n in notes) and any("no age" in n for n in notes)


def test_subject_keys():
    assert subject_key("IXI013-HH-1212-T1") == subject_key(13) == subject_key("IXI013") == "IXI013"
    assert subject_key("DEMO004-HH-0004-T1") == "DEMO004"
    assert subject_key("patient_a") == "patient_a"


def test_unreadable_or_idless_tables_are_user_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Height\nx,1\n")
    with pytest.raises(UserError, match="no ID column"):
        load_demographics(bad)
    fake = tmp_path / "IXI.xls"
    fake.write_text("not a spreadsheet")
    with pytest.raises(UserError, match="cannot read demographics IXI.xls"):
        load_demographics(fake)


# --- Matching IDs as people write them (issue 19) --------------------------------------------

from core.data.demographics import match_report  # noqa: E402


def test_ids_match_after_suffixes_bids_entities_and_case():
    keys = {subject_key(x) for x in ("Subj1", "Subj1_T1", "subj1-T1", "SUBJ1_T1w", "sub-Subj1",
                                     "sub-Subj1_ses-01_run-2_T1w.nii.gz", " Subj1.nii ")}
    assert keys == {"subj1"}
    assert subject_key("Subj10_T1") != subject_key("Subj1")


def test_participants_tsv_spellings_and_units(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tAge\tGender\nsub-01\t89+\tmale\nsub-02\tn/a\tFemale\nsub-03\t30.5\tO\n")
    table, notes = load_demographics(path)
    assert table.loc["01", "age"] == 89 and table.loc["01", "sex"] == "M"
    assert pd.isna(table.loc["02", "age"]) and table.loc["02", "sex"] == "F"
    assert table.loc["03", "age"] == 30.5 and pd.isna(table.loc["03", "sex"])
    months = tmp_path / "months.csv"
    months.write_text("subject,age_months,sex\nA,360,f\n")
    assert load_demographics(months)[0].loc["a", "age"] == pytest.approx(30.0)
    (tmp_path / "participants.json").write_text('{"age": {"Units": "days"}}')
    path.write_text("participant_id\tage\tsex\nsub-01\t3652.5\tM\n")
    assert load_demographics(path)[0].loc["01", "age"] == pytest.approx(10.0)


def test_xlsx_demographics(tmp_path):
    path = tmp_path / "demog.xlsx"
    pd.DataFrame({"ID": ["Subj1", "Subj2"], "Age": [70.5, 80.0], "Sex": ["F", "M"]}).to_excel(path, index=False)
    table, _ = load_demographics(path)
    assert table.loc["subj2", "age"] == 80.0 and table.loc["subj1", "sex"] == "F"


def test_duplicate_and_conflicting_rows_are_named(tmp_path):
    path = tmp_path / "demog.csv"
    path.write_text("ID,Age,Sex\nSubj1,70,F\nsubj1_T1,70,\nSubj2,71,M\nSubj2,75,M\nSubj3,60,F\n")
    table, notes = load_demographics(path)
    assert len(table) == 3
    assert table.loc["subj1", "age"] == 70 and table.loc["subj1", "sex"] == "F"  # agreeing rows merged
    assert pd.isna(table.loc["subj2", "age"]) and table.loc["subj2", "sex"] == "M"  # the disputed age is unknown
    text = " ".join(notes)
    assert "duplicated rows that agree, merged: 'Subj1' / 'subj1_T1'" in text
    assert "duplicated rows that disagree" in text and "'Subj2' (age 71.0 vs 75.0)" in text


def test_match_report_counts_and_the_fewer_than_half_line(tmp_path):
    path = tmp_path / "participants.csv"
    path.write_text("ID,Age,Sex\nSubj1,70,F\nSubj2,71,M\n")
    table, _ = load_demographics(path)
    entries = [VolumeEntry(f"Subj{n}_T1", None, str(n)) for n in (1, 2)]
    report = match_report(entries, table, path.name)
    assert report.counts() == "participants.csv: 2 of 2 volumes matched a row" and report.warning() is None
    entries = [VolumeEntry(f"Subj{n}_T1", None, str(n)) for n in (1, 10, 11)]
    report = match_report(entries, table, path.name)
    assert report.matched == 1 and report.unmatched == ["Subj10_T1", "Subj11_T1"]
    assert report.warning().endswith("IDs look like 'Subj2', files like 'Subj10_T1'")
    half = match_report([VolumeEntry(f"Subj{n}_T1", None, str(n)) for n in (1, 10)], table, path.name)
    assert "Fewer than half" not in half.warning()
