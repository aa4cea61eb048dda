"""Encode a run's train / validation / test slices once, with each slice's subject metadata.

VAE: posterior means and log-variances ``(N, latent_dim)``.  VQ-VAE: code grids ``(N, h, w)``,
pooled code embeddings ``(N, 4*4*D)`` for maps, and a PCA of the continuous encoder output
``(h*w*D)`` whose scores ``(N, k)`` carry the attribute fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.data.dataset import SPLITS, load_split_images
from core.errors import UserError
from core.latent.directions import PCA, fit_pca
from core.training.runs import META_COLUMNS, DatasetMissing, RunData

__all__ = ["DatasetMissing", "Encodings", "encode_run", "run_dataset", "run_fingerprint", "META_COLUMNS"]

#: Encoder outputs kept in memory for the VQ-VAE PCA (rows); more are sub-sampled.
PCA_SAMPLE = 3000
#: Principal directions kept for a VQ-VAE's encoder output.
VQ_PCA_K = 32


def run_fingerprint(run_dir: str | Path) -> str:
    """``"<run name>@<model mtime ns>"`` (:attr:`core.training.runs.RunData.fingerprint`)."""
    return RunData.open(run_dir).fingerprint


def run_dataset(run_dir: str | Path) -> tuple[Path, dict]:
    """(dataset folder, manifest) of a run (:class:`core.training.runs.RunData`); raises
    :class:`DatasetMissing` when the cached dataset was deleted (its spec comes with the error
    so the page can offer a rebuild)."""
    data = RunData.open(run_dir)
    return data.dataset_dir, data.manifest


def meta_conditions(meta: pd.DataFrame, slice_range) -> np.ndarray:
    """Condition vectors ``(N, 3)`` of the slices in ``meta`` (a conditional VAE encodes each
    slice with its own age, sex and slice position); UserError where age or sex is missing."""
    from core.models.conditions import condition_array

    if meta[["age"]].isna().any().any() or not meta["sex"].str.upper().isin(["F", "M"]).all():
        raise UserError("this conditional VAE needs the age and sex of every slice's subject, and its dataset "
                        "lacks some; rebuild the dataset from a cohort with demographics")
    requests = [{"age": float(a), "sex": str(s), "slice": int(i)}
                for a, s, i in zip(meta["age"], meta["sex"], meta["slice"])]
    return condition_array(requests, len(requests), slice_range)


@dataclass
class Encodings:
    """Latents of every slice of a run's dataset (global row order: train, val, test).

    ``meta``: one row per slice (``META_COLUMNS``); ``points`` ``(N, p)`` float32: the map
    space (VAE means; VQ-VAE pooled code embeddings); ``space`` ``(N, s)`` float32: where
    attribute directions are fitted (VAE means; VQ-VAE PCA scores of the encoder output).
    VAE: ``log_var``.  VQ-VAE: ``codes`` ``(N, h, w)`` and ``pca`` of the flattened encoder output.
    ``run``: the run's :class:`~core.training.runs.RunData` (its split arrays are opened once).
    """

    run_dir: Path
    fingerprint: str
    model_type: str
    dataset_dir: Path
    meta: pd.DataFrame
    points: np.ndarray
    space: np.ndarray
    log_var: np.ndarray | None = None
    codes: np.ndarray | None = None
    pca: PCA | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    run: RunData | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.meta)

    def _split_images(self, split: str) -> np.ndarray:
        if self.run is not None:
            return self.run.images(split)
        return load_split_images(self.dataset_dir, split)

    def images(self, rows) -> np.ndarray:
        """Real slices ``(n, S, S)`` float32 of global ``rows``."""
        rows = np.atleast_1d(np.asarray(rows, int))
        out = []
        for r in rows:
            split, index = self.meta.at[int(r), "split"], int(self.meta.at[int(r), "index"])
            out.append(np.asarray(self._split_images(split)[index], "float32"))
        return np.stack(out) if out else np.zeros((0, 1, 1), "float32")

    def iter_images(self, batch_size: int = 1024):
        """Every real slice in global row order, as ``(n, S, S)`` float32 batches (one split's
        memory-mapped array read a batch at a time, so a large dataset never sits in memory whole).
        Only the rows in :attr:`meta`: encodings :meth:`without_subjects` skip the others."""
        for split in SPLITS:
            index = self.meta.loc[self.meta["split"] == split, "index"].to_numpy(int)
            if not len(index):
                continue
            array = self._split_images(split)
            for start in range(0, len(index), batch_size):
                chunk = index[start : start + batch_size]
                if chunk[-1] - chunk[0] == len(chunk) - 1:  # a run of rows: one slice of the memory map
                    yield np.asarray(array[chunk[0] : chunk[-1] + 1], "float32")
                else:
                    yield np.asarray(array[chunk], "float32")

    def without_subjects(self, subjects) -> "Encodings":
        """These encodings less every slice of ``subjects``, rows numbered again from 0.

        Why: a reader study's real images are test slices of the subjects it reserves, and no
        page may show those while it is open.  The fingerprint names how many rows were left
        out, so caches keyed on it never mix the two sets.  ``self`` when none is present.
        """
        from dataclasses import replace

        keep = ~self.meta["subject"].astype(str).isin({str(s) for s in subjects}).to_numpy()
        if keep.all():
            return self
        if not keep.any():
            raise UserError(f"every slice of run {self.run_dir.name} belongs to a subject an open reader study "
                            "reserves: the explorer shows them again once the study is closed")
        meta = self.meta[keep].reset_index(drop=True)
        meta["row"] = np.arange(len(meta))

        def kept(array):
            return None if array is None else array[keep]

        return replace(self, fingerprint=f"{self.fingerprint}|less{int((~keep).sum())}", meta=meta,
                       points=self.points[keep], space=self.space[keep], log_var=kept(self.log_var),
                       codes=kept(self.codes), extra=dict(self.extra))

    def row_of(self, subject: str, slice_index: int) -> int:
        """Global row of ``subject``'s slice ``slice_index``; UserError when absent."""
        hit = self.meta[(self.meta["subject"] == subject) & (self.meta["slice"] == int(slice_index))]
        if hit.empty:
            raise UserError(f"no slice {slice_index} of subject {subject!r} in this run's dataset")
        return int(hit["row"].iloc[0])


