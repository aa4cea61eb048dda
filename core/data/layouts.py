"""Which layout a data source has (IXI, flat folder, BIDS, ``IXI-T1.tar``, one file) and its volumes.

:func:`open_layout` is the one loader: it decides the layout, lists the volumes as
:class:`core.data.volumes.VolumeEntry` (nothing is decompressed), finds the demographics that
belong to it and names every file it refused or left out, with the reason:

- **IXI**: a folder whose NIfTI files are all named ``IXI{NNN}-{Guys|HH|IOP}-{NNNN}-T1``
  (the demo cohort's ``DEMO…`` names too); demographics ``IXI.xls`` or a CSV next to them.
- **BIDS**: ``sub-XX/[ses-YY/]anat/sub-XX[_ses-YY][_…]_T1w.nii[.gz]`` with ``participants.tsv``;
  one T1w per subject and session (the others are named as left out), ``derivatives/``,
  ``sourcedata/`` and other modalities are not read.
- **flat folder**: any other folder of 3-D NIfTI files, searched recursively; ids are the file
  names without extension.
- **IXI-T1.tar**: a tar archive read in place (members never extracted).
- **one file**: a single ``.nii`` / ``.nii.gz`` (an upload).

Links inside the chosen folder are followed, to files and to folders: the user chose the folder
and so what it links to.  A link whose target is not a NIfTI volume, a broken link, a link loop
and a second name for a file already listed are refused by name.  Each entry's ``path`` is the
name inside the folder; ``link_target`` is the real file when it lies elsewhere.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

from core.data.volumes import VolumeEntry, is_nifti_name, parse_subject_name
from core.errors import UserError

__all__ = ["Layout", "LAYOUT_NAMES", "open_layout", "bids_entities"]

#: Readable name of each layout kind.
LAYOUT_NAMES = {
    "ixi": "IXI folder",
    "bids": "BIDS dataset",
    "flat": "flat folder",
    "tar": "IXI-T1.tar archive",
    "file": "single file",
}
_BIDS_SKIP = {"derivatives", "sourcedata", "code", "stimuli"}
_BIDS_T1W = re.compile(
    r"^sub-(?P<sub>[A-Za-z0-9]+)(?:_ses-(?P<ses>[A-Za-z0-9]+))?(?P<rest>(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_T1w"
    r"\.nii(?:\.gz)?$"
)
_BIDS_ENTITY = re.compile(r"_(?P<key>[A-Za-z]+)-(?P<value>[A-Za-z0-9]+)")


@dataclass(frozen=True)
class Layout:
    """The volumes of one data source and how they were found.

    Attributes
    ----------
    kind : "ixi", "bids", "flat", "tar" or "file" (see :data:`LAYOUT_NAMES`).
    source : the source as given (absolute).
    entries : its volumes, sorted by subject id; ids are unique.
    demographics : the table that belongs to the layout (BIDS ``participants.tsv``), or None.
    problems : one readable line per file refused or left out, naming it.
    """

    kind: str
    source: Path
    entries: tuple[VolumeEntry, ...]
    demographics: Path | None = None
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return LAYOUT_NAMES[self.kind]


def bids_entities(name: str) -> dict[str, str]:
    """The key-value entities of a BIDS file name (``sub``, ``ses``, ``run``, ...).

    >>> bids_entities("sub-01_ses-2_run-1_T1w.nii.gz")
    {'sub': '01', 'ses': '2', 'run': '1'}
    """
    return {m.group("key"): m.group("value") for m in _BIDS_ENTITY.finditer("_" + name)}


def open_layout(source: str | Path) -> Layout:
    """Decide the layout of ``source`` and list its volumes.

    Raises
    ------
    UserError
        The source does not exist, cannot be read, or holds no usable NIfTI volume (the
        message names the files that were refused and why).
    """
    source = Path(source).expanduser().absolute()
    if not source.exists():
        if source.is_symlink():
            raise UserError(f"data source {source} is a broken link (to {os.readlink(source)})")
        raise UserError(f"data source {source} does not exist")
    if source.is_dir():
        layout = _open_folder(source)
    elif tarfile.is_tarfile(source):
        layout = _open_tar(source)
    elif source.is_file() and is_nifti_name(source.name):
        stat = source.stat()
        subject_id, site = parse_subject_name(source.name)
        target = _link_target(source, source.parent)
        layout = Layout("file", source, (VolumeEntry(subject_id, site, str(source), None, stat.st_size,
                                                     stat.st_mtime_ns, link_target=target),))
    else:
        raise UserError(f"{source} is neither a folder, a tar archive nor a NIfTI file (.nii / .nii.gz)")
    if not layout.entries:
        why = ("; not used: " + "; ".join(layout.problems[:5])) if layout.problems else ""
        raise UserError(f"no NIfTI volumes (.nii / .nii.gz) found in {source}{why}")
    return layout


# --- folders ----------------------------------------------------------------------------------

def _open_folder(root: Path) -> Layout:
    if _looks_like_bids(root):
        return _open_bids(root)
    problems: list[str] = []
    paths = [p for p in _walk(root, problems) if is_nifti_name(p.name)]
    entries = []
    for path in paths:
        entry = _file_entry(path, root, problems)
        if entry is not None:
            entries.append(entry)
    entries = _unique(entries, root, problems)
    kind = "ixi" if entries and all(e.site is not None for e in entries) else "flat"
    return Layout(kind, root, tuple(entries), None, tuple(problems))


def _looks_like_bids(root: Path) -> bool:
    if (root / "dataset_description.json").is_file() or (root / "participants.tsv").is_file():
        return True
    try:
        subjects = [p for p in root.iterdir() if p.name.startswith("sub-") and p.is_dir()]
    except OSError as exc:
        raise UserError(f"cannot list folder {root}: {exc}") from exc
    return any((s / "anat").is_dir() or any(s.glob("ses-*/anat")) for s in subjects)


def _open_bids(root: Path) -> Layout:
    problems: list[str] = []
    found: dict[tuple[str, str | None], list[tuple[Path, re.Match]]] = {}
    n_other = 0
    for path in _walk(root, problems, skip_top=_BIDS_SKIP):
        if not is_nifti_name(path.name):
            continue
        rel = path.relative_to(root)
        match = _BIDS_T1W.match(path.name)
        if match is None or rel.parts[-2] != "anat" or not rel.parts[0].startswith("sub-"):
            n_other += 1  # T2w, FLAIR, bold, ... or a file outside sub-*/[ses-*/]anat
            continue
        folder_sub = rel.parts[0][len("sub-"):]
        folder_ses = rel.parts[1][len("ses-"):] if len(rel.parts) == 4 and rel.parts[1].startswith("ses-") else None
        if match.group("sub") != folder_sub or match.group("ses") != folder_ses:
            problems.append(f"{rel}: the file name's subject/session does not match its folder (not used)")
            continue
        found.setdefault((match.group("sub"), match.group("ses")), []).append((path, match))
    entries = []
    for (sub, ses), candidates in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        candidates.sort(key=lambda pm: (len(bids_entities(pm[0].name)), _run_number(pm[0].name), pm[0].name))
        (chosen, _), others = candidates[0], candidates[1:]
        for other, _ in others:
            problems.append(f"{other.relative_to(root)}: left out, one T1w per subject and session "
                            f"({chosen.name} is used)")
        subject_id = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
        entry = _file_entry(chosen, root, problems, subject_id=subject_id, site=None, session=ses)
        if entry is not None:
            entries.append(entry)
    entries = _unique(entries, root, problems)
    participants = root / "participants.tsv"
    if n_other:
        problems.append(f"{n_other} other NIfTI file{'s' if n_other != 1 else ''} (not sub-*/[ses-*/]anat/*_T1w) "
                        "not read")
    return Layout("bids", root, tuple(entries), participants if participants.is_file() else None,
                  tuple(problems))


def _run_number(name: str) -> int:
    run = bids_entities(name).get("run", "0")
    return int(run) if run.isdigit() else 0


def _walk(root: Path, problems: list[str], skip_top: set[str] = frozenset()):
    """Files under ``root``, following links to folders, each folder once (a folder link that
    leads back into a folder being walked is a loop, named in ``problems``)."""
    root_real = os.path.realpath(root)
    files = []

    def on_error(exc: OSError) -> None:
        problems.append(f"{exc.filename}: cannot be listed ({exc.strerror or exc})")

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=on_error):
        here = Path(folder)
        ancestors = set()
        probe = here
        while True:  # real paths of this folder and every folder above it, up to the root
            ancestors.add(os.path.realpath(probe))
            if probe == root or probe.parent == probe:
                break
            probe = probe.parent
        kept = []
        for name in sorted(dirs):
            if here == root and name in skip_top:
                continue
            sub = here / name
            real = os.path.realpath(sub)
            if os.path.islink(sub) and (real in ancestors or real == root_real):
                problems.append(f"{sub.relative_to(root)}: a link loop (back to {real}); not followed")
                continue
            kept.append(name)
        dirs[:] = kept
        files.extend(here / name for name in sorted(names))
    return sorted(files)


def _link_target(path: Path, root: Path) -> str | None:
    """The real file behind ``path`` when a link takes it out of its place under ``root``."""
    real = os.path.realpath(path)
    expected = os.path.join(os.path.realpath(root), os.path.relpath(path, root))
    return None if real == expected else real


def _file_entry(path: Path, root: Path, problems: list[str], subject_id: str | None = None,
                site: str | None = None, session: str | None = None) -> VolumeEntry | None:
    """An entry for ``path``, or None with the reason in ``problems`` (links that lead nowhere
    usable)."""
    rel = path.relative_to(root)
    is_link = path.is_symlink()
    try:
        real = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a symlink loop this way
        problems.append(f"{rel}: a link loop; not followed")
        return None
    except OSError as exc:
        if exc.errno == 40 or "loop" in str(exc).lower():  # ELOOP
            problems.append(f"{rel}: a link loop; not followed")
        elif is_link:
            problems.append(f"{rel}: a broken link (to {os.readlink(path)})")
        else:
            problems.append(f"{rel}: cannot be read ({exc.strerror or exc})")
        return None
    target = _link_target(path, root)
    if not real.is_file():
        problems.append(f"{rel}: a link to {real}, which is not a file")
        return None
    if target is not None and not _looks_like_nifti(real):
        problems.append(f"{rel}: a link to {real}, which is not a NIfTI volume; not followed")
        return None
    stat = real.stat()
    if subject_id is None:
        subject_id, site = parse_subject_name(path.name)
    return VolumeEntry(subject_id, site, str(path), None, stat.st_size, stat.st_mtime_ns,
                       link_target=target, session=session)


def _looks_like_nifti(path: Path) -> bool:
    """Whether a file starts like a NIfTI-1/-2 header (plain or gzip-compressed): its first
    field, ``sizeof_hdr``, is 348 or 540 in either byte order."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if head[:2] == b"\x1f\x8b":
                handle.seek(0)
                head = gzip.GzipFile(fileobj=handle).read(4)
    except (OSError, EOFError):
        return False
    if len(head) < 4:
        return False
    return {struct.unpack("<i", head)[0], struct.unpack(">i", head)[0]} & {348, 540} != set()


