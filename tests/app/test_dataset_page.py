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
