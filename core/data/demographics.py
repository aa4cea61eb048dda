"""Subject demographics (age, sex, site) from IXI.xls or a CSV, joined to the volumes found.

IXI's ``IXI.xls`` has ``IXI_ID`` (a number), ``SEX_ID`` (1 = male, 2 = female) and ``AGE``,
with some rows missing and some duplicated.  A CSV needs ``ID`` (the file name without
extension, e.g. ``IXI013-HH-1212-T1``, or just ``IXI013``), ``Age`` and ``Sex`` (M/F);
``Site`` is optional.  Demographics are optional: unknown values stay empty.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.volumes import VolumeEntry
from core.errors import UserError

__all__ = ["load_demographics", "find_demographics", "cohort_table", "subject_key", "unmatched_subjects"]

_IXI_NUMBER = re.compile(r"^(?:IXI|DEMO)?0*(\d{1,3})\b", re.I)
_COLUMN_ALIASES = {
    "id": "id", "ixi_id": "id", "subject": "id", "subject_id": "id",
    "age": "age", "sex": "sex", "sex_id": "sex", "gender": "sex", "site": "site",
}


def subject_key(subject_id) -> str:
    """Join key: IXI subjects by their number (IXI ids differ between files), others by id.

    >>> subject_key("IXI013-HH-1212-T1"), subject_key(13), subject_key("scan_a")
    ('IXI013', 'IXI013', 'scan_a')
    """
    text = str(subject_id).strip()
    if isinstance(subject_id, (int, np.integer, float, np.floating)) and not pd.isna(subject_id):
        # A spreadsheet's numeric ID cell; inf or 1e300 is no subject number (found by fuzzing).
        if not np.isfinite(subject_id) or abs(subject_id) > 10**9:
            return text
        return f"IXI{int(subject_id):03d}"
    if text.upper().startswith("DEMO"):
        return text.split("-")[0].upper()
    if text.upper().startswith("IXI"):
        match = _IXI_NUMBER.match(text)
        if match:
            return f"IXI{int(match.group(1)):03d}"
    return text


def _normalise_sex(value) -> str | None:
    if pd.isna(value):
        return None
    text = str(value).strip().upper()
    if text in {"1", "1.0", "M", "MALE"}:
        return "M"
    if text in {"2", "2.0", "F", "FEMALE"}:
        return "F"
    return None


def load_demographics(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read IXI.xls / .xlsx / .csv into a table keyed by :func:`subject_key`.

    Returns
    -------
    table : DataFrame indexed by ``key`` with columns ``age`` (float years), ``sex``
        ('M'/'F'/None) and ``site`` (str/None), one row per subject.
    notes : human-readable notes about duplicated or unusable rows.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in {".xls", ".xlsx"}:
            raw = pd.read_excel(path)
        else:
            raw = pd.read_csv(path, sep=None, engine="python")
    except Exception as exc:  # pandas raises many types for malformed files
        raise UserError(f"cannot read demographics {path.name}: {exc}") from exc
    raw = raw.rename(columns={c: _COLUMN_ALIASES.get(str(c).strip().lower(), c) for c in raw.columns})
    # Two headers can name one field (IXI_ID and ID): the first one wins (found by fuzzing).
    raw = raw.loc[:, ~raw.columns.duplicated()]
    if "id" not in raw.columns:
        raise UserError(f"demographics {path.name} has no ID column (found {list(raw.columns)[:8]})")
    table = pd.DataFrame({
        "key": raw["id"].map(subject_key),
        "age": pd.to_numeric(raw["age"], errors="coerce") if "age" in raw else np.nan,
        "sex": raw["sex"].map(_normalise_sex) if "sex" in raw else None,
        "site": raw["site"].astype("string") if "site" in raw else None,
    }, index=raw.index)  # an explicit index: a header-only file gives an empty table
    notes = []
    n_rows = len(table)
    table = table[table["key"].astype(str).str.len() > 0]
    duplicated = table["key"].duplicated(keep=False)
    if duplicated.any():
        notes.append(f"{int(table.loc[duplicated, 'key'].nunique())} subjects have duplicated rows; "
                     "the most complete row is used")
        # Prefer the row with an age, then the first one.
        table = table.assign(_has_age=table["age"].notna()).sort_values("_has_age", ascending=False,
                                                                      kind="stable")
        table = table.drop_duplicates("key").drop(columns="_has_age")
    missing_age = int(table["age"].isna().sum())
    if missing_age:
        notes.append(f"{missing_age} of {n_rows} rows have no age")
    return table.set_index("key").sort_index(), notes


def find_demographics(source: str | Path) -> Path | None:
    """Look next to (or inside) a data source for IXI.xls or a demographics CSV."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    for name in ("IXI.xls", "IXI.xlsx", "demographics.csv", "IXI_demog.csv"):
        if (folder / name).is_file():
            return folder / name
    csvs = sorted(folder.glob("*.csv"))
    return csvs[0] if len(csvs) == 1 else None


def cohort_table(entries: list[VolumeEntry], demographics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per volume: subject_id, site, age, sex, file (demographics joined by key)."""
    rows = []
    for entry in entries:
        key = subject_key(entry.subject_id)
        age = sex = None
        site = entry.site
        if demographics is not None and key in demographics.index:
            row = demographics.loc[key]
            age = None if pd.isna(row["age"]) else float(row["age"])
            sex = row["sex"] if isinstance(row["sex"], str) else None
            if site is None and isinstance(row.get("site"), str):
                site = row["site"]
        rows.append({"subject_id": entry.subject_id, "site": site, "age": age, "sex": sex,
                     "file": entry.name})
    table = pd.DataFrame(rows, columns=["subject_id", "site", "age", "sex", "file"])
    table["age"] = table["age"].astype(float).round(1)
    return table


def unmatched_subjects(entries: list[VolumeEntry], demographics: pd.DataFrame) -> list[str]:
    """Subject ids of ``entries`` that have no row in ``demographics`` (a :func:`load_demographics` table).

    >>> table = pd.DataFrame({"age": [40.0], "sex": ["F"], "site": [None]}, index=["IXI013"])
    >>> unmatched_subjects([VolumeEntry("IXI013-HH-1212-T1", "HH", "a"),
    ...                     VolumeEntry("IXI012-HH-1211-T1", "HH", "b")], table)
    ['IXI012-HH-1211-T1']
    """
    return [entry.subject_id for entry in entries if subject_key(entry.subject_id) not in demographics.index]
