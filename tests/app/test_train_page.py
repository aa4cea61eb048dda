"""AppTest for the Train page: no dataset yet, bad input as a message, launch a run, runs table."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import make_tiny_dataset

APP = "../../app.py"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache and runs dir of this test's own."""
    monkeypatch.setenv("LATENTBRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    # A folder source left empty: the default Browse page shows a hint instead of building
    # the demo cohort (this page does not need it).
    at.session_state["source_kind"] = "folder"
    at.session_state["source_path"] = ""
    at.run()
    return at.switch_page("pages/train.py").run()


def _wait_idle(run_dir, timeout=300):  # a wait, not a timing: CI machines may be loaded
    from core.training import runs

    deadline = time.time() + timeout
    while time.time() < deadline:
        if runs.read_status(run_dir)["state"] not in runs.ACTIVE_STATES:
            return runs.read_status(run_dir)
        time.sleep(0.5)
    raise AssertionError(f"run {run_dir} still active after {timeout} s")


def test_without_datasets_points_to_the_dataset_page(cache):
    at = _train_page()
    assert not at.exception, at.exception
    assert any("Dataset" in info.value for info in at.info)
    assert any("No runs yet" in c.value for c in at.caption)


def test_launch_shows_the_run_and_its_state(cache):
    from core import settings
    from core.training import runs

    make_tiny_dataset(settings.datasets_dir() / "tiny32", size=32)
    at = _train_page()
    assert not at.exception, at.exception
    at.text_input(key="train_run_name").set_value("../evil")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert not runs.list_runs()
    at.number_input(key="hp_epochs_vae_demo").set_value(1)
    at.number_input(key="hp_batch_vae_demo").set_value(16)
    # Issue 20's options are the form's too: the adversary from the first epoch, augmentation on.
    assert at.number_input(key="hp_adv_vae_demo").value == 0  # off for the VAE: the measured default
    at.number_input(key="hp_adv_vae_demo").set_value(0.1)
    at.number_input(key="hp_adv_start_vae_demo").set_value(0)
    at.checkbox(key="hp_augment_vae_demo").check()
    at.text_input(key="train_run_name").set_value("page-run")
    at.button[0].click().run()  # the form's Launch button
    assert not at.exception, at.exception
    assert any("page-run" in s.value for s in at.success), [s.value for s in at.success]
    run_dir = settings.runs_dir() / "page-run"
    try:
        table = at.dataframe[0].value
        assert list(table["run"]) == ["page-run"]
        assert table["state"].iloc[0] in ("queued", "running", "finished")
        # Launching the same name again is a readable message, not an exception.
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert any("already exists" in e.value for e in at.error)
    finally:
        status = _wait_idle(run_dir)
    assert status["state"] == "finished", status
    config = runs.read_config(run_dir)
    assert config["epochs"] == 1 and config["adversarial_start_epoch"] == 0 and config["augment"]["flip"] > 0
    assert "disc_loss" in runs.read_metrics(run_dir)
    at = _train_page()  # the finished run: curves (with the adversary's) and samples, no exception
    assert not at.exception, at.exception
    assert any("finished" in m.value for m in at.markdown)
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("Adversary" in spec for spec in titles)


def test_conditional_checkbox_without_demographics_is_a_message(cache):
    from core import settings
    from core.training import runs

    make_tiny_dataset(settings.datasets_dir() / "tiny32", size=32)  # no ages or sexes
    at = _train_page()
    box = at.checkbox(key="hp_cond_vae_demo")
    assert box.label == "Conditional on age, sex and slice position" and "age" in box.help and not box.value
    box.check()
    at.number_input(key="hp_batch_vae_demo").set_value(16)
    at.text_input(key="train_run_name").set_value("cond-run")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("conditional=true needs the age and sex" in e.value for e in at.error), [e.value for e in at.error]
    assert not runs.list_runs()


def test_a_finished_vqvae_draws_samples_from_its_prior_on_request(cache, tiny_vqvae_run):
    import shutil

    from ui.state import run_widget

    shutil.copytree(tiny_vqvae_run, cache / "runs" / "vq-tiny")
    at = _train_page()
    assert not at.exception, at.exception
    toggle = at.toggle(key=run_widget("sample", "vq-tiny"))
    assert "age" not in toggle.label  # not conditional: no condition inputs
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    grids = [c for element in at.get("image") for c in element.captions if "samples, seed" in c]
    assert grids == ["16 samples, seed 0"], grids
    assert not [s for s in at.slider if s.key == run_widget("sample_slice", "vq-tiny")]


def test_the_form_trains_a_vqvae_with_the_transformer_prior(cache):
    """Issue 20's prior choice from the browser: the form's Prior box reaches config.json and the
    finished run samples from a transformer; its Decoder upsampling box reaches the model too."""
    from core import settings
    from core.training import checkpoints, runs

    make_tiny_dataset(settings.datasets_dir() / "tiny32", size=32)
    at = _train_page()
    at.radio(key="train_model").set_value("vqvae").run()
    assert not at.exception, at.exception
    prior_box = at.selectbox(key="hp_prior_type_vqvae_demo")
    assert prior_box.value == "pixelcnn"
    assert prior_box.options == ["Gated PixelCNN", "Causal transformer", "Latent diffusion"]
    prior_box.set_value("transformer")
    upsample_box = at.selectbox(key="hp_upsample_vqvae_demo")
    assert upsample_box.value == "transpose"
    assert upsample_box.options == ["Transposed convolution", "Resize + convolution"]
    upsample_box.set_value("resize")
    at.number_input(key="hp_epochs_vqvae_demo").set_value(1)
    at.number_input(key="hp_batch_vqvae_demo").set_value(16)
    at.number_input(key="hp_prior_vqvae_demo").set_value(1)
    at.number_input(key="hp_adv_vqvae_demo").set_value(0.0)
    at.text_input(key="train_run_name").set_value("tf-prior-run")
    at.button[0].click().run()
    assert not at.exception, at.exception
    run_dir = settings.runs_dir() / "tf-prior-run"
    status = _wait_idle(run_dir)
    assert status["state"] == "finished", status
    assert runs.read_config(run_dir)["prior_type"] == "transformer"
    assert runs.read_config(run_dir)["upsample"] == "resize"
    model = checkpoints.load_run_model(run_dir)
    assert type(model.prior).__name__ == "TransformerPrior" and model.upsample == "resize"
