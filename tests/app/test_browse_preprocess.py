"""AppTest: Browse's preprocessing panel runs the chosen steps on the shown subject and draws each
step before / after, with the brain-mask toggle."""

from __future__ import annotations

import shutil

from streamlit.testing.v1 import AppTest

APP = "../../app.py"


def test_browse_panel_shows_each_step_before_after(real_dev_dir, tmp_path):
    folder = tmp_path / "one_head"
    folder.mkdir()
    shutil.copy(real_dev_dir / "Subj5_T1.nii.gz", folder / "Subj5_T1.nii.gz")
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = str(folder)
    at.run()
    assert not at.exception, at.exception
    at.multiselect(key="pp_steps").set_value(["n4", "crop"]).run()
    assert not any("before | after" in c for c in _captions(at))  # not run before a click
    at.button(key="pp_run").click().run()
    assert not at.exception, at.exception
    captions = [c for c in _captions(at) if "before | after" in c]
    assert [c.split(":")[0] for c in captions] == ["N4 bias-field correction", "Crop to the brain"], captions
    # The mask toggle redraws without the outline (no new run: the steps come from the cache).
    at.toggle(key="pp_mask").set_value(False).run()
    assert not at.exception, at.exception
    assert len([c for c in _captions(at) if "before | after" in c]) == 2


def _captions(at) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]
