"""Subject demographics (age, sex, site) from IXI.xls, a CSV / TSV / .xlsx or BIDS
``participants.tsv``, matched to the volumes found.

IXI's ``IXI.xls`` has ``IXI_ID`` (a number), ``SEX_ID`` (1 = male, 2 = female) and ``AGE``,
with some rows missing and some duplicated.  Other tables need an ID column (``ID``,
``participant_id``, ``subject``...), and optionally age (``Age``, ``age_years``, or in months /
days when the column name or BIDS' ``participants.json`` says so; ``89+`` reads as 89) and sex
(M/F, male/female, 1/2).  IDs are matched after stripping the file extension, the modality
suffix (``_T1``, ``-T1``, ``_T1w``), BIDS entities (``sub-``, ``_ses-…``, ``_run-…``) and case,
so ``Subj1`` matches ``Subj1_T1.nii.gz`` and ``sub-Subj1_ses-01_T1w.nii.gz``.  Two rows for
one subject are merged when they agree; a value they disagree on is left unknown, and both
are named in the notes.  Demographics are optional: unknown values stay empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.volumes import VolumeEntry
from core.errors import UserError

__all__ = ["load_demographics", "find_demographics", "cohort_table", "subject_key", "unmatched_subjects",
           "MatchReport", "match_report"]

_IXI_NUMBER = re.compile(r"^(?:IXI|DEMO)?0*(\d{1,3})\b", re.I)
_COLUMN_ALIASES = {
    "id": "id", "ixi_id": "id", "subject": "id", "subject_id": "id", "participant_id": "id",
    "participant": "id", "subjid": "id", "subj_id": "id", "sub": "id",
    "age": "age", "sex": "sex", "sex_id": "sex", "gender": "sex", "site": "site",
}
#: Age columns in other units: (pattern on the lower-cased column name, years per unit).
_AGE_UNITS = [(re.compile(r"^age[\s_(\[]*(years?|yrs?|y)[)\]]?$"), 1.0),
              (re.compile(r"^age[\s_(\[]*(months?|mo|m)[)\]]?$"), 1 / 12),
              (re.compile(r"^age[\s_(\[]*(weeks?|wk|w)[)\]]?$"), 7 / 365.25),
              (re.compile(r"^age[\s_(\[]*(days?|d)[)\]]?$"), 1 / 365.25)]
_NIFTI_EXT = re.compile(r"\.nii(\.gz)?$", re.I)
_BIDS_ENTITY = re.compile(r"_(ses|run|acq|ce|rec|echo|part|inv|mt|flip|task|dir|space|desc)-[A-Za-z0-9]+", re.I)
_MODALITY = re.compile(r"[-_](t1w?|mprage)$", re.I)


def subject_key(subject_id) -> str:
    """Join key of an ID cell or a volume's subject id.

    IXI subjects by their number (IXI ids differ between files); others by the id without
    extension, modality suffix, BIDS entities and case.

    >>> subject_key("IXI013-HH-1212-T1"), subject_key(13), subject_key("scan_a")
    ('IXI013', 'IXI013', 'scan_a')
    >>> subject_key("Subj10_T1"), subject_key("sub-Subj10_ses-01_run-2_T1w.nii.gz"), subject_key(" SUBJ10 ")
    ('subj10', 'subj10', 'subj10')
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
    key = _NIFTI_EXT.sub("", text)
    if key[:4].lower() == "sub-":
        key = key[4:]
    key = _BIDS_ENTITY.sub("", key)
    stripped = _MODALITY.sub("", key)
    return (stripped or key).casefold()


def _normalise_sex(value) -> str | None:
    if pd.isna(value):
        return None
    text = str(value).strip().upper()
    if text in {"1", "1.0", "M", "MALE", "MAN"}:
        return "M"
    if text in {"2", "2.0", "F", "FEMALE", "WOMAN"}:
        return "F"
    return None


def _age_years(values: pd.Series) -> pd.Series:
    """Ages as float; ``89+`` (BIDS' cap) reads as 89, ``45y`` as 45, anything else as unknown."""
    if values.dtype.kind in "if":
        return values.astype(float)
    text = values.astype("string").str.strip().str.replace(r"\s*(\+|y|yrs?|years?)$", "", regex=True, case=False)
    return pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce").astype(float)


