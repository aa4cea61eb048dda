"""AppTest for the Latent page's Samples tab on a conditional VAE (condition inputs and the z source)
and on a conditional VQ-VAE (condition inputs that reach its prior)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import TINY_VAE, TINY_VQVAE
from streamlit.testing.v1 import AppTest

from helpers import make_tiny_conditional_dataset
from ui import state

APP = "../../app.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    from core.training import runs, trainer

    dataset = make_tiny_conditional_dataset(tmp_path_factory.mktemp("cond_ds") / "ds")
    root = tmp_path_factory.mktemp("latent_cond_runs")
    trainer.train_run(runs.prepare_run(root / "cvae-tiny", dataset, "vae", "demo", {**TINY_VAE, "conditional": True}))
    return root


def _page(runs_dir, monkeypatch, page: str = "pages/latent.py") -> AppTest:
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(runs_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.SOURCE_KIND] = "folder"
    at.session_state[state.SOURCE_PATH] = ""
    at.run()
    return at.switch_page(page).run()


def test_condition_inputs_and_source_drive_the_samples(runs_dir, monkeypatch):
    at = _page(runs_dir, monkeypatch)
    assert not at.exception, at.exception
    age = at.number_input(key=state.LATENT_COND_AGE)
    position = at.slider(key=state.LATENT_COND_SLICE)
    assert (position.min, position.max) == (10, 17) and position.value == 13
    assert at.radio(key=state.LATENT_COND_SEX).options == ["female", "male"]
    assert any("age" in c.value and "slice 13" in c.value for c in at.caption)

    age.set_value(80).run()
    at.radio(key=state.LATENT_COND_SEX).set_value("M").run()
    at.slider(key=state.LATENT_COND_SLICE).set_value(17).run()
    assert not at.exception, at.exception
    assert any("age 80, male, slice 17" in c.value for c in at.caption), [c.value for c in at.caption]
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("latent_tile_"))

    source = at.radio(key=state.LATENT_GRID_SOURCE)
    assert source.options[0] == "N(0, I) prior" and source.options[1].startswith("aggregate posterior")
    source.set_value("aggregate").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert (runs_dir / "cvae-tiny" / "aggregate_posterior.npz").is_file()


def test_explorer_decodes_with_the_condition(runs_dir):
    from core.latent import Explorer, encode_run
    from core.training.checkpoints import load_run_model

    model = load_run_model(runs_dir / "cvae-tiny")
    ex = Explorer(model, encode_run(runs_dir / "cvae-tiny", model))
    assert ex.conditional and ex.condition["slice"] == 13
    z = ex.sample_latents(4, seed=0)
    low, _ = ex.decode(z, condition={"age": 50, "sex": "F", "slice": 10})
    high, _ = ex.decode(z, condition={"age": 50, "sex": "F", "slice": 17})
    assert low.shape == (4, 32, 32) and not np.array_equal(low, high)
    assert ex.reconstruct_rows([0, 1]).shape == (2, 32, 32)


@pytest.fixture(scope="module")
def vq_runs_dir(tmp_path_factory):
    from core.training import runs, trainer

    dataset = make_tiny_conditional_dataset(tmp_path_factory.mktemp("cond_vq_ds") / "ds")
    root = tmp_path_factory.mktemp("latent_cond_vq_runs")
    trainer.train_run(runs.prepare_run(root / "cvq-tiny", dataset, "vqvae", "demo",
                                       {**TINY_VQVAE, "conditional": True}))
    return root


def test_condition_inputs_of_a_conditional_vqvae(vq_runs_dir, monkeypatch):
    at = _page(vq_runs_dir, monkeypatch)
    assert not at.exception, at.exception
    position = at.slider(key=state.LATENT_COND_SLICE)
    assert (position.min, position.max) == (10, 17) and position.value == 13
    assert at.radio(key=state.LATENT_COND_SEX).options == ["female", "male"]
    assert not [r for r in at.radio if r.key == state.LATENT_GRID_SOURCE]  # a VQ-VAE samples from its prior
    assert any("slice 13" in c.value and "prior draws the codes" in c.value for c in at.caption), \
        [c.value for c in at.caption]
    at.number_input(key=state.LATENT_COND_AGE).set_value(80).run()
    at.slider(key=state.LATENT_COND_SLICE).set_value(17).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("age 80, female, slice 17" in c.value for c in at.caption), [c.value for c in at.caption]
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("latent_tile_"))


def test_explorer_asks_a_conditional_vqvae_prior(vq_runs_dir):
    from core.latent import Explorer, encode_run
    from core.training.checkpoints import load_run_model

    model = load_run_model(vq_runs_dir / "cvq-tiny")
    ex = Explorer(model, encode_run(vq_runs_dir / "cvq-tiny", model))
    assert ex.conditional and ex.can_sample and ex.condition["slice"] == 13
    low = ex.sample_latents(4, seed=0, condition={"age": 50, "sex": "F", "slice": 10})
    high = ex.sample_latents(4, seed=0, condition={"age": 50, "sex": "F", "slice": 17})
    assert low.shape == high.shape and not np.array_equal(low, high)
    np.testing.assert_array_equal(ex.sample_latents(4, seed=0), ex.sample_latents(4, seed=0, condition=ex.condition))
    images, codes = ex.decode(low)
    assert images.shape == (4, 32, 32) and codes.shape == (4, 8, 8)
    assert ex.reconstruct_rows([0, 1]).shape == (2, 32, 32)


def _sample_grids(at) -> list[tuple[str, str]]:
    """(caption, image URL) of each image the page shows whose caption names a sample grid."""
    return [(caption, url) for element in at.get("image") for caption, url in zip(element.captions, element.value)
            if "samples, seed" in caption]


def test_train_page_draws_samples_for_the_asked_condition(runs_dir, monkeypatch):
    at = _page(runs_dir, monkeypatch, "pages/train.py")
    assert not at.exception, at.exception
    assert not _sample_grids(at)  # nothing is drawn (and TensorFlow not loaded) until asked
    at.toggle(key=state.run_widget("sample", "cvae-tiny")).set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    position = at.slider(key=state.run_widget("sample_slice", "cvae-tiny"))
    assert (position.min, position.max) == (10, 17)
    [(caption, first)] = _sample_grids(at)
    assert "age 60, female, slice 13" in caption, caption

    at.number_input(key=state.run_widget("sample_age", "cvae-tiny")).set_value(80).run()
    at.radio(key=state.run_widget("sample_sex", "cvae-tiny")).set_value("M").run()
    at.slider(key=state.run_widget("sample_slice", "cvae-tiny")).set_value(17).run()
    assert not at.exception, at.exception
    [(caption, second)] = _sample_grids(at)
    assert "age 80, male, slice 17" in caption, caption
    assert second != first  # a new grid for the new condition, not the cached one
