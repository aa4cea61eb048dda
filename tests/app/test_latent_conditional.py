"""AppTest for the Latent page's Samples tab on a conditional VAE: condition inputs and the z source."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import TINY_VAE
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


def _page(runs_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("LATENTBRAIN_RUNS", str(runs_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.SOURCE_KIND] = "folder"
    at.session_state[state.SOURCE_PATH] = ""
    at.run()
    return at.switch_page("pages/latent.py").run()


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
