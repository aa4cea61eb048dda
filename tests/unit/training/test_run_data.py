"""Tests for core.training.runs.RunData: the one owner of a run's config, dataset, model stamp and model."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from core.data.dataset import load_manifest, load_split_images
from core.errors import UserError
from core.training import runs
from core.training.runs import META_COLUMNS, DatasetMissing, RunData, RunFolder


@pytest.fixture
def vae_copy(trained_vae, tmp_path):
    """A writable copy of the session's tiny VAE run."""
    return shutil.copytree(trained_vae, tmp_path / "vae-copy")


@pytest.fixture
def vq_copy(trained_vqvae, tmp_path):
    """A writable copy of the session's tiny VQ-VAE run (with its prior)."""
    return shutil.copytree(trained_vqvae, tmp_path / "vq-copy")


def test_open_reads_the_config_and_the_dataset_on_demand(trained_vae, tiny_dataset):
    data = RunData.open(trained_vae)
    assert RunData.open(data) is data and RunData.open(RunFolder(trained_vae)).path == trained_vae
    assert data.name == "vae-tiny" and data.model_type == "vae" and not data.conditional
    assert data.config == runs.read_config(trained_vae)
    assert data.dataset_dir == tiny_dataset and data.manifest == load_manifest(tiny_dataset)
    assert data.check_dataset()["hash"] == data.config["dataset"]["hash"]
    assert data.status["state"] == "finished"


def test_split_is_what_run_context_has_always_returned(trained_vae, tiny_dataset):
    data = RunData.open(trained_vae)
    test = data.split("test")
    assert data.split("test") is test  # kept on the instance
    entry = load_manifest(tiny_dataset)["splits"]["test"]
    # The tiny dataset holds 2 test subjects of 8 slices.
    assert test.images.dtype == np.float32 and test.images.shape == (16, 32, 32) and len(test) == 16
    np.testing.assert_array_equal(test.images, load_split_images(tiny_dataset, "test"))
    assert test.subjects == [s[0] for s in entry["slices"]]
    np.testing.assert_array_equal(test.positions, [s[1] for s in entry["slices"]])
    assert len(test.sites) == 16 and all(isinstance(s, str) and s for s in test.sites)
    assert test.conditions is None and data.conditions("train") is None
    assert set(test.as_dict()) == {"images", "subjects", "positions", "sites", "conditions"}
    assert data.has_split("train") and len(data.images("train")) == 48

    from core.evaluation.run import run_context

    context = run_context(trained_vae)
    assert context["config"] == data.config and context["manifest"]["hash"] == data.manifest["hash"]
    assert context["test"]["subjects"] == test.subjects and set(context) == {"config", "manifest", "dataset",
                                                                          "train", "test"}


def test_metadata_has_one_row_per_slice_in_global_order(trained_vae):
    data = RunData.open(trained_vae)
    meta = data.metadata()
    assert list(meta.columns) == META_COLUMNS and len(meta) == 48 + 8 + 16
    assert list(meta["row"]) == list(range(72))
    assert list(meta["split"].unique()) == ["train", "val", "test"]
    assert list(meta[meta["split"] == "val"]["index"]) == list(range(8))
    meta["extra"] = 1  # a copy: the kept table is not changed
    assert "extra" not in data.metadata().columns


def test_stamp_covers_model_and_prior(vq_copy):
    data = RunData.open(vq_copy)
    model_ns, prior_ns = data.stamp
    assert model_ns > 0 and prior_ns > 0
    fingerprint = data.fingerprint
    assert fingerprint == f"vq-copy@{model_ns}"
    # The prior is rewritten (once per prior epoch while it trains): the stamp changes, the model's part not.
    prior = vq_copy / "prior.keras"
    content = prior.read_bytes()
    time.sleep(0.05)
    prior.write_bytes(content)
    os.utime(prior, ns=(time.time_ns(), max(time.time_ns(), prior_ns + 1)))
    assert data.stamp != (model_ns, prior_ns) and data.stamp[0] == model_ns
    assert data.fingerprint == fingerprint
    prior.unlink()
    assert data.stamp == (model_ns, 0)
    (vq_copy / "model.keras").unlink()
    assert data.stamp == (0, 0) and not data.has_model()
    with pytest.raises(UserError, match="has no model yet"):
        data.fingerprint  # noqa: B018
    with pytest.raises(UserError, match="has no model yet"):
        data.load_model()