def _unique(entries: list[VolumeEntry], root: Path, problems: list[str]) -> list[VolumeEntry]:
    """One entry per real file and per subject id: a second one would put one head in two
    splits.  A file in place wins over a link to it, then the shallower, then the first by
    name; the others are named in ``problems``."""
    by_file: dict[str, VolumeEntry] = {}
    for entry in sorted(entries, key=lambda e: (os.path.islink(e.path), len(Path(e.path).parts), e.path)):
        real = os.path.realpath(entry.path)
        if real in by_file:
            problems.append(f"{os.path.relpath(entry.path, root)}: the same file as "
                            f"{os.path.relpath(by_file[real].path, root)} (listed once)")
        else:
            by_file[real] = entry
    by_id: dict[str, VolumeEntry] = {}
    for entry in sorted(by_file.values(), key=lambda e: (e.subject_id, len(Path(e.path).parts), e.path)):
        if entry.subject_id in by_id:
            problems.append(f"{os.path.relpath(entry.path, root)}: a second volume of subject {entry.subject_id} "
                            f"({os.path.relpath(by_id[entry.subject_id].path, root)} is used)")
        else:
            by_id[entry.subject_id] = entry
    return sorted(by_id.values(), key=lambda e: e.subject_id)


# --- IXI-T1.tar ---------------------------------------------------------------------------------

def _open_tar(source: Path) -> Layout:
    stat = source.stat()
    try:
        with tarfile.open(source) as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"cannot read tar archive {source}: {exc}") from exc
    problems = [f"{m.name} in {source.name}: a link inside the archive; not followed"
                for m in members if (m.issym() or m.islnk()) and is_nifti_name(m.name)]
    entries = []
    for m in members:
        if m.isfile() and is_nifti_name(m.name):
            subject_id, site = parse_subject_name(m.name)
            entries.append(VolumeEntry(subject_id, site, str(source), m.name, m.size, stat.st_mtime_ns))
    by_id: dict[str, VolumeEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.subject_id, e.member)):
        if entry.subject_id in by_id:
            problems.append(f"{entry.member} in {source.name}: a second volume of subject {entry.subject_id} "
                            f"({by_id[entry.subject_id].member} is used)")
        else:
            by_id[entry.subject_id] = entry
    return Layout("tar", source, tuple(sorted(by_id.values(), key=lambda e: e.subject_id)), None, tuple(problems))
