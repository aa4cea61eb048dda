"""``python -m core build-dataset --preprocess STEPS``: the flag reaches the manifest; a bad step is
a readable error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli


def test_preprocess_flag_builds_with_the_steps_in_the_manifest(tiny_nifti, capsys):
    args = ["build-dataset", "--data", tiny_nifti.parent, "--axis", "axial", "--start", "10", "--stop", "12",
            "--size", "32", "--split", "1", "0", "0"]
    code, out, err = run_cli(capsys, *args, "--preprocess", "crop")
    assert code == 0, err
    manifest = json.loads((Path(out.strip()) / "manifest.json").read_text())
    assert manifest["spec"]["preprocess"]["steps"] == ["crop"]
    assert "preprocessing, seconds per volume: crop" in err
    code, plain_out, _ = run_cli(capsys, *args)
    assert code == 0 and plain_out.strip() != out.strip()  # the steps are part of the hash


def test_unknown_step_is_one_readable_line(tiny_nifti, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(capsys, "build-dataset", "--data", tiny_nifti.parent, "--axis", "axial", "--start", "10",
                "--stop", "12", "--preprocess", "skullstrip,blur")
    assert exit_info.value.code == 2
    assert "unknown preprocessing step 'blur'" in capsys.readouterr().err
