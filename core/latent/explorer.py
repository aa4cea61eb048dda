"""One run's latent space, ready to explore: directions, start points, slider moves, decoding.

The continuous latent is the VAE's ``z`` ``(latent_dim,)`` or the VQ-VAE's flattened encoder
output ``(h*w*D,)``; a VQ-VAE latent is re-quantised before decoding and the number of grid
codes that changed from the start point is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError
from core.latent.directions import Direction, attribute_directions, fit_pca, kl_ranked_units, pca_directions
from core.latent.encodings import Encodings
from core.latent.interpolate import interpolate
from core.latent.view import ViewState

__all__ = ["Explorer", "Rendered"]


@dataclass
class Rendered:
    """A decoded view: ``image`` ``(S, S)`` float32 in [0, 1], the ``reference`` it is compared
    with (the real start slice, else the decoded start), ``changed_codes`` / ``total_codes``
    (VQ-VAE; None for a VAE) and the moved ``latent``."""

    image: np.ndarray
    reference: np.ndarray
    reference_is_real: bool
    latent: np.ndarray
    changed_codes: int | None = None
    total_codes: int | None = None


class Explorer:
    """Directions and decoding for ``model`` over its run's :class:`Encodings`.

    Args:
        model: the run's VAE or VQVAE (``core.training.checkpoints.load_run_model``).
        encodings: :func:`core.latent.encodings.encode_run` of the same model.
        n_pca: principal directions offered as sliders.
        n_kl: KL-ranked units offered (VAE only).
    """

    def __init__(self, model, encodings: Encodings, n_pca: int = 8, n_kl: int = 8):
        self.model = model
        self.enc = encodings
        self.model_type = encodings.model_type
        self.image_size = int(model.image_size)
        self._starts: dict = {}
        self._decoded: dict = {}
        #: A conditional VAE decodes every latent with a condition, a conditional VQ-VAE's prior
        #: draws codes for one: ``self.condition`` (default: the dataset's median age, F, the
        #: middle slice; the Samples panel asks for others).
        self.conditional = bool(getattr(model, "conditional", False))
        self.slice_range = tuple(model.slice_range) if self.conditional else None
        self.condition = self.default_condition() if self.conditional else None
        nan = ~np.isfinite(encodings.points).all(axis=1)
        self.nan_rows = int(nan.sum())
        if self.nan_rows:
            raise UserError(f"{self.nan_rows} of {len(nan)} slices encode to NaN or infinite latents: the "
                            "model has diverged; retrain it or resume from an earlier checkpoint")
        if self.model_type == "vae":
            self.latent_dim = int(model.latent_dim)
            self.pca = fit_pca(encodings.points, n_pca)
            kl = kl_ranked_units(encodings.points, encodings.log_var, n_kl)
            to_latent = None
        else:
            g, d = int(model.grid_size), int(model.embedding_dim)
            self.grid_shape = (g, g, d)
            self.latent_dim = g * g * d
            self.pca = encodings.pca
            kl = []
            components = self.pca.components.astype("float64")

            def to_latent(w):
                return np.asarray(w, "float64") @ components

        self.directions: dict[str, Direction] = {}
        for direction in pca_directions(k=n_pca, pca=self.pca) + kl + attribute_directions(
                encodings.space, encodings.meta, to_latent):
            self.directions[direction.key] = direction
        self.map_pca = fit_pca(encodings.points, 2)

    def default_condition(self) -> dict:
        """Median age of the dataset's subjects (50 if unknown), female, the middle slice."""
        ages = self.enc.meta["age"].dropna()
        start, stop = self.slice_range
        return {"age": int(round(float(ages.median()))) if len(ages) else 50, "sex": "F",
                "slice": (start + stop - 1) // 2}

    def row_conditions(self, rows):
        """The conditions of real slices (their own age, sex, slice) for a conditional VAE, else None."""
        if not self.conditional:
            return None
        from core.latent.encodings import meta_conditions

        return meta_conditions(self.enc.meta.iloc[np.atleast_1d(np.asarray(rows, int))], self.slice_range)

    # ------------------------------------------------------------------ facts
    @property
    def can_sample(self) -> bool:
        """VAE: always; VQ-VAE: only with a trained prior attached."""
        return self.model_type == "vae" or getattr(self.model, "prior", None) is not None

    def groups(self) -> dict[str, list[Direction]]:
        """Directions by group: ``pca``, ``kl``, ``attribute``."""
        out: dict[str, list[Direction]] = {"pca": [], "kl": [], "attribute": []}
        for d in self.directions.values():
            out[d.group].append(d)
        return out

    # ------------------------------------------------------------------ latents
    def latent_of_rows(self, rows) -> np.ndarray:
        """Continuous latents ``(n, dim)`` of real slices (VAE: posterior means; VQ: encoder output)."""
        rows = np.atleast_1d(np.asarray(rows, int))
        if self.model_type == "vae":
            return self.enc.points[rows].astype("float32")
        return self.model.encode(self.enc.images(rows)).reshape(len(rows), -1)

    def sample_latents(self, n: int, seed: int = 0, temperature: float = 1.0, source: str = "prior",
                       condition: dict | None = None) -> np.ndarray:
        """Continuous latents ``(n, dim)`` of new samples: VAE ``z ~ N(0, T² I)`` (the same draw as
        ``VAE.sample``), or with ``source="aggregate"`` from the run's Gaussian mixture on the
        training latents (fitted on first use, :meth:`core.training.runs.RunData.attach_aggregate`);
        VQ-VAE: codes from its prior (temperature on the logits), looked up.

        ``condition`` (a conditional VQ-VAE: default :attr:`condition`) is what its prior draws
        the codes for; a VAE's latents do not depend on it (it conditions :meth:`decode`).
        Raises UserError for a VQ-VAE without a trained prior.
        """
        if source not in ("prior", "aggregate"):
            raise UserError(f"source must be 'prior' or 'aggregate', got {source!r}")
        if source == "aggregate":
            if self.model_type != "vae":
                raise UserError("the aggregate posterior is for a VAE; a VQ-VAE samples from its prior")
            if int(n) < 1:
                raise UserError(f"number of samples must be at least 1, got {n}")
            if self.model.aggregate is None:
                from core.training.runs import RunData

                RunData.open(self.enc.run or self.enc.run_dir).attach_aggregate(self.model)
            return np.asarray(self.model.aggregate.sample(int(n), seed, temperature), "float32")
        if not self.can_sample:
            raise UserError("this VQ-VAE's prior is not trained, so it cannot sample; train the prior "
                            "(the Train page does it after the VQ-VAE) — everything else works")
        n = int(n)
        if n < 1:
            raise UserError(f"number of samples must be at least 1, got {n}")
        if not temperature >= 0:
            raise UserError(f"temperature must be ≥ 0, got {temperature}")
        if self.model_type == "vae":
            rng = np.random.default_rng(seed)
            return (rng.standard_normal((n, self.latent_dim)).astype("float32") * np.float32(temperature))
        if self.conditional:
            codes = self.model.sample_codes(n, seed=seed, temperature=temperature,
                                            condition=dict(condition or self.condition))
        else:
            codes = self.model.sample_codes(n, seed=seed, temperature=temperature)
        return self.codes_to_latent(codes)

    def codes_to_latent(self, codes) -> np.ndarray:
        """Code grids ``(n, h, w)`` → their codebook vectors, flattened ``(n, h*w*D)``."""
        vectors = np.asarray(self.model.quantizer.lookup(np.asarray(codes, "int32")), "float32")
        return vectors.reshape(len(codes), -1)

    def decode(self, latents, condition=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Images ``(n, S, S)`` of continuous latents ``(n, dim)``; VQ-VAE: re-quantised first,
        and also returns the codes ``(n, h, w)``.  A conditional VAE decodes with ``condition``
        (default :attr:`condition`)."""
        z = np.asarray(latents, "float32").reshape(-1, self.latent_dim)
        if self.model_type == "vae":
            if self.conditional:
                return self.model.decode(z, condition=condition or self.condition)[..., 0], None
            return self.model.decode(z)[..., 0], None
        z_q, codes = self.model.quantize(z.reshape(-1, *self.grid_shape))
        return self.model.decode(z_q)[..., 0], codes

    def map_points(self, latents) -> np.ndarray:
        """Map-space points of continuous latents (VAE: themselves; VQ: pooled code embeddings)."""
        if self.model_type == "vae":
            return np.asarray(latents, "float32").reshape(len(latents), -1)
        from core.latent.encodings import _pooled

        z_q, _ = self.model.quantize(np.asarray(latents, "float32").reshape(-1, *self.grid_shape))
        return _pooled(z_q)

    def reconstruct_rows(self, rows) -> np.ndarray:
        """Reconstructions ``(n, S, S)`` of real slices (the model's own ``reconstruct``)."""
        if self.conditional:
            return self.model.reconstruct(self.enc.images(rows), condition=self.row_conditions(rows))[..., 0]
        return self.model.reconstruct(self.enc.images(rows))[..., 0]

    # ------------------------------------------------------------------ views
    @staticmethod
    def _start_key(view: ViewState) -> tuple:
        if view.start == "zero":
            return ("zero",)
        if view.start == "slice":
            return ("slice", view.subject, view.slice_index)
        return (view.start, view.subject, view.slice_index, view.seed, view.temperature, view.sample_index)

    def start(self, view: ViewState) -> tuple[np.ndarray, np.ndarray | None]:
        """(continuous start latent ``(dim,)``, real start slice ``(S, S)`` or None)."""
        key = self._start_key(view)
        if key not in self._starts:
            if view.start == "zero":
                z = np.zeros(self.latent_dim, "float32") if self.model_type == "vae" else self.pca.mean.copy()
                real = None
            elif view.start == "slice":
                row = self.enc.row_of(view.subject, view.slice_index)
                z, real = self.latent_of_rows([row])[0], self.enc.images([row])[0]
            else:
                z = self.sample_latents(view.sample_index + 1, view.seed, view.temperature)[view.sample_index]
                real = None
            if len(self._starts) > 64:
                self._starts.clear()
            self._starts[key] = (np.asarray(z, "float32"), real)
        return self._starts[key]

    def moved(self, z, sliders: dict) -> np.ndarray:
        """``z`` moved by every slider value; unknown direction keys raise UserError."""
        z = np.asarray(z, "float32").ravel().copy()
        for key, value in sliders.items():
            if key not in self.directions:
                raise UserError(f"the view uses direction {key!r}, which this run does not have")
            if value:
                z = self.directions[key].move(z, value)
        return z

    def _decoded_start(self, view: ViewState, z0) -> tuple[np.ndarray, np.ndarray | None]:
        """The start latent decoded (image ``(S, S)``, VQ codes or None), once per start point and
        condition: a slider move then decodes one latent, not two."""
        key = (self._start_key(view), None if self.condition is None else tuple(sorted(self.condition.items())))
        if key not in self._decoded:
            if len(self._decoded) > 64:
                self._decoded.clear()
            images, codes = self.decode(np.asarray(z0)[None])
            self._decoded[key] = (images[0], None if codes is None else codes[0])
        return self._decoded[key]

    def start_view(self, view: ViewState) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """What a client-side decoder needs of a view's start point: (start latent ``(dim,)``,
        reference image ``(S, S)`` — the real start slice, else the decoded start — and the VQ
        start codes ``(h, w)`` or None), each as :meth:`render` uses them."""
        z0, real = self.start(view)
        if self.model_type == "vae" and real is not None:
            return z0, real, None
        start_image, start_codes = self._decoded_start(view, z0)
        return z0, real if real is not None else start_image, start_codes

    def render(self, view: ViewState) -> Rendered:
        """Decode a view: start point moved by its sliders, beside its reference image (the real
        start slice, else the decoded start)."""
        z0, real = self.start(view)
        z = self.moved(z0, view.sliders)
        images, codes = self.decode(z[None])
        if self.model_type == "vae" and real is not None:
            return Rendered(images[0], real, True, z)
        start_image, start_codes = self._decoded_start(view, z0)
        reference = real if real is not None else start_image
        if self.model_type == "vae":
            return Rendered(images[0], reference, False, z)
        changed = int((codes[0] != start_codes).sum())
        return Rendered(images[0], reference, real is not None, z, changed, int(codes[0].size))

    def interpolation(self, a, b, steps: int = 8, mode: str = "spherical") -> np.ndarray:
        """Decoded images ``(steps, S, S)`` from latent ``a`` to ``b`` (linear or spherical)."""
        path = interpolate(np.asarray(a).ravel(), np.asarray(b).ravel(), steps, mode)
        return self.decode(path)[0]
