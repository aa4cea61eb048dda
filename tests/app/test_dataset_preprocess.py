"""AppTest: the Dataset page lists the preprocessing steps, builds with the chosen ones (on two real
heads) and shows their time per volume; the manifest lists them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.preprocess import STEP_LABELS, STEPS

APP = "../../app.py"
pytestmark = pytest.mark.slow


def test_dataset_page_steps_build_and_times(real_dev_dir, tmp_path):
    folder = tmp_path / "two_heads"
    folder.mkdir()
    for name in ("Subj5_T1.nii.gz", "Subj6_T1.nii.gz"):
        shutil.copy(real_dev_dir / name, folder / name)
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = str(folder)
    at.run()
    at = at.switch_page("pages/dataset.py").run()
    assert not at.exception, at.exception
    boxes = {box.key: box for box in at.checkbox}
    assert [boxes[f"ds_preprocess_{s}"].label for s in STEPS] == [STEP_LABELS[s] for s in STEPS]
    at.number_input[0].set_value(60)
    at.number_input[1].set_value(62)
    at.radio(key="dataset_size").set_value(64)
    at.number_input[2].set_value(0.5)
    at.number_input[3].set_value(0.5)
    at.number_input[4].set_value(0.0)
    boxes["ds_preprocess_n4"].check()
    boxes["ds_preprocess_crop"].check()
    at.run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Built in" in at.success[0].value, [e.value for e in at.error]
    assert any("seconds per volume" in c.value for c in at.caption)
    times = next(d.value for d in at.dataframe if STEP_LABELS["n4"] in d.value.columns)
    assert list(times.columns) == [STEP_LABELS["n4"], STEP_LABELS["crop"]]
    manifest = json.loads((Path(at.session_state["last_dataset"]) / "manifest.json").read_text())
    assert manifest["spec"]["preprocess"]["steps"] == ["n4", "crop"]
    assert set(manifest["preprocess_seconds"]) == {"n4", "crop"}
