"""Named model configurations (demo, thesis, quality) as plain data, and their validation.

This module imports neither Keras nor TensorFlow, so a page can read a preset cheaply;
``core.models.factory`` builds the models from a validated config.

A config is a flat JSON-friendly dict: ``model_type``, ``preset``, the training settings
(``image_size``, ``batch_size``, ``learning_rate``, ``epochs``, ``early_stopping_patience``,
``seed``) and the model's own keys.  VAE configs add the loss and KL warm-up keys
(``recon_loss``, ``sigma``, ``beta``, ``free_bits``, ``kl_schedule``, ``warmup_epochs``...);
VQ-VAE configs add the codebook keys and the prior's (``prior_epochs``, ``prior_filters``...).
Both have ``conditional``, with the dataset's ``slice_range`` [start, stop) for a conditional
model (a conditional VAE conditions encoder and decoder, a conditional VQ-VAE its prior).

- ``demo``: 64 px, small; trains on the demo cohort on 2 CPU cores in minutes; its VAE uses
  a Bernoulli decoder (measured best of the decoder likelihoods, issue 10).
- ``thesis``: the 2023 thesis' architecture (128 px, conv k4 s2 + BatchNorm + LeakyReLU,
  blocks 16/32/64/256/1024, latent 1024, Adam 5e-4, batch 64) with our loss fixes: a real
  ELBO (summed Gaussian reconstruction, beta * KL, linear KL warm-up, free bits) instead of
  ``1000 * mean-MSE + KL``.  Its VQ-VAE keeps the thesis' first blocks (16/32/64) so the code
  grid is 16x16 (the thesis had 2x2) and has a PixelCNN prior (the thesis had none).
- ``quality``: wider networks for a GPU, 128 px, with issue 20's choices (codebook, L1,
  adversary, augmentation); untested on a GPU here (no GPU was lent).
- ``cpu128``: the thesis' 128 px with issue 20's choices, sized to train on 2 CPU cores in
  under 30 minutes on ~170 slices (12 real heads): code grid 16x16 (8x smaller than the image,
  VQGAN's first anchor), a discriminator of four blocks for the larger image.
"""

from __future__ import annotations

import copy

from core.errors import UserError
from core.models._checks import (
    check_bool,
    check_choice,
    check_filters,
    check_float,
    check_image_size,
    check_int,
)
from core.training.augment import AUGMENT_DEFAULTS  # plain Python: no TensorFlow import

__all__ = [
    "MODEL_TYPES",
    "PRESET_NAMES",
    "PRIOR_TYPES",
    "RECON_LOSSES",
    "LOSS_MODES",
    "KL_SCHEDULES",
    "PRESETS",
    "get_preset",
    "validate_config",
]

MODEL_TYPES = ("vae", "vqvae")
PRESET_NAMES = ("demo", "thesis", "quality", "cpu128")
#: VAE choices (see :class:`core.models.vae.VAE`): decoder likelihood, loss, KL warm-up.
RECON_LOSSES = ("bernoulli", "gaussian", "gaussian_optimal")
LOSS_MODES = ("elbo", "thesis")
KL_SCHEDULES = ("linear", "cyclical", "none")
#: VQ-VAE pixel losses (see :class:`core.models.vqvae.VQVAE`).
VQ_RECON_LOSSES = ("mse", "l1")
#: VQ-VAE priors over the code grid (``prior_type``): gated PixelCNN, causal transformer, latent diffusion.
PRIOR_TYPES = ("pixelcnn", "transformer", "diffusion")

#: Config keys of the adversarial option and their "off" values (both VAE and VQ-VAE).
ADVERSARIAL_DEFAULTS = {
    "adversarial_weight": 0.0,       # 0 = off; scales the adaptive weight (VQGAN's disc_weight)
    "feature_matching_weight": 0.0,  # L1 between discriminator features of real and reconstruction
    "adversarial_start_epoch": 0,    # warm-up: the adversary joins once reconstructions make sense
    "disc_filters": [32, 64, 128],
    "disc_learning_rate": 2e-4,
}


_VAE_LOSS = {
    "recon_loss": "gaussian",
    "sigma": 0.1,
    "learn_sigma": False,
    "beta": 1.0,
    "free_bits": 0.05,
    "loss_mode": "elbo",
    "kl_schedule": "linear",
    "cycle_epochs": 10,
    "conditional": False,
    "augment": None,  # or strengths: core.training.augment.AUGMENT_DEFAULTS
    **ADVERSARIAL_DEFAULTS,
}

