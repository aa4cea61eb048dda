"""A cohort from a data source: its volumes, demographics and the ids a dataset hash needs.

:func:`load_cohort` is the one entry point from "source + demographics" (what the sidebar
or ``python -m core build-dataset --data --demographics`` names) to the cohort;
:func:`build_cohort_dataset` builds its dataset, so the Dataset page and the CLI give the
same dataset folder for the same choice.  :func:`save_upload` keeps an uploaded file on this
machine so it can be used as a source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from core import settings
from core.data.dataset import BuildResult, build_dataset
from core.data.demographics import MatchReport, cohort_table, find_demographics, load_demographics, match_report
from core.data.layouts import LAYOUT_NAMES, open_layout
from core.data.volumes import VolumeEntry
from core.errors import UserError

__all__ = ["Cohort", "load_cohort", "demographics_id", "build_cohort_dataset", "save_upload"]


@dataclass(frozen=True)
class Cohort:
    """The volumes of one data source and what is known about their subjects.

    Attributes
    ----------
    source : absolute path of the folder, IXI tar archive or single file.
    entries : its volumes (:func:`core.data.layouts.open_layout`), sorted by subject id.
    table : one row per volume: subject_id, session, site, age, sex, file, link target.
    demographics : the demographics file used (given, the layout's own, or found next to the
        data), or None.
    demographics_id : identity of that file's content for the dataset hash ("" without one).
    notes : readable remarks about the demographics (duplicated or conflicting rows...).
    unmatched : subject ids of volumes that have no row in the demographics file (all of them
        when the file names other subjects; empty without a file).
    layout : which layout was found ("ixi", "bids", "flat", "tar", "file").
    problems : files refused or left out by the layout, each named with the reason.
    match : how volumes and demographics rows matched (None without a file).
    """

    source: Path
    entries: list[VolumeEntry]
    table: pd.DataFrame
    demographics: Path | None = None
    demographics_id: str = ""
    notes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    layout: str = "flat"
    problems: list[str] = field(default_factory=list)
    match: MatchReport | None = None

    def layout_summary(self) -> str:
        """One line: the layout found, its volumes and the demographics' match counts, e.g.
        ``"BIDS dataset: 12 volumes · participants.tsv: 12 of 12 volumes matched a row"``."""
        n = len(self.entries)
        text = f"{LAYOUT_NAMES.get(self.layout, self.layout)}: {n} volume{'s' if n != 1 else ''}"
        if self.layout == "bids":
            subjects = len({e.subject_group for e in self.entries})
            text += f" of {subjects} subject{'s' if subjects != 1 else ''}"
        links = sum(1 for e in self.entries if e.link_target)
        if links:
            text += f" ({links} through links)"
        if self.problems:
            text += f", {len(self.problems)} not used"
        text += " · " + (self.match.counts() if self.match else "no demographics file")
        return text

    def demographics_summary(self) -> str | None:
        """"demographics X matched k of N subjects" (with the ids that did not, and an example
        of each side when fewer than half matched), or None when there is no file or every
        subject matched."""
        return self.match.warning() if self.match else None


def demographics_id(path: str | Path | None) -> str:
    """Identity of a demographics file's content for the dataset hash; "" for None.

    The content, not the path, so the same file named two ways (relative from the CLI,
    absolute from the page) gives the same dataset.
    """
    if path is None:
        return ""
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise UserError(f"cannot read demographics file {path}: {exc}") from exc
    return f"sha256:{digest}"


def load_cohort(source: str | Path, demographics: str | Path | None = None) -> Cohort:
    """The cohort of a data source (any layout of :mod:`core.data.layouts`), with demographics
    joined by subject id.

    ``demographics`` is an IXI.xls / CSV / TSV / .xlsx file; without it the layout's own (BIDS
    ``participants.tsv``) or one lying next to the data is used
    (:func:`core.data.demographics.find_demographics`).

    Raises:
        UserError: the source or the named demographics file is missing or unreadable.
    """
    source = Path(source).expanduser().absolute()
    layout = open_layout(source)
    entries = list(layout.entries)
    if demographics is not None and str(demographics).strip():
        demographics = Path(demographics).expanduser().absolute()
        if not demographics.is_file():
            raise UserError(f"demographics file {demographics} does not exist")
    else:
        demographics = layout.demographics or find_demographics(source)
    table, notes, match = (None, [], None)
    if demographics is not None:
        table, notes = load_demographics(demographics)
        match = match_report(entries, table, demographics.name)
    return Cohort(source, entries, cohort_table(entries, table), demographics,
                  demographics_id(demographics), list(notes), list(match.unmatched) if match else [],
                  layout.kind, list(layout.problems), match)


def build_cohort_dataset(
    cohort: Cohort,
    spec,
    fractions=(0.8, 0.1, 0.1),
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
    preprocess=None,
) -> BuildResult:
    """Build (or reuse) the dataset of ``spec`` over the cohort (see
    :func:`core.data.dataset.build_dataset`); its hash includes the demographics' identity
    and the preprocessing steps (a :class:`core.data.preprocess.PreprocessSpec`, or None)."""
    return build_dataset(cohort.entries, spec, cohort.table, fractions=fractions, seed=seed,
                         cache_dir=cache_dir, progress=progress,
                         demographics_id=cohort.demographics_id, preprocess=preprocess)


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file on this machine (never sent anywhere) under the cache dir.

    Returns the folder holding it (named by the content's hash), usable as a data source.
    """
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name) or "upload.nii.gz"
    folder = settings.cache_dir() / "uploads" / hashlib.sha256(data).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / safe).write_bytes(data)
    return folder
