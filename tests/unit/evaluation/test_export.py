"""Exports: PNG grid, NIfTI stack (affine, orientation, description), offline HTML report."""

import gzip

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.export import html_report, nifti_bytes, samples_grid_png, slice_affine, write_nifti


def test_grid_png():
    png = samples_grid_png(np.random.default_rng(0).random((5, 8, 8)), ncols=3, upscale=2)
    assert png[:4] == b"\x89PNG"
    with pytest.raises(UserError):
        samples_grid_png(np.zeros((0, 8, 8)))


def test_nifti_stack_orientation_affine_and_description(tmp_path):
    import nibabel as nib

    images = np.zeros((3, 16, 16), np.float32)
    images[1, 0, 0] = 1.0  # top-left pixel of slice 1: subject's right, anterior
    path = write_nifti(tmp_path / "s.nii.gz", images, "latentbrain vae-demo epoch 25 seed 0")
    img = nib.load(str(path))
    assert img.shape == (16, 16, 3)
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")  # i runs right→left, j posterior→anterior
    assert img.header["descrip"].tobytes().rstrip(b"\x00").decode() == "latentbrain vae-demo epoch 25 seed 0"
    data = np.asarray(img.dataobj)
    i, j, k = np.argwhere(data == 1.0)[0]
    x, y, _ = (img.affine @ np.array([i, j, k, 1]))[:3]
    assert x > 0 and y > 0  # right (+x) and anterior (+y) in RAS
    np.testing.assert_allclose(np.diag(slice_affine(16, 240.0))[:3], [-15, 15, 1])
    assert len(gzip.decompress(nifti_bytes(images, "x"))) > 348  # a NIfTI-1 header and data
    with pytest.raises(UserError, match=".nii.gz"):
        write_nifti(tmp_path / "s.nii", images, "x")


def test_html_report_is_self_contained(trained_vae):
    from core.evaluation.run import evaluate_run

    evaluation = evaluate_run(trained_vae, n_samples=8, write=False, c2st_options={"max_folds": 2, "max_epochs": 10})
    page = html_report(trained_vae, evaluation, np.random.default_rng(0).random((4, 32, 32)), [])
    assert page.startswith("<!doctype html>") and "Measured quality" in page
    assert "data:image/png;base64," in page and "plotly" in page.lower()
    import re

    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", page)  # plotly.js inline: opens offline
    assert not re.search(r"<(img|link)[^>]*\b(src|href)=[\"']?https?:", page)
    assert "FD (slice-position net)" in page