_VQ_CODEBOOK = {
    "commitment_cost": 0.25,
    "use_ema": True,
    "ema_decay": 0.99,
    "restart_dead_codes": True,
    "restart_threshold": 0.03,
    "data_init": True,
    "prior_kernel_size": 3,
    # the prior's kind (issue 20): "pixelcnn" (gated PixelCNN: prior_filters, prior_layers,
    # prior_kernel_size), "transformer" (causal transformer: the transformer_* keys) or
    # "diffusion" (a U-Net denoising the code vectors, DDIM sampling: the diffusion_* keys)
    "prior_type": "pixelcnn",
    "transformer_width": 128,
    "transformer_layers": 4,
    "transformer_heads": 4,
    "transformer_dropout": 0.1,
    "diffusion_width": 64,
    "diffusion_steps": 1000,
    "diffusion_sample_steps": 50,
    "conditional": False,
    "recon_loss": "mse",
    "upsample": "transpose",
    "augment": None,  # or strengths: core.training.augment.AUGMENT_DEFAULTS
    **ADVERSARIAL_DEFAULTS,
}

#: How a VQ-VAE decoder doubles its side (``upsample``; :func:`core.models.blocks.up_block`): a
#: stride-2 transposed convolution (the thesis' choice), or nearest-neighbour resizing then a 3x3
#: convolution ("resize-convolution", Odena et al. 2016, "Deconvolution and checkerboard
#: artifacts"): a kernel that the stride does not divide evenly overlaps unevenly and can leave a
#: checkerboard, which the 128 px samples showed (issue 20).
UPSAMPLE_MODES = ("transpose", "resize")

#: Issue 20's VQ-VAE choices, measured at 64 px on real heads (see the ``demo`` preset's note):
#: 8-d codes, dead-code restarts below half a code's uniform share, L1, the adversary with
#: feature matching.  Every VQ-VAE preset but ``thesis`` (the seed's network) carries them.
_ISSUE20_VQ = {
    "embedding_dim": 8,
    "restart_threshold": 0.5,
    "recon_loss": "l1",
    "adversarial_weight": 0.1,
    "feature_matching_weight": 1.0,
}

