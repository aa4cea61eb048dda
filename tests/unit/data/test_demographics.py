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