def _sidecar_units(path: Path) -> dict[str, str]:
    """Units BIDS' ``participants.json`` declares per column (e.g. ``{"age": "months"}``)."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        described = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(described, dict):
        return {}
    return {str(k).strip().lower(): str(v.get("Units", "")).strip().lower()
            for k, v in described.items() if isinstance(v, dict)}


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in {".xls", ".xlsx"}:
            return pd.read_excel(path)
        if path.suffix.lower() == ".tsv":
            return pd.read_csv(path, sep="\t", na_values=["n/a"])
        return pd.read_csv(path, sep=None, engine="python", na_values=["n/a"])
    except ImportError as exc:  # openpyxl (.xlsx) or xlrd (.xls) missing
        raise UserError(f"cannot read demographics {path.name}: {exc}") from exc
    except Exception as exc:  # pandas raises many types for malformed files
        raise UserError(f"cannot read demographics {path.name}: {exc}") from exc


def load_demographics(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read IXI.xls / .xlsx / .csv / .tsv (BIDS ``participants.tsv``) into a table keyed by
    :func:`subject_key`.

    Returns
    -------
    table : DataFrame indexed by ``key`` with columns ``id`` (the ID as written), ``age``
        (float years), ``sex`` ('M'/'F'/None) and ``site`` (str/None), one row per subject.
    notes : readable notes naming duplicated and conflicting rows, and rows without age.
    """
    path = Path(path)
    raw = _read_table(path)
    units = _sidecar_units(path)
    renamed, age_factor = {}, 1.0
    for column in raw.columns:
        name = str(column).strip().lower()
        alias = _COLUMN_ALIASES.get(name)
        if alias is None:
            for pattern, factor in _AGE_UNITS:
                if pattern.match(name):
                    alias, age_factor = "age", factor
                    break
        elif alias == "age":
            unit = units.get(name, "")
            age_factor = next((f for pat, f in _AGE_UNITS if pat.match(f"age_{unit}")), 1.0) if unit else 1.0
        renamed[column] = alias or column
    raw = raw.rename(columns=renamed)
    # Two headers can name one field (IXI_ID and ID): the first one wins (found by fuzzing).
    raw = raw.loc[:, ~raw.columns.duplicated()]
    if "id" not in raw.columns:
        raise UserError(f"demographics {path.name} has no ID column (found {list(raw.columns)[:8]})")
    table = pd.DataFrame({
        "key": raw["id"].map(subject_key),
        "id": raw["id"].astype(str).str.strip(),
        "age": _age_years(raw["age"]) * age_factor if "age" in raw else np.nan,
        "sex": raw["sex"].map(_normalise_sex) if "sex" in raw else None,
        "site": raw["site"].astype("string") if "site" in raw else None,
    }, index=raw.index)  # an explicit index: a header-only file gives an empty table
    n_rows = len(table)
    table = table[table["key"].astype(str).str.len() > 0]
    table, notes = _merge_duplicates(table, path.name)
    missing_age = int(table["age"].isna().sum())
    if missing_age:
        notes.append(f"{missing_age} of {n_rows} rows have no age")
    return table.set_index("key").sort_index(), notes


def _merge_duplicates(table: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per key.  Rows that agree are merged (a missing value filled from the other);
    a value they disagree on becomes unknown.  Both kinds are named in the notes."""
    duplicated = table["key"].duplicated(keep=False)
    if not duplicated.any():
        return table, []
    merged_names, conflicts = [], []
    rows = [table[~duplicated]]
    for key, group in table[duplicated].groupby("key", sort=True):
        row = group.iloc[[0]].copy()
        ids = sorted(set(group["id"]))
        label = " / ".join(repr(i) for i in ids) if len(ids) > 1 else repr(ids[0])
        disagree = []
        for column in ("age", "sex", "site"):
            values = group[column].dropna()
            if column == "age":
                distinct = sorted({round(float(v), 2) for v in values})
            else:
                distinct = sorted({str(v) for v in values})
            if len(distinct) > 1:
                disagree.append(f"{column} {' vs '.join(str(v) for v in distinct)}")
                row[column] = np.nan if column == "age" else None
            elif distinct:
                row[column] = values.iloc[0]
        if disagree:
            conflicts.append(f"{label} ({'; '.join(disagree)})")
        else:
            merged_names.append(label)
        rows.append(row)
    notes = []
    if merged_names:
        notes.append(f"{name}: {len(merged_names)} subjects have duplicated rows that agree, merged: "
                     + _some(merged_names))
    if conflicts:
        notes.append(f"{name}: {len(conflicts)} subjects have duplicated rows that disagree, the "
                     "disputed values are left unknown: " + _some(conflicts))
    return pd.concat(rows), notes


def _some(names: list[str], limit: int = 8) -> str:
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def find_demographics(source: str | Path) -> Path | None:
    """Look next to (or inside) a data source for IXI.xls, ``participants.tsv`` or a
    demographics CSV / TSV / .xlsx (the only one there)."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    for name in ("participants.tsv", "IXI.xls", "IXI.xlsx", "participants.csv", "demographics.csv",
                 "IXI_demog.csv"):
        if (folder / name).is_file():
            return folder / name
    tables = sorted(p for p in folder.glob("*") if p.suffix.lower() in {".csv", ".tsv", ".xlsx"} and p.is_file())
    return tables[0] if len(tables) == 1 else None


