"""Browse's planes drawn in the browser: slices move with no server round trip, and every plane the
browser draws holds the server's pixels (core.viz), on real heads stored in two orientations."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from e2e.support import REPO, screenshot, serve, wait_idle
from e2e.viewer_support import crosshair, plane_pixels, slider_moves, viewer_frame, wait_shape, wait_volume

pytestmark = pytest.mark.e2e

VIEWS = {"axial": 2, "coronal": 1, "sagittal": 0}


@pytest.fixture(scope="module")
def heads(tmp_path_factory, ixi_sample_dir, real_dev_dir):
    """A folder with a real IXI head (stored P/S/R) and a real_dev head (stored L/P/S), as copies."""
    folder = tmp_path_factory.mktemp("heads")
    shutil.copy(ixi_sample_dir / "IXI012-HH-1211_T1.nii.gz", folder)
    shutil.copy(real_dev_dir / "Subj1_T1.nii.gz", folder)
    return folder


@pytest.fixture(scope="module")
def heads_url(heads, tmp_path_factory):
    import os

    base = tmp_path_factory.mktemp("viewer_server")
    env = {**os.environ, "LATENTBRAIN_DATA": str(heads), "LATENTBRAIN_CACHE": str(base / "cache"),
           "LATENTBRAIN_RUNS": str(base / "runs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with serve(REPO, env, log=base / "server.log") as url:
        yield url


def server_plane(volume, axis: str, index: int, radiological: bool = True) -> np.ndarray:
    """What the server draws for this plane before scaling: core.viz's window of core.data's plane."""
    from core.data.slices import plane
    from core.viz.images import apply_window, auto_window

    level, width = auto_window(volume.data)
    return apply_window(plane(volume.data, axis, index, radiological), level, width)


def volumes(folder):
    from core.data.volumes import load_volume, scan_source

    return {e.subject_id: load_volume(e) for e in scan_source(folder)}


def choose_subject(page, subject: str) -> None:
    page.get_by_label("Subject", exact=False).first.click()
    page.get_by_role("option", name=subject, exact=True).first.click()
    wait_idle(page)


def assert_planes_match(frame, volume, radiological=True):
    ijk = crosshair(frame)
    for axis, a in VIEWS.items():
        expected = server_plane(volume, axis, ijk[a], radiological)
        drawn = plane_pixels(frame, axis)
        assert drawn.shape == expected.shape, (axis, drawn.shape, expected.shape)
        np.testing.assert_array_equal(drawn, expected, err_msg=f"{axis} slice {ijk[a]}")


def check_range_button(page, frame) -> None:
    """"Range starts here" sets the page's range picker (axial) from the viewer's axial slice."""
    k = crosshair(frame)[2]
    readout = page.get_by_text(re.compile(r"slices per volume · index")).first.inner_text()
    start, last = map(int, re.search(r"index (\d+)–(\d+)", readout).groups())
    assert frame.evaluate("() => window.volumeViewer.meta.range") == ["axial", start, last + 1]
    frame.get_by_role("button", name="Range starts here").click()
    wait_idle(page)
    stop = last + 1 if last + 1 > k else k + 1
    page.get_by_text(re.compile(rf"{stop - k} slices per volume · index {k}–{stop - 1}")).first.wait_for()
    frame.wait_for_function("k => window.volumeViewer.meta.range[1] === k", arg=k)


def test_slices_move_in_the_browser_and_match_the_server(heads, heads_url, page):
    sent, requests = [], []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(heads_url)
    wait_idle(page)
    heads_by_id = volumes(heads)
    assert len(heads_by_id) == 2
    for subject, volume in heads_by_id.items():
        choose_subject(page, subject)
        frame = viewer_frame(page)
        wait_shape(frame, "axial", volume.shape[1], volume.shape[0])
        wait_volume(frame, volume.shape)
        wait_idle(page)
        assert crosshair(frame) == tuple(s // 2 for s in volume.shape)
        assert_planes_match(frame, volume)
        if subject == next(iter(heads_by_id)):
            check_range_button(page, frame)

    # The last subject: 30 moves of the axial slider, none of which reaches the server.
    first = plane_pixels(frame, "axial")
    start = crosshair(frame)[2]
    sent.clear(), requests.clear()
    times = slider_moves(frame, "axial", 30, "ArrowLeft")
    assert len(times) == 30
    page.wait_for_timeout(500)  # anything a move would have sent has been sent by now
    assert not sent, f"{len(sent)} websocket messages to the server during the slider moves"
    assert not requests, requests
    assert crosshair(frame)[2] == start - 30
    assert not np.array_equal(plane_pixels(frame, "axial"), first)
    assert_planes_match(frame, volume)
    ijk = crosshair(frame)
    assert frame.locator(".readout").inner_text().startswith(f"Voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})")
    screenshot(page, "browse_viewer.png")

    # A click on the coronal view is a meaningful event: it reaches the page (the readout below
    # the views gives that voxel's intensity), and the browser said so on the websocket.
    box = frame.locator("canvas.plane[data-axis=coronal]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    wait_idle(page)
    before, ijk = ijk, crosshair(frame)
    assert ijk[1] == before[1] and (ijk[0], ijk[2]) != (before[0], before[2])
    assert sent, "the click did not reach the server"
    page.get_by_text(re.compile(re.escape(f"Voxel ({ijk[0]}, {ijk[1]}, {ijk[2]}) (last click)"))).wait_for()
    intensity = volume.data[ijk]
    page.get_by_text(re.compile(rf"intensity {intensity:.1f}")).first.wait_for()
    assert_planes_match(frame, volume)

    # Neurological convention: the page tells the viewer, the planes flip as the server's do.
    page.get_by_text("Radiological (R on left)").first.click()
    wait_idle(page)
    frame.wait_for_function("() => window.volumeViewer.meta.radiological === false")
    assert_planes_match(frame, volume, radiological=False)