PRESETS = {
    ("vae", "demo"): {
        "image_size": 64,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "epochs": 60,
        "early_stopping_patience": 15,
        "filters": [32, 64, 128, 256],
        "kernel_size": 4,
        "latent_dim": 128,
        **_VAE_LOSS,
        # Measured (issue 10, same process, 2 contended cores): Bernoulli beat sigma = 0.1,
        # a learned sigma and the analytic sigma ("gaussian_optimal") on test SSIM, sample
        # sharpness, FD (slice-position net) and handcrafted MMD.
        "recon_loss": "bernoulli",
        "warmup_epochs": 10,
        # Issue 20: the adversary (adversarial_weight 0.1 after the KL warm-up) is an option, not
        # the default: on real heads its N(0, I) samples were as blurry as without it (sharpness
        # 0.21 vs 0.20 of real, two-sample 1.000 both; bench/quality.py rows ours / vae_before of
        # bench/results/quality_real_dev.json) and training took 3x longer.  The blur of a VAE's
        # prior samples is not its decoder's: it sharpened reconstructions on a toy set.
        "adversarial_start_epoch": 10,
    },
    ("vae", "thesis"): {
        "image_size": 128,
        "batch_size": 64,
        "learning_rate": 5e-4,
        "epochs": 100,
        "early_stopping_patience": 15,
        "filters": [16, 32, 64, 256, 1024],
        "kernel_size": 4,
        "latent_dim": 1024,
        **_VAE_LOSS,
        "warmup_epochs": 10,
    },
    ("vae", "quality"): {
        "image_size": 128,
        "batch_size": 64,
        "learning_rate": 2e-4,
        "epochs": 300,
        "early_stopping_patience": 30,
        "filters": [64, 128, 256, 512, 512],
        "kernel_size": 4,
        "latent_dim": 256,
        **_VAE_LOSS,
        "warmup_epochs": 20,
    },
    ("vqvae", "demo"): {
        "image_size": 64,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "epochs": 60,  # 40 before issue 20: L1 and the adversary keep improving to ~80 on real heads
        "early_stopping_patience": 10,
        "filters": [32, 64],
        "kernel_size": 4,
        "n_res_blocks": 2,
        "res_filters": 64,
        "num_embeddings": 128,
        **_VQ_CODEBOOK,
        # Issue 20, measured on real_dev (12 real heads; /tmp sweeps, then bench/quality.py's
        # vq_* rows): restarts below 3 % of a code's uniform share almost never fired, and 23 %
        # of the codebook stayed in use (perplexity 25 of 128); below 50 % with 8-dimensional
        # codes: perplexity ~100, all codes used.  L1 instead of squared error: test SSIM
        # 0.78 -> 0.87 after 75 epochs; the discriminator (+ feature matching) after 20 epochs:
        # reconstruction sharpness 0.45 -> 0.69 of real at the same SSIM.  A weight of 0.5
        # was sharper still but lost SSIM (0.866 vs 0.886 at 80 epochs).
        **_ISSUE20_VQ,
        "adversarial_start_epoch": 15,
        "prior_epochs": 30,
        "prior_batch_size": 32,
        "prior_learning_rate": 1e-3,
        "prior_early_stopping_patience": 10,
        "prior_filters": 64,
        "prior_layers": 8,
        # 5x5 masks: a position sees 17 rows up, the whole 16x16 grid; 3x3 saw 9 rows, the lower
        # rows could not see the top.  bench/prior.py (issue 10, 6 epochs each, same seed):
        # blotch rate 0.078 -> 0.016, validation NLL 0.935 -> 0.892 bits/code.
        "prior_kernel_size": 5,
    },
    ("vqvae", "thesis"): {
        "image_size": 128,
        "batch_size": 64,
        "learning_rate": 5e-4,
        "epochs": 100,
        "early_stopping_patience": 15,
        "filters": [16, 32, 64],
        "kernel_size": 4,
        "n_res_blocks": 2,
        "res_filters": 256,
        "num_embeddings": 512,
        "embedding_dim": 64,
        **_VQ_CODEBOOK,
        "prior_epochs": 60,
        "prior_batch_size": 64,
        "prior_learning_rate": 5e-4,
        "prior_early_stopping_patience": 10,
        "prior_filters": 96,
        "prior_layers": 10,
        "prior_kernel_size": 5,  # 21 rows up: its whole 16x16 grid (3x3 reached 11 rows, see demo)
    },
    ("vae", "cpu128"): {
        "image_size": 128,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "epochs": 80,
        "early_stopping_patience": 20,
        "filters": [32, 64, 128, 256, 256],
        "kernel_size": 4,
        "latent_dim": 128,
        **_VAE_LOSS,
        "recon_loss": "bernoulli",
        "warmup_epochs": 10,
        "adversarial_weight": 0.1,
        "adversarial_start_epoch": 15,
        "disc_filters": [32, 64, 128, 256],
    },
    ("vqvae", "cpu128"): {
        "image_size": 128,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "epochs": 100,
        "early_stopping_patience": 20,
        "filters": [32, 64, 128],
        "kernel_size": 4,
        "n_res_blocks": 2,
        "res_filters": 128,
        "num_embeddings": 256,
        **_VQ_CODEBOOK,
        **_ISSUE20_VQ,
        "adversarial_start_epoch": 20,
        "disc_filters": [32, 64, 128, 256],
        # 128 px with 7 training heads memorises: bench/quality.py --preset cpu128 on real_dev
        # (issue 20): near-copies 0.172 -> 0.027 and MS-SSIM 0.492 -> 0.450 (inside the real
        # spread) with augmentation, sharpness 0.40 -> 0.47, test SSIM 0.769 -> 0.747.
        "augment": dict(AUGMENT_DEFAULTS),
        "prior_epochs": 40,
        "prior_batch_size": 32,
        "prior_learning_rate": 1e-3,
        "prior_early_stopping_patience": 10,
        "prior_filters": 64,
        "prior_layers": 8,
        "prior_kernel_size": 5,
    },
    ("vqvae", "quality"): {
        "image_size": 128,
        "batch_size": 64,
        "learning_rate": 3e-4,
        "epochs": 200,
        "early_stopping_patience": 20,
        "filters": [64, 128, 256],
        "kernel_size": 4,
        "n_res_blocks": 4,
        "res_filters": 256,
        "num_embeddings": 512,
        **_VQ_CODEBOOK,
        # issue 20's choices (measured at 64 px on real heads), untested at this size: no GPU lent
        **_ISSUE20_VQ,
        "adversarial_start_epoch": 30,
        "disc_filters": [64, 128, 256, 256],
        "prior_epochs": 150,
        "prior_batch_size": 64,
        "prior_learning_rate": 3e-4,
        "prior_early_stopping_patience": 20,
        "prior_filters": 128,
        "prior_layers": 15,
        "prior_kernel_size": 5,
    },
}


