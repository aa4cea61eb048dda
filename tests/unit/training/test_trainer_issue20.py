"""Issue 20's options through the training engine (``train_run``): the adversary switched on
after its warm-up, augmentation, the codebook and adversary curves, and a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.training import checkpoints, runs, trainer

PRIOR_CLASSES = {"transformer": "TransformerPrior", "diffusion": "DiffusionPrior"}


def test_an_adversarial_augmented_vqvae_trains_resumes_and_records_its_curves(tmp_path, tiny_dataset, tiny_vqvae):
    settings = {**tiny_vqvae, "epochs": 2, "prior_epochs": 1, "recon_loss": "l1", "adversarial_weight": 0.1,
                "feature_matching_weight": 1.0, "adversarial_start_epoch": 1, "disc_filters": [8, 16],
                "augment": True, "restart_threshold": 0.5}
    run_dir = runs.prepare_run(tmp_path / "adv", tiny_dataset, "vqvae", "demo", settings)
    config = json.loads((run_dir / "config.json").read_text())
    # Every weight is recorded; augment=True is stored as its strengths.
    assert config["adversarial_weight"] == 0.1 and config["feature_matching_weight"] == 1.0
    assert config["augment"]["flip"] == 0.5 and config["recon_loss"] == "l1"

    def cancel_after_first_epoch(event):
        if event["kind"] == "epoch" and event["epoch"] == 1:
            (run_dir / "cancel").touch()

    trainer.train_run(run_dir, progress=cancel_after_first_epoch)
    assert runs.read_status(run_dir)["state"] == "cancelled"
    trainer.train_run(run_dir, resume=True)  # the adversary switches on in the second epoch
    status = runs.read_status(run_dir)
    assert status["state"] == "finished", status
    metrics = runs.read_metrics(run_dir)
    assert list(metrics["epoch"]) == [1, 2]
    for column in ("disc_loss", "val_disc_loss", "adversarial", "feature_matching", "adaptive_weight",
                   "perplexity", "usage"):
        assert column in metrics, column
    assert metrics["adaptive_weight"].iloc[0] == 0.0 and metrics["adaptive_weight"].iloc[1] > 0.0
    model = checkpoints.load_run_model(run_dir)
    assert model.adversary is not None and model.recon_loss == "l1"
    assert model.sample(2, seed=0).shape == (2, 32, 32, 1)


def test_a_vae_with_the_adversary_trains_through_the_engine(tmp_path, tiny_dataset, tiny_vae):
    settings = {**tiny_vae, "epochs": 2, "adversarial_weight": 0.1, "adversarial_start_epoch": 1,
                "disc_filters": [8, 16]}
    run_dir = runs.prepare_run(tmp_path / "vae-adv", tiny_dataset, "vae", "demo", settings)
    trainer.train_run(run_dir)
    metrics = runs.read_metrics(run_dir)
    assert runs.read_status(run_dir)["state"] == "finished"
    assert np.isfinite(metrics["disc_loss"]).all() and metrics["adaptive_weight"].iloc[1] > 0


@pytest.mark.parametrize(("kind", "settings"), [
    ("transformer", {"transformer_width": 16, "transformer_layers": 1, "transformer_heads": 2}),
    ("diffusion", {"diffusion_width": 8, "diffusion_steps": 20, "diffusion_sample_steps": 4}),
])
def test_a_vqvae_with_another_prior_trains_and_resumes_through_the_engine(tmp_path, tiny_dataset, tiny_vqvae,
                                                                         kind, settings):
    settings = {**tiny_vqvae, "epochs": 1, "prior_epochs": 2, "prior_type": kind, **settings}
    run_dir = runs.prepare_run(tmp_path / f"{kind}-prior", tiny_dataset, "vqvae", "demo", settings)
    assert json.loads((run_dir / "config.json").read_text())["prior_type"] == kind

    def cancel_after_first_prior_epoch(event):
        if event["kind"] == "epoch" and event.get("stage") == "prior":
            (run_dir / "cancel").touch()

    trainer.train_run(run_dir, progress=cancel_after_first_prior_epoch)
    assert runs.read_status(run_dir)["state"] == "cancelled"
    trainer.train_run(run_dir, resume=True)
    assert runs.read_status(run_dir)["state"] == "finished"
    assert list(runs.read_metrics(run_dir, runs.PRIOR_METRICS)["epoch"]) == [1, 2]  # resumed, not restarted
    model = checkpoints.load_run_model(run_dir)
    assert type(model.prior).__name__ == PRIOR_CLASSES[kind]
    assert model.sample(2, seed=0).shape == (2, 32, 32, 1)
