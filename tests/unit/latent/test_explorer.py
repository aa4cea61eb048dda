"""Encodings and the Explorer on tiny trained VAE / VQ-VAE runs: endpoints, sliders, samples, bad runs."""

import shutil

import numpy as np
import pytest

from core.errors import UserError
from core.latent import DatasetMissing, Explorer, ViewState, encode_run, run_fingerprint

pytestmark = pytest.mark.slow  # trains tiny models once per session (~30 s on 2 cores)


def test_encodings_cover_every_split_with_metadata(vae_explorer):
    enc = vae_explorer.enc
    assert len(enc) == 48 + 8 + 16  # the tiny dataset's train, val and test slices
    assert list(enc.meta["split"].unique()) == ["train", "val", "test"]
    assert enc.meta["row"].tolist() == list(range(len(enc)))
    assert enc.points.shape == (72, 8) and enc.log_var.shape == (72, 8)
    row = enc.row_of("S007", 3)
    assert enc.meta.at[row, "split"] == "val"
    with pytest.raises(UserError, match="no slice 99"):
        enc.row_of("S007", 99)
    # the real slice loaded for a row is the dataset's image
    from core.data.dataset import load_split_images

    np.testing.assert_array_equal(enc.images([row])[0], load_split_images(enc.dataset_dir, "val")[3])
    # every slice in row order, in batches that do not line up with the splits (the map's thumbnails)
    every = np.concatenate(list(enc.iter_images(batch_size=5)))
    assert every.shape == (72, 32, 32)
    np.testing.assert_array_equal(every[[0, 47, row, 71]], enc.images([0, 47, row, 71]))


@pytest.mark.parametrize("name", ["vae_explorer", "vq_explorer"])
def test_encodings_without_the_subjects_a_reader_study_reserves(name, request):
    from core.latent import Explorer

    enc = request.getfixturevalue(name).enc
    hidden = sorted(set(enc.meta.loc[enc.meta["split"] == "test", "subject"]))[0]
    keep = (enc.meta["subject"] != hidden).to_numpy()
    n = int(keep.sum())
    less = enc.without_subjects({hidden, "nobody"})
    assert len(less) == n < len(enc) and hidden not in set(less.meta["subject"])
    assert less.fingerprint != enc.fingerprint and less.meta["row"].tolist() == list(range(n))
    assert len(less.points) == len(less.space) == n
    assert (less.log_var if enc.model_type == "vae" else less.codes).shape[0] == n
    np.testing.assert_array_equal(less.points, enc.points[keep])
    every = np.concatenate(list(less.iter_images(batch_size=5)))
    np.testing.assert_array_equal(every, np.concatenate(list(enc.iter_images()))[keep])
    np.testing.assert_array_equal(less.images([n - 1]), enc.images([np.flatnonzero(keep)[-1]]))
    with pytest.raises(UserError, match="no slice"):
        less.row_of(hidden, int(enc.meta.loc[~keep, "slice"].iloc[0]))
    assert enc.without_subjects({"nobody"}) is enc and len(enc) == len(keep)  # the original is untouched
    assert len(Explorer(request.getfixturevalue(name).model, less).enc) == n
    with pytest.raises(UserError, match="reader study reserves"):
        enc.without_subjects(set(enc.meta["subject"]))


@pytest.mark.parametrize("name", ["vae_explorer", "vq_explorer"])
@pytest.mark.parametrize("mode", ["linear", "spherical"])
def test_interpolation_endpoints_decode_to_the_endpoints_reconstructions(name, mode, request):
    explorer = request.getfixturevalue(name)
    rows = [2, 50]
    strip = explorer.interpolation(*explorer.latent_of_rows(rows), steps=5, mode=mode)
    recon = explorer.reconstruct_rows(rows)
    assert strip.shape == (5, 32, 32)
    np.testing.assert_allclose(strip[0], recon[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], recon[1], atol=1e-5)
    assert np.abs(strip[2] - strip[0]).mean() > 0  # the middle differs from the start


