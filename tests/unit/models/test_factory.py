"""The model factory and the Keras registration that lets saved ``.keras`` files load."""

import keras
import pytest

import core.models
from core.errors import UserError
from core.models.factory import build_model, build_prior

# Registered names are stored in every .keras file: changing one breaks existing runs.
REGISTERED = {
    "VAE": "latentbrain>VAE",
    "Sampling": "latentbrain>Sampling",
    "VQVAE": "latentbrain>VQVAE",
    "VectorQuantizer": "latentbrain>VectorQuantizer",
    "PixelCNNPrior": "latentbrain>PixelCNNPrior",
    "MaskedConv2D": "latentbrain>MaskedConv2D",
    "GatedActivation": "latentbrain>GatedActivation",
    "PositionBias": "latentbrain>PositionBias",
}


@pytest.mark.parametrize("name, registered", sorted(REGISTERED.items()))
def test_registered_names_are_stable(name, registered):
    cls = getattr(core.models, name)
    assert keras.saving.get_registered_name(cls) == registered
    assert keras.saving.get_registered_object(registered) is cls


def test_factory_is_the_package_builder():
    assert core.models.build_model is build_model
    assert core.models.build_prior is build_prior


def test_build_prior_grid_follows_the_vqvae():
    config = {"model_type": "vqvae", "preset": "demo", "image_size": 32, "filters": [8, 16],
              "num_embeddings": 8, "prior_filters": 8, "prior_layers": 2}
    vqvae, prior = build_model(config), build_prior(config)
    assert (prior.grid_size, prior.num_embeddings) == (vqvae.grid_size, vqvae.num_embeddings) == (8, 8)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        core.models.NoSuchModel  # noqa: B018