def get_preset(model_type, preset):
    """Full config dict (a new copy) of a named preset.

    >>> get_preset("vae", "thesis")["filters"]
    [16, 32, 64, 256, 1024]
    """
    check_choice("model_type", model_type, MODEL_TYPES)
    check_choice("preset", preset, PRESET_NAMES)
    return {
        "model_type": model_type,
        "preset": preset,
        "seed": 0,
        **copy.deepcopy(PRESETS[(model_type, preset)]),
    }


def validate_config(config, n_train=None):
    """Check a config and return a new full one: the preset's values overridden by ``config``.

    ``config`` needs ``model_type``; ``preset`` defaults to ``"demo"``.  Keys no preset knows
    are passed through unchanged (e.g. a dataset hash).  With ``n_train`` (training images)
    a ``batch_size`` larger than the training set is refused too.

    Raises:
        UserError: naming the argument and showing the bad value.

    >>> validate_config({"model_type": "vae", "epochs": 3})["epochs"]
    3
    """
    if not isinstance(config, dict):
        raise UserError(f"config must be a dict, got {type(config).__name__}")
    model_type = check_choice("model_type", config.get("model_type"), MODEL_TYPES)
    preset = check_choice("preset", config.get("preset", "demo"), PRESET_NAMES)
    c = {**get_preset(model_type, preset), **copy.deepcopy(config)}

    c["filters"] = list(check_filters("filters", c["filters"]))
    c["image_size"] = check_image_size(c["image_size"], len(c["filters"]))
    c["batch_size"] = check_int("batch_size", c["batch_size"], 1)
    c["learning_rate"] = check_float("learning_rate", c["learning_rate"], 0.0, open_min=True)
    c["epochs"] = check_int("epochs", c["epochs"], 1)
    c["early_stopping_patience"] = check_int("early_stopping_patience", c["early_stopping_patience"], 0)
    c["kernel_size"] = check_int("kernel_size", c["kernel_size"], 1)
    if c.get("seed") is not None:
        c["seed"] = check_int("seed", c["seed"], 0)
    if n_train is not None and c["batch_size"] > n_train:
        raise UserError(
            f"batch_size ({c['batch_size']}) is larger than the training set ({n_train} images)"
        )

    if model_type == "vae":
        c["latent_dim"] = check_int("latent_dim", c["latent_dim"], 1)
        check_choice("recon_loss", c["recon_loss"], RECON_LOSSES)
        c["sigma"] = check_float("sigma", c["sigma"], 0.0, open_min=True)
        check_bool("learn_sigma", c["learn_sigma"])
        if c["learn_sigma"] and c["recon_loss"] != "gaussian":
            raise UserError(f"learn_sigma needs recon_loss='gaussian', got {c['recon_loss']!r}")
        c["beta"] = check_float("beta", c["beta"], 0.0)
        c["free_bits"] = check_float("free_bits", c["free_bits"], 0.0)
        check_choice("loss_mode", c["loss_mode"], LOSS_MODES)
        check_choice("kl_schedule", c["kl_schedule"], KL_SCHEDULES)
        c["warmup_epochs"] = check_int("warmup_epochs", c["warmup_epochs"], 0)
        c["cycle_epochs"] = check_int("cycle_epochs", c["cycle_epochs"], 1)
    else:
        c["num_embeddings"] = check_int("num_embeddings", c["num_embeddings"], 2)
        c["embedding_dim"] = check_int("embedding_dim", c["embedding_dim"], 1)
        c["n_res_blocks"] = check_int("n_res_blocks", c["n_res_blocks"], 0)
        c["res_filters"] = check_int("res_filters", c["res_filters"], 1)
        c["commitment_cost"] = check_float("commitment_cost", c["commitment_cost"], 0.0)
        for key in ("use_ema", "restart_dead_codes", "data_init"):
            check_bool(key, c[key])
        c["ema_decay"] = check_float("ema_decay", c["ema_decay"], 0.0, 1.0, open_min=True, open_max=True)
        c["restart_threshold"] = check_float("restart_threshold", c["restart_threshold"], 0.0, 1.0)
        c["prior_epochs"] = check_int("prior_epochs", c["prior_epochs"], 0)
        c["prior_batch_size"] = check_int("prior_batch_size", c["prior_batch_size"], 1)
        c["prior_learning_rate"] = check_float(
            "prior_learning_rate", c["prior_learning_rate"], 0.0, open_min=True
        )
        c["prior_early_stopping_patience"] = check_int(
            "prior_early_stopping_patience", c["prior_early_stopping_patience"], 0
        )
        c["prior_filters"] = check_int("prior_filters", c["prior_filters"], 1)
        c["prior_layers"] = check_int("prior_layers", c["prior_layers"], 1)
        c["prior_kernel_size"] = check_int("prior_kernel_size", c["prior_kernel_size"], 3)
        check_choice("recon_loss", c["recon_loss"], VQ_RECON_LOSSES)
        check_choice("upsample", c["upsample"], UPSAMPLE_MODES)
        check_choice("prior_type", c["prior_type"], PRIOR_TYPES)
        c["transformer_width"] = check_int("transformer_width", c["transformer_width"], 1)
        c["transformer_layers"] = check_int("transformer_layers", c["transformer_layers"], 1)
        c["transformer_heads"] = check_int("transformer_heads", c["transformer_heads"], 1)
        if c["transformer_width"] % c["transformer_heads"]:
            raise UserError(f"transformer_width ({c['transformer_width']}) must be a multiple of "
                            f"transformer_heads ({c['transformer_heads']})")
        c["transformer_dropout"] = check_float("transformer_dropout", c["transformer_dropout"], 0.0, 1.0,
                                               open_max=True)
        c["diffusion_width"] = check_int("diffusion_width", c["diffusion_width"], 8)
        if c["diffusion_width"] % 8:
            raise UserError(f"diffusion_width must be a multiple of 8 (group norm), got {c['diffusion_width']}")
        c["diffusion_steps"] = check_int("diffusion_steps", c["diffusion_steps"], 2)
        c["diffusion_sample_steps"] = check_int("diffusion_sample_steps", c["diffusion_sample_steps"], 1)
        if c["diffusion_sample_steps"] > c["diffusion_steps"]:
            raise UserError(f"diffusion_sample_steps ({c['diffusion_sample_steps']}) must not exceed "
                            f"diffusion_steps ({c['diffusion_steps']})")
        if c["prior_kernel_size"] % 2 == 0:
            raise UserError(f"prior_kernel_size must be odd, got {c['prior_kernel_size']}")
    _check_adversarial(c)
    from core.training.augment import check_augment  # plain Python: no TensorFlow import

    c["augment"] = check_augment(c.get("augment"))
    check_bool("conditional", c.get("conditional", False))
    if c.get("conditional") and c.get("slice_range") is not None:
        sr = c["slice_range"]
        if not isinstance(sr, (list, tuple)) or len(sr) != 2:
            raise UserError(f"slice_range must be [start, stop], got {sr!r}")
        c["slice_range"] = [check_int("slice_range", v, 0) for v in sr]
        if c["slice_range"][1] - c["slice_range"][0] < 2:
            raise UserError(f"slice_range must hold at least 2 slices, got {sr!r}")
    return c


def _check_adversarial(c):
    """Validate the adversarial keys of a config dict in place (see ``ADVERSARIAL_DEFAULTS``)."""
    c["adversarial_weight"] = check_float("adversarial_weight", c["adversarial_weight"], 0.0)
    c["feature_matching_weight"] = check_float("feature_matching_weight", c["feature_matching_weight"], 0.0)
    c["adversarial_start_epoch"] = check_int("adversarial_start_epoch", c["adversarial_start_epoch"], 0)
    c["disc_filters"] = list(check_filters("disc_filters", c["disc_filters"]))
    c["disc_learning_rate"] = check_float("disc_learning_rate", c["disc_learning_rate"], 0.0, open_min=True)
    return c