def test_load_model_is_the_run_model(trained_vae):
    model = RunData.open(trained_vae).load_model()
    assert model.image_size == 32 and hasattr(model, "attach_aggregate")


def test_a_removed_dataset_is_dataset_missing_with_its_spec(vae_copy, tiny_dataset, tmp_path):
    moved = shutil.copytree(tiny_dataset, tmp_path / "ds-copy")
    config = runs.read_config(vae_copy)
    runs.update_config(vae_copy, {"dataset": {**config["dataset"], "path": str(moved)}})
    data = RunData.open(vae_copy)
    assert len(data.split("test")) == 16
    shutil.rmtree(moved)
    data = RunData.open(vae_copy)  # opening needs only the config
    for read in (lambda: data.dataset_dir, lambda: data.manifest, lambda: data.split("test"),
                 lambda: data.metadata(), lambda: data.images("train")):
        with pytest.raises(DatasetMissing, match="gone from the cache") as info:
            read()
        assert info.value.spec["size"] == 32 and info.value.config["run_name"] == "vae-tiny"
    assert isinstance(info.value, UserError)
    assert data.stamp[0] > 0 and data.fingerprint.startswith("vae-copy@")  # the model is still there

    from core.latent import DatasetMissing as LatentDatasetMissing

    assert LatentDatasetMissing is DatasetMissing  # the Latent page catches the same class


def test_a_run_without_a_recorded_dataset_says_so(vae_copy):
    config = runs.read_config(vae_copy)
    runs.update_config(vae_copy, {"dataset": {**config["dataset"], "path": ""}})
    with pytest.raises(UserError, match="does not record its dataset") as info:
        RunData.open(vae_copy).manifest  # noqa: B018
    assert not isinstance(info.value, DatasetMissing)


def test_a_folder_that_is_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is not a run dir: config.json is missing"):
        RunData.open(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable or incomplete"):
        RunData.open(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(UserError, match="unreadable or incomplete"):
        RunData.open(tmp_path)


def test_aggregate_is_fitted_once_kept_beside_the_model_and_refitted_when_stale(vae_copy):
    data = RunData.open(vae_copy)
    model = data.load_model()
    path = data.folder.aggregate_path
    mixture = data.attach_aggregate(model, n_components=3)
    assert path.is_file() and mixture.info["n_fitted"] == 48 and mixture.n_components == 3
    assert model.aggregate is mixture
    written = path.stat().st_mtime_ns

    again_model = RunData.open(vae_copy).load_model()
    again = runs.attach_run_aggregate(again_model, vae_copy)  # read from the file, not refitted
    assert path.stat().st_mtime_ns == written
    np.testing.assert_array_equal(again.means, mixture.means)
    np.testing.assert_array_equal(again_model.sample(3, seed=1, source="aggregate"),
                                  model.sample(3, seed=1, source="aggregate"))

    # A model written after the mixture (trained on since) makes it stale: refitted.
    model_file = vae_copy / "model.keras"
    os.utime(model_file, ns=(time.time_ns(), written + 10**9))
    data.attach_aggregate(model, n_components=3)
    assert path.stat().st_mtime_ns > written

    config = runs.read_config(vae_copy)
    runs.update_config(vae_copy, {"dataset": {**config["dataset"], "path": ""}})
    with pytest.raises(UserError, match="dataset"):
        RunData.open(vae_copy).attach_aggregate(model, refit=True)
