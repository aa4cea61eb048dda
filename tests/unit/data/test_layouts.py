"""core.data.layouts: IXI, flat, BIDS, tar and single-file layouts; links followed or refused by name."""

from __future__ import annotations

import tarfile

import pytest

from helpers import smooth_head, write_nifti
from core.data.dataset import build_dataset
from core.data.layouts import open_layout
from core.data.slices import SliceSpec
from core.data.volumes import load_volume
from core.errors import UserError


def _head(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_nifti(path, smooth_head(seed=seed))


def test_ixi_and_flat_folders(tmp_path):
    ixi, flat = tmp_path / "ixi", tmp_path / "flat"
    _head(ixi / "IXI002-Guys-0828-T1.nii.gz")
    _head(ixi / "IXI012-HH-1211-T1.nii.gz")
    layout = open_layout(ixi)
    assert layout.kind == "ixi" and [e.site for e in layout.entries] == ["Guys", "HH"]
    _head(flat / "Subj1_T1.nii.gz")
    _head(flat / "more" / "patient 7.nii")
    layout = open_layout(flat)
    assert layout.kind == "flat" and [e.subject_id for e in layout.entries] == ["Subj1_T1", "patient 7"]
    assert not layout.problems


def test_tar_and_single_file(tmp_path):
    first = _head(tmp_path / "IXI002-Guys-0828-T1.nii.gz")
    with tarfile.open(tmp_path / "IXI-T1.tar", "w") as archive:
        archive.add(first, arcname="IXI002-Guys-0828-T1.nii.gz")
    layout = open_layout(tmp_path / "IXI-T1.tar")
    assert layout.kind == "tar" and layout.entries[0].member == "IXI002-Guys-0828-T1.nii.gz"
    assert open_layout(first).kind == "file"


def _bids(root):
    _head(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz", seed=1)
    _head(root / "sub-01" / "anat" / "sub-01_T2w.nii.gz", seed=2)  # another modality: not read
    _head(root / "sub-02" / "ses-a" / "anat" / "sub-02_ses-a_T1w.nii.gz", seed=3)
    _head(root / "sub-02" / "ses-b" / "anat" / "sub-02_ses-b_run-1_T1w.nii.gz", seed=4)
    _head(root / "sub-02" / "ses-b" / "anat" / "sub-02_ses-b_run-2_T1w.nii.gz", seed=5)
    _head(root / "sub-03" / "anat" / "sub-03_T1w.nii", seed=6)
    _head(root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_desc-brain_T1w.nii.gz", seed=7)
    (root / "participants.tsv").write_text("participant_id\tage\tsex\nsub-01\t30\tF\nsub-02\t40\tM\n")
    return root


def test_bids_one_t1w_per_subject_and_session_with_the_others_named(tmp_path):
    layout = open_layout(_bids(tmp_path / "bids"))
    assert layout.kind == "bids" and layout.demographics == tmp_path / "bids" / "participants.tsv"
    ids = {e.subject_id: e for e in layout.entries}
    assert sorted(ids) == ["sub-01", "sub-02_ses-a", "sub-02_ses-b", "sub-03"]
    assert ids["sub-02_ses-b"].session == "b" and ids["sub-02_ses-b"].subject_group == "sub-02"
    assert ids["sub-02_ses-b"].name == "sub-02_ses-b_run-1_T1w.nii.gz"  # the first run
    text = " ".join(layout.problems)
    assert "sub-02_ses-b_run-2_T1w.nii.gz: left out, one T1w per subject and session" in text
    assert "1 other NIfTI file" in text and "derivatives" not in text


def test_bids_file_in_the_wrong_folder_is_named(tmp_path):
    root = tmp_path / "bids"
    _head(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _head(root / "sub-02" / "anat" / "sub-09_T1w.nii.gz")
    (root / "dataset_description.json").write_text("{}")
    layout = open_layout(root)
    assert [e.subject_id for e in layout.entries] == ["sub-01"]
    assert "sub-09_T1w.nii.gz: the file name's subject/session does not match its folder" in layout.problems[0]


def test_sessions_of_one_subject_share_a_split(tmp_path):
    root = tmp_path / "bids"
    for sub in range(6):
        for ses in ("1", "2"):
            _head(root / f"sub-{sub}" / f"ses-{ses}" / "anat" / f"sub-{sub}_ses-{ses}_T1w.nii.gz", seed=sub)
    entries = list(open_layout(root).entries)
    assert len(entries) == 12
    spec = SliceSpec(axis="axial", start=10, stop=12, size=16)
    manifest = build_dataset(entries, spec, fractions=(0.5, 0.25, 0.25), seed=3, cache_dir=tmp_path / "ds").manifest
    where = {}
    for split, part in manifest["splits"].items():
        for volume_id in part["subjects"]:
            where.setdefault(volume_id.split("_ses-")[0], set()).add(split)
    assert len(where) == 6 and all(len(splits) == 1 for splits in where.values())
    assert {s for splits in where.values() for s in splits} == {"train", "val", "test"}


def test_links_are_followed_and_bad_ones_refused_by_name(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    _head(data / "good.nii.gz")
    _head(outside / "elsewhere.nii.gz", seed=1)
    _head(outside / "folder" / "deep.nii.gz", seed=2)
    (data / "escape.nii.gz").symlink_to(outside / "elsewhere.nii.gz")
    (data / "linked").symlink_to(outside / "folder", target_is_directory=True)
    (data / "passwd.nii").symlink_to("/etc/passwd")
    (data / "text.nii.gz").symlink_to(outside / "notes.txt")
    (outside / "notes.txt").write_text("not a volume")
    (data / "again.nii.gz").symlink_to(data / "good.nii.gz")  # the same file under a second name
    (data / "gone.nii.gz").symlink_to(outside / "deleted.nii.gz")
    (data / "loop_a.nii.gz").symlink_to(data / "loop_b.nii.gz")
    (data / "loop_b.nii.gz").symlink_to(data / "loop_a.nii.gz")
    (data / "sub").mkdir()
    (data / "sub" / "up").symlink_to(data, target_is_directory=True)  # a folder loop
    layout = open_layout(data)
    entries = {e.subject_id: e for e in layout.entries}
    assert sorted(entries) == ["deep", "escape", "good"]
    assert entries["escape"].link_target == str((outside / "elsewhere.nii.gz").resolve())
    assert entries["deep"].link_target == str((outside / "folder" / "deep.nii.gz").resolve())
    assert entries["good"].link_target is None
    assert load_volume(entries["escape"]).shape == load_volume(entries["deep"]).shape == (32, 40, 48)
    problems = "\n".join(layout.problems)
    assert "passwd.nii: a link to /etc/passwd, which is not a NIfTI volume" in problems
    assert "text.nii.gz: a link to" in problems and "notes.txt, which is not a NIfTI volume" in problems
    assert "again.nii.gz: the same file as good.nii.gz" in problems
    assert "gone.nii.gz: a broken link" in problems
    assert "loop_a.nii.gz: a link loop" in problems and "loop_b.nii.gz: a link loop" in problems
    assert "sub/up: a link loop" in problems


def test_a_folder_of_only_bad_links_says_why(tmp_path):
    (tmp_path / "passwd.nii").symlink_to("/etc/passwd")
    with pytest.raises(UserError, match="no NIfTI volumes.*passwd.nii: a link to /etc/passwd"):
        open_layout(tmp_path)


def test_identity_does_not_depend_on_how_the_path_is_spelt(tmp_path, monkeypatch):
    _head(tmp_path / "data" / "Subj1_T1.nii.gz")
    (tmp_path / "alias").symlink_to(tmp_path / "data", target_is_directory=True)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "Subj1_T1.nii.gz").symlink_to(tmp_path / "data" / "Subj1_T1.nii.gz")
    monkeypatch.chdir(tmp_path)
    spellings = [tmp_path / "data", "data", "alias", "./alias/../data", tmp_path / "links"]
    identities = {open_layout(s).entries[0].identity() for s in spellings}
    assert len(identities) == 1
    spec = SliceSpec(axis="axial", start=10, stop=12, size=16)
    hashes = {build_dataset(list(open_layout(s).entries), spec, fractions=(1, 0, 0),
                            cache_dir=tmp_path / "ds").manifest["hash"] for s in spellings}
    assert len(hashes) == 1


def test_missing_source_and_unknown_file_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_layout(tmp_path / "nope")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="dangling is a broken link"):
        open_layout(tmp_path / "dangling")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="neither a folder, a tar archive nor a NIfTI file"):
        open_layout(tmp_path / "notes.txt")


def test_a_link_under_another_name_is_another_dataset(tmp_path):
    _head(tmp_path / "data" / "Subj1_T1.nii.gz")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "patient_a.nii.gz").symlink_to(tmp_path / "data" / "Subj1_T1.nii.gz")
    spec = SliceSpec(axis="axial", start=10, stop=12, size=16)
    built = [build_dataset(list(open_layout(tmp_path / name).entries), spec, fractions=(1, 0, 0),
                           cache_dir=tmp_path / "ds") for name in ("data", "renamed")]
    assert built[0].path != built[1].path
    assert built[1].manifest["splits"]["train"]["subjects"] == ["patient_a"]


def test_tar_links_are_named_and_never_followed(tmp_path):
    first = _head(tmp_path / "IXI002-Guys-0828-T1.nii.gz")
    with tarfile.open(tmp_path / "IXI-T1.tar", "w") as archive:
        archive.add(first, arcname="IXI002-Guys-0828-T1.nii.gz")
        link = tarfile.TarInfo("IXI003-Guys-0829-T1.nii.gz")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    layout = open_layout(tmp_path / "IXI-T1.tar")
    assert [e.member for e in layout.entries] == ["IXI002-Guys-0828-T1.nii.gz"]
    assert layout.problems == ("IXI003-Guys-0829-T1.nii.gz in IXI-T1.tar: a link inside the archive; not followed",)


def test_build_dataset_cli_says_what_it_found(tmp_path, capsys):
    from helpers import run_cli

    root = tmp_path / "bids"
    for n in (1, 2, 3):
        _head(root / f"sub-{n:02d}" / "anat" / f"sub-{n:02d}_T1w.nii.gz", seed=n)
    (root / "sub-01" / "anat" / "sub-01_run-2_T1w.nii.gz").symlink_to("/etc/passwd")
    (root / "participants.tsv").write_text("participant_id\tage\tsex\nsub-01\t30\tF\nsub-01\t31\tF\nsub-07\t50\tM\n")
    code, out, err = run_cli(capsys, "build-dataset", "--data", root, "--axis", "axial", "--start", "10",
                             "--stop", "12", "--size", "16", "--cache", tmp_path / "ds")
    assert code == 0, err
    lines = err.splitlines()
    assert "BIDS dataset: 3 volumes of 3 subjects, 1 not used · participants.tsv: 1 of 3 volumes matched a row; " \
           "1 rows matched no volume" in lines
    assert any(line.startswith("warning: demographics participants.tsv matched 1 of 3 subjects; no row for sub-02, "
                               "sub-03") and line.endswith("IDs look like 'sub-07', files like 'sub-02'")
               for line in lines), err
    assert any("duplicated rows that disagree" in line and "'sub-01' (age 30.0 vs 31.0)" in line for line in lines)
    assert "not used: sub-01/anat/sub-01_run-2_T1w.nii.gz: left out, one T1w per subject and session " \
           "(sub-01_T1w.nii.gz is used)" in lines
