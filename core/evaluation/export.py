"""Exports of a run: PNG grids, a NIfTI of stacked synthetic slices, an offline HTML report.

The NIfTI stacks independent 2-D samples along the third axis: it is a convenient
container for viewers (ITK-SNAP, FSLeyes), not a contiguous 3-D volume.  Its affine puts
the slices in RAS+ as our slices are displayed (radiological: the image's left column is
the subject's right; the top row is anterior for axial slices), with square pixels of
``fov_mm / size`` mm, and the header description names the run, epoch and seed.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from core.errors import UserError

__all__ = ["samples_grid_png", "nifti_bytes", "write_nifti", "html_report", "slice_affine"]


def samples_grid_png(images, ncols: int = 8, upscale: int = 2) -> bytes:
    """PNG bytes of a grid of images ``(N, H, W[, 1])`` in [0, 1] (nearest upscaling)."""
    from core.viz.images import grid_png

    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise UserError(f"a grid needs (N, H, W) images, got shape {images.shape}")
    return grid_png(images, ncols=ncols, upscale=upscale)


def slice_affine(size: int, fov_mm: float = 240.0, slice_mm: float = 1.0) -> np.ndarray:
    """4x4 voxel-to-RAS affine for a ``(size, size, n)`` stack of displayed axial slices, centred on 0.

    Voxel ``(i, j, k)`` is column ``i`` and row ``size - 1 - j`` of slice ``k``: i runs from
    the subject's right to left (x decreasing), j from posterior to anterior (y increasing).
    """
    d = float(fov_mm) / int(size)
    affine = np.diag([-d, d, float(slice_mm), 1.0])
    affine[:3, 3] = [d * (size - 1) / 2, -d * (size - 1) / 2, 0.0]
    return affine


def _nifti_image(images, description: str, fov_mm: float):
    import nibabel as nib

    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1] != x.shape[2] or len(x) == 0:
        raise UserError(f"a NIfTI stack needs square (N, H, W) images, got shape {x.shape}")
    # (N, rows, cols) -> (cols, rows flipped so j grows anteriorly, N)
    data = np.ascontiguousarray(x[:, ::-1, :].transpose(2, 1, 0))
    img = nib.Nifti1Image(data, slice_affine(x.shape[1], fov_mm))
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    return img


def nifti_bytes(images, description: str, fov_mm: float = 240.0) -> bytes:
    """``.nii.gz`` bytes of the stacked images (see the module docstring for the affine)."""
    import gzip

    img = _nifti_image(images, description, fov_mm)
    return gzip.compress(img.to_bytes(), compresslevel=6)


def write_nifti(path: str | Path, images, description: str, fov_mm: float = 240.0) -> Path:
    """Write :func:`nifti_bytes` to ``path`` (``.nii.gz``) atomically."""
    from core.atomic import write_bytes_atomic

    path = Path(path)
    if not path.name.endswith(".nii.gz"):
        raise UserError(f"the NIfTI export must end in .nii.gz, got {path.name}")
    return write_bytes_atomic(path, nifti_bytes(images, description, fov_mm))


def _img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(value) -> str:
    if isinstance(value, dict):
        value = value.get("mean", value.get("value", value.get("accuracy")))
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def html_report(run_dir: str | Path, evaluation: dict | None = None, samples=None,
                study_results: list[dict] | None = None) -> str:
    """A self-contained HTML page (opens offline): curves, metrics, sample grid, reader-study results."""
    from core.training.runs import RunData
    from core.viz.curves import loss_figure

    run_dir = Path(run_dir)
    data = RunData.open(run_dir)
    config, status = data.config, data.status
    metrics = data.folder.read_metrics()
    parts = [f"<h1>latentbrain run {html.escape(run_dir.name)}</h1>",
             f"<p>{html.escape(str(config.get('model_type')))} · preset {html.escape(str(config.get('preset')))}"
             f" · state {html.escape(str(status.get('state')))} · epoch {html.escape(str(status.get('epoch')))}"
             f" · dataset {html.escape(str((config.get('dataset') or {}).get('hash')))}</p>"]
    figure = loss_figure(metrics, config.get("model_type", "vae"), log_y=True)
    parts.append("<h2>Training curves</h2>" + figure.to_html(full_html=False, include_plotlyjs=True))
    parts.append("<h2>Measured quality</h2>")
    if evaluation:
        from core.evaluation.summary import judge_rows, verdict_line

        parts.append(f"<p><b>{html.escape(verdict_line(evaluation))}</b></p>")
        rows = "".join(f"<tr><td>{html.escape(r['figure'])}</td><td>{_fmt(r['value'])}</td>"
                       f"<td>{html.escape(r['real'])}</td><td>{html.escape(r['verdict'])}</td>"
                       f"<td>{html.escape(r['detail'])}</td></tr>" for r in judge_rows(evaluation))
        parts.append("<table><tr><th>figure</th><th>value</th><th>real vs real</th><th></th><th>detail</th></tr>"
                     f"{rows}</table>")
        parts.append(f"<details><summary>evaluation.json</summary><pre>{html.escape(json.dumps(evaluation, indent=1))}</pre></details>")
    else:
        parts.append("<p>Not evaluated yet: run <code>python -m core evaluate RUN_DIR</code>.</p>")
    if samples is not None and len(samples):
        parts.append("<h2>Samples</h2>" + _img_tag(samples_grid_png(samples), "grid of synthetic samples"))
    for result in study_results or []:
        study, pooled = result["study"], result["pooled"]
        parts.append(f"<h2>Reader study {html.escape(study['study_id'])} ({html.escape(study['mode'])})</h2>")
        parts.append(f"<p>{html.escape(pooled['verdict'])}</p>")
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{s['n']}</td><td>{_fmt(s['accuracy'])}</td>"
            f"<td>{_fmt(s['accuracy_ci95'][0])}–{_fmt(s['accuracy_ci95'][1])}</td><td>{_fmt(s['p_value'])}</td></tr>"
            for name, s in [("pooled", pooled), *result["per_reviewer"].items()])
        parts.append("<table><tr><th>reader</th><th>answers</th><th>accuracy</th><th>95 % CI</th>"
                     f"<th>p (vs 50 %)</th></tr>{rows}</table>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
             "img{image-rendering:pixelated;max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>latentbrain {html.escape(run_dir.name)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