def test_vae_slider_moves_the_decoded_image(vae_explorer):
    fp = vae_explorer.enc.fingerprint
    still = vae_explorer.render(ViewState(fp, "slice", "S001", 0))
    assert still.reference_is_real
    np.testing.assert_allclose(still.image, vae_explorer.reconstruct_rows([0])[0], atol=1e-5)
    moved = vae_explorer.render(ViewState(fp, "slice", "S001", 0, sliders={"pc1": 3.0}))
    assert np.abs(moved.image - still.image).max() > 1e-4  # a 2-epoch model decodes nearly flat images
    assert np.linalg.norm(moved.latent - still.latent) == pytest.approx(3 * vae_explorer.directions["pc1"].scale,
                                                                         rel=1e-4)
    groups = vae_explorer.groups()
    assert len(groups["pca"]) == 8 and len(groups["kl"]) == 8  # all 8 units of the 8-d latent
    with pytest.raises(UserError, match="direction 'age'"):
        vae_explorer.render(ViewState(fp, sliders={"age": 1}))  # tiny dataset has no ages


def test_vae_samples_match_the_models_own_sampler(vae_explorer):
    z = vae_explorer.sample_latents(4, seed=5, temperature=0.7)
    images, _ = vae_explorer.decode(z)
    np.testing.assert_allclose(images, vae_explorer.model.sample(4, seed=5, temperature=0.7)[..., 0], atol=1e-5)
    tile = vae_explorer.render(ViewState(vae_explorer.enc.fingerprint, "sample", seed=5, temperature=0.7,
                                         sample_index=2))
    np.testing.assert_allclose(tile.image, images[2], atol=1e-5)
    # moved away from the tile, the reference is still the decoded tile (decoded once, then reused)
    for _ in range(2):
        moved = vae_explorer.render(ViewState(vae_explorer.enc.fingerprint, "sample", seed=5, temperature=0.7,
                                              sample_index=2, sliders={"pc1": 2.0}))
        assert not moved.reference_is_real
        np.testing.assert_allclose(moved.reference, images[2], atol=1e-5)
        assert np.abs(moved.image - moved.reference).max() > 1e-4


def test_vq_slider_requantises_and_counts_changed_codes(vq_explorer):
    fp = vq_explorer.enc.fingerprint
    still = vq_explorer.render(ViewState(fp, "slice", "S001", 1))
    assert still.changed_codes == 0 and still.total_codes == 8 * 8
    far = vq_explorer.render(ViewState(fp, "slice", "S001", 1, sliders={"pc1": 4.0, "pc2": -4.0}))
    assert 0 < far.changed_codes <= 64
    # from the zero start the count is against the decoded start, unchanged when nothing moved
    assert vq_explorer.render(ViewState(fp, "zero")).changed_codes == 0
    zero_far = vq_explorer.render(ViewState(fp, "zero", sliders={"pc1": 4.0, "pc2": -4.0}))
    assert 0 < zero_far.changed_codes <= 64 and not zero_far.reference_is_real
    assert vq_explorer.enc.codes.shape == (72, 8, 8)
    assert not vq_explorer.groups()["kl"]  # KL units are a VAE notion


def test_vq_samples_come_from_its_prior(vq_explorer):
    assert vq_explorer.can_sample
    z = vq_explorer.sample_latents(3, seed=1)
    images, codes = vq_explorer.decode(z)
    np.testing.assert_array_equal(codes, vq_explorer.model.prior.sample(3, seed=1))
    assert vq_explorer.map_points(z).shape[0] == 3


def test_vq_without_prior_cannot_sample_but_explores(vq_run_no_prior):
    from core.training.checkpoints import load_run_model

    model = load_run_model(vq_run_no_prior)
    explorer = Explorer(model, encode_run(vq_run_no_prior, model))
    assert not explorer.can_sample
    with pytest.raises(UserError, match="prior is not trained"):
        explorer.sample_latents(2)
    rendered = explorer.render(ViewState(explorer.enc.fingerprint, "slice", "S001", 0, sliders={"pc1": 1}))
    assert rendered.image.shape == (32, 32)


def test_run_without_model_or_dataset_is_refused(vae_run, tmp_path):
    empty = tmp_path / "no-model"
    empty.mkdir()
    shutil.copy(vae_run / "config.json", empty / "config.json")
    with pytest.raises(UserError, match="no model yet"):
        encode_run(empty)
    moved = tmp_path / "lost-dataset"
    shutil.copytree(vae_run, moved)
    import json

    config = json.loads((moved / "config.json").read_text())
    config["dataset"]["path"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(DatasetMissing, match="gone from the cache") as info:
        encode_run(moved)
    assert info.value.spec["size"] == 32
    assert run_fingerprint(moved).startswith("lost-dataset@")


def test_nan_latents_are_refused_with_a_message(vae_explorer):
    import copy

    enc = copy.copy(vae_explorer.enc)
    enc.points = enc.points.copy()
    enc.points[3, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        Explorer(vae_explorer.model, enc)