def cohort_table(entries: list[VolumeEntry], demographics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per volume: subject_id, session, site, age, sex, file, link target (the
    session and link target columns only when some volume has one).

    Demographics are joined by :func:`subject_key` (a BIDS session shares its subject's row).
    """
    rows = []
    for entry in entries:
        key = subject_key(entry.subject_group)
        age = sex = None
        site = entry.site
        if demographics is not None and key in demographics.index:
            row = demographics.loc[key]
            age = None if pd.isna(row["age"]) else float(row["age"])
            sex = row["sex"] if isinstance(row["sex"], str) else None
            if site is None and isinstance(row.get("site"), str):
                site = row["site"]
        rows.append({"subject_id": entry.subject_id, "session": entry.session, "site": site, "age": age,
                     "sex": sex, "file": entry.name, "link target": entry.link_target})
    table = pd.DataFrame(rows, columns=["subject_id", "session", "site", "age", "sex", "file", "link target"])
    table["age"] = table["age"].astype(float).round(1)
    # Sessions and link targets are shown when the cohort has them.
    return table.drop(columns=[c for c in ("session", "link target") if table[c].isna().all()])


def unmatched_subjects(entries: list[VolumeEntry], demographics: pd.DataFrame) -> list[str]:
    """Subject ids of ``entries`` that have no row in ``demographics`` (a :func:`load_demographics` table).

    >>> table = pd.DataFrame({"age": [40.0], "sex": ["F"], "site": [None]}, index=["IXI013"])
    >>> unmatched_subjects([VolumeEntry("IXI013-HH-1212-T1", "HH", "a"),
    ...                     VolumeEntry("IXI012-HH-1211-T1", "HH", "b")], table)
    ['IXI012-HH-1211-T1']
    """
    return [entry.subject_id for entry in entries if subject_key(entry.subject_group) not in demographics.index]


@dataclass(frozen=True)
class MatchReport:
    """How the volumes and the rows of a demographics table matched.

    Attributes
    ----------
    file : the table's file name.
    n_volumes, matched : volumes, and those with a row.
    unmatched : subject ids of the volumes without a row.
    rows_without_volume : IDs (as written) of rows no volume matched.
    """

    file: str
    n_volumes: int
    matched: int
    unmatched: list[str] = field(default_factory=list)
    rows_without_volume: list[str] = field(default_factory=list)

    def counts(self) -> str:
        """``"participants.csv: 12 of 12 volumes matched a row"`` (and the rows left over)."""
        text = f"{self.file}: {self.matched} of {self.n_volumes} volumes matched a row"
        if self.rows_without_volume:
            text += f"; {len(self.rows_without_volume)} rows matched no volume"
        return text

    def warning(self) -> str | None:
        """None when every volume matched; else which did not, and when fewer than half
        matched, one line with an example of each side."""
        if not self.unmatched:
            return None
        shown = _some(self.unmatched, 12)
        text = (f"demographics {self.file} matched {self.matched} of {self.n_volumes} subjects; no row for "
                f"{shown} (their age and sex stay unknown)")
        if self.matched * 2 < self.n_volumes:
            if self.rows_without_volume:
                text += (f". Fewer than half matched: IDs look like '{self.rows_without_volume[0]}', "
                         f"files like '{self.unmatched[0]}'")
            else:
                text += ". Fewer than half matched: the table has no other rows"
        return text


def match_report(entries: list[VolumeEntry], demographics: pd.DataFrame, file: str) -> MatchReport:
    """Match ``entries`` to a :func:`load_demographics` table (see :class:`MatchReport`).

    >>> table = pd.DataFrame({"id": ["Subj1", "Subj2"], "age": [70.0, 71.0], "sex": ["F", "M"],
    ...                       "site": [None, None]}, index=["subj1", "subj2"])
    >>> report = match_report([VolumeEntry("Subj1_T1", None, "a"), VolumeEntry("Subj10_T1", None, "b"),
    ...                        VolumeEntry("Subj11_T1", None, "c")], table, "participants.csv")
    >>> report.counts()
    'participants.csv: 1 of 3 volumes matched a row; 1 rows matched no volume'
    >>> report.warning().split(". ")[-1]
    "Fewer than half matched: IDs look like 'Subj2', files like 'Subj10_T1'"
    """
    unmatched = unmatched_subjects(entries, demographics)
    used = {subject_key(e.subject_group) for e in entries}
    ids = demographics["id"] if "id" in demographics.columns else pd.Series(demographics.index, index=demographics.index)
    leftover = [str(ids.loc[key]) for key in demographics.index if key not in used]
    return MatchReport(file, len(entries), len(entries) - len(unmatched), unmatched, leftover)
