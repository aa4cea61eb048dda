"""AppTest for the Dataset page: build from the Browse range, reuse, balance table."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

APP = "../../app.py"


def _dataset_page(source_path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = str(source_path)
    at.run()
    at.slider(key="range").set_value((50, 60)).run()  # picked on Browse
    return at.switch_page("pages/dataset.py").run()


def test_build_then_reuse_split_by_subject(ixi_sample_dir):
    at = _dataset_page(ixi_sample_dir)
    assert not at.exception, at.exception
    assert at.number_input[0].value == 50 and at.number_input[1].value == 60
    at.radio(key="dataset_size").set_value(64)
    # Two subjects: one to train, one to validation, none to test.
    at.number_input[2].set_value(0.5)
    at.number_input[3].set_value(0.5)
    at.number_input[4].set_value(0.0)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Built in" in at.success[0].value
    balance = at.dataframe[0].value
    assert list(balance["subjects"]) == [1, 1, 0]
    assert list(balance["images"]) == [10, 10, 0]
    assert any("shared between train and val/test: 0" in c.value for c in at.caption)
    at.button[0].click().run()
    assert "Reused the cached dataset" in at.success[0].value


def test_range_outside_every_volume_is_a_message(ixi_sample_dir):
    at = _dataset_page(ixi_sample_dir)
    at.number_input[0].set_value(500)
    at.number_input[1].set_value(510)
    at.button[0].click().run()
    assert not at.exception
    assert "outside this volume" in at.error[0].value


def test_page_and_cli_give_the_same_dataset_folder(ixi_sample_dir, tmp_path):
    """The same choice (folder + its demographics, range, size, split, seed) from the Dataset
    page (the folder named through a link, as when ../shared is one) and from
    ``python -m core build-dataset`` (relative paths from the real folder) is one dataset."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ui import state

    (tmp_path / "linked").symlink_to(ixi_sample_dir, target_is_directory=True)
    at = _dataset_page(tmp_path / "linked")
    at.radio(key=state.DATASET_SIZE).set_value(64)
    at.number_input[2].set_value(0.5)
    at.number_input[3].set_value(0.5)
    at.number_input[4].set_value(0.0)
    at.number_input[5].set_value(7)  # split seed: a choice no other test builds
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Built in" in at.success[0].value
    from_page = Path(at.session_state[state.LAST_DATASET])

    cli = subprocess.run(
        [sys.executable, "-m", "core", "build-dataset", "--data", ixi_sample_dir.resolve().name,
         "--demographics", f"{ixi_sample_dir.resolve().name}/IXI_demog.csv", "--axis", "axial",
         "--start", "50", "--stop", "60", "--size", "64", "--split", "0.5", "0.5", "0", "--seed", "7"],
        cwd=ixi_sample_dir.resolve().parent, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert Path(cli.stdout.strip().splitlines()[-1]) == from_page
    # The CLI says what it found and how the demographics matched (the sample's table names others).
    assert "IXI folder: 2 volumes · IXI_demog.csv: 0 of 2 volumes matched a row" in cli.stderr
    assert "Fewer than half matched: IDs look like 'IXI013-HH-1212-T1', files like 'IXI012-HH-1211-T1'" in cli.stderr
