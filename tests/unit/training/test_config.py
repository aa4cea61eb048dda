"""Run configs: one check for the page, the CLI and a resume; unknown settings; revising a stored config."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.training import config, runs


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"beta": -1.0}, "beta"),
        ({"batch_size": 1000}, "larger than the training set"),
        ({"filters": [8, 16, 32, 64, 128, 256]}, "image_size"),
        ({"image_size": 64}, "does not match"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"mixed_precision": "yes"}, "mixed_precision"),
        ({"kl_schedule": "sometimes"}, "kl_schedule"),
    ],
)
def test_invalid_hyper_parameters(tmp_path, tiny_dataset, tiny_vae, overrides, match):
    with pytest.raises(UserError, match=match):
        runs.prepare_run(tmp_path / "bad", tiny_dataset, "vae", "demo", {**tiny_vae, **overrides})
    assert not (tmp_path / "bad").exists()


def test_missing_or_corrupt_dataset(tmp_path, tiny_dataset):
    with pytest.raises(UserError, match="manifest.json is missing"):
        config.make_config(tmp_path, "vae", "demo")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        config.make_config(tmp_path, "vae", "demo")
    with pytest.raises(UserError, match="model_type"):
        config.make_config(tiny_dataset, "gan", "demo")


def test_the_config_holds_preset_overrides_and_dataset(tiny_dataset, tiny_vae):
    made = config.make_config(tiny_dataset, "vae", "demo", {**tiny_vae, "beta": 0.5})
    assert made["beta"] == 0.5 and made["latent_dim"] == 8 and made["filters"] == [8, 16]
    assert made["kl_schedule"] == "linear"  # the preset's, not overridden
    assert made["image_size"] == 32 and made["dataset"]["hash"] == "tiny32-0"
    assert made["mixed_precision"] is False and made["jit_compile"] == "auto"


@pytest.mark.parametrize("model_type, key", [("vae", "latent_dims"), ("vqvae", "beta"), ("vae", "preset")])
def test_unknown_settings_are_refused_with_the_list(tiny_dataset, model_type, key):
    with pytest.raises(UserError, match=f"unknown setting '{key}' for a {model_type} demo run; the settings are: "):
        config.make_config(tiny_dataset, model_type, "demo", {key: 1})


def test_settable_keys_follow_the_model_type():
    vae, vq = config.settable_keys("vae", "demo"), config.settable_keys("vqvae", "demo")
    assert {"beta", "latent_dim", "warmup_epochs", "recon_loss", "seed", "mixed_precision"} <= set(vae)
    assert {"num_embeddings", "prior_epochs"} <= set(vq) and "beta" not in vq
    assert not {"model_type", "preset", "dataset", "run_name", "created"} & set(vae)


def test_revise_config_checks_only_what_changes(tmp_path, tiny_dataset, tiny_vae):
    stored = runs.read_config(runs.prepare_run(tmp_path / "r", tiny_dataset, "vae", "demo", tiny_vae))
    assert config.revise_config(stored, {"epochs": 7}) == {"epochs": 7}
    assert config.revise_config(stored, {}) == {}
    with pytest.raises(UserError, match="epochs must be >= 1, got 0"):
        config.revise_config(stored, {"epochs": 0})
    with pytest.raises(UserError, match="unknown setting 'epoch'"):
        config.revise_config(stored, {"epoch": 3})