def _pooled(z_q: np.ndarray, cells: int = 4) -> np.ndarray:
    """Average-pool ``(N, h, w, D)`` to ``(N, cells*cells*D)`` (keeps coarse layout)."""
    n, h, w, d = z_q.shape
    c = min(cells, h, w)
    hh, ww = h // c, w // c
    cut = z_q[:, : hh * c, : ww * c]
    return cut.reshape(n, c, hh, c, ww, d).mean(axis=(2, 4)).reshape(n, -1).astype("float32")


def encode_run(run: str | Path | RunData, model=None, progress: Callable[[float, str], None] | None = None,
               batch_size: int = 128, pca_sample: int = PCA_SAMPLE) -> Encodings:
    """Encode every slice of the run's dataset with its model (loaded when not given).

    ``run`` is a run folder or its :class:`~core.training.runs.RunData`.  Raises UserError
    when the run has no model or its dataset is gone (:class:`DatasetMissing`).
    """
    started = time.perf_counter()
    data = RunData.open(run)
    run_dir = data.path
    fingerprint = data.fingerprint
    dataset_dir = data.dataset_dir
    model = model if model is not None else data.load_model()
    meta = data.metadata()
    model_type = "vqvae" if hasattr(model, "code_indices") else "vae"
    say = progress or (lambda f, m: None)
    n = len(meta)
    if n == 0:
        raise UserError(f"the dataset of run {run_dir.name} has no images")
    arrays = {s: data.images(s) for s in SPLITS}
    size = getattr(model, "image_size", None)
    first = next(a for a in arrays.values() if len(a))
    if size is not None and first.shape[1] != size:
        raise UserError(f"run {run_dir.name}: its model takes {size} px images, its dataset has "
                        f"{first.shape[1]} px")

    def chunks():
        done = 0
        for s in SPLITS:
            a = arrays[s]
            for start in range(0, len(a), batch_size):
                batch = np.asarray(a[start : start + batch_size], "float32")
                yield done, batch
                done += len(batch)
                say(0.95 * done / n, f"encoded {done} of {n} slices")

    if model_type == "vae":
        conditions = meta_conditions(meta, model.slice_range) if getattr(model, "conditional", False) else None
        means, log_vars = [], []
        for offset, batch in chunks():
            c = None if conditions is None else conditions[offset : offset + len(batch)]
            m, lv = model.encode(batch, batch_size=batch_size, condition=c)
            means.append(m)
            log_vars.append(lv)
        mean = np.concatenate(means)
        enc = Encodings(run_dir, fingerprint, "vae", dataset_dir, meta, mean, mean,
                        log_var=np.concatenate(log_vars), run=data)
    else:
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, pca_sample), replace=False))
        in_sample = np.zeros(n, bool)
        in_sample[sample] = True
        kept, codes, pooled = [], [], []
        for offset, batch in chunks():
            z_e = model.encode(batch, batch_size=batch_size)
            z_q, idx = model.quantize(z_e)
            codes.append(idx.astype("int16"))
            pooled.append(_pooled(z_q))
            mask = in_sample[offset : offset + len(batch)]
            kept.append(z_e[mask].reshape(int(mask.sum()), -1))
        kept = np.concatenate(kept)
        pca = fit_pca(kept, VQ_PCA_K)
        if n <= pca_sample:
            scores = pca.transform(kept)
        else:  # a second pass for the rows outside the sample, without keeping their outputs
            scores = np.zeros((n, len(pca.components)), "float32")
            scores[sample] = pca.transform(kept)
            for offset, batch in chunks():
                mask = ~in_sample[offset : offset + len(batch)]
                if mask.any():
                    z_e = model.encode(batch[mask], batch_size=batch_size)
                    scores[offset + np.flatnonzero(mask)] = pca.transform(z_e)
        enc = Encodings(run_dir, fingerprint, "vqvae", dataset_dir, meta, np.concatenate(pooled), scores,
                        codes=np.concatenate(codes), pca=pca, run=data)
    enc.seconds = time.perf_counter() - started
    say(1.0, f"encoded {n} slices in {enc.seconds:.1f} s")
    return enc
