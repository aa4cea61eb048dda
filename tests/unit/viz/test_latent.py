"""core.viz.latent: hover thumbnails as PNG data URLs and the Vega-Lite map chart's spec."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.viz.latent import MAP_SELECTION, THUMBNAIL_PX, UNKNOWN_COLOUR, map_chart, thumbnail, thumbnail_urls


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"row": np.arange(n), "split": ["train"] * (n - 1) + ["test"], "index": np.arange(n),
                         "subject": [f"S{i // 3:03d}" for i in range(n)], "slice": 160 + np.arange(n) % 3,
                         "age": [np.nan] + [30.0 + i for i in range(1, n)],
                         "sex": [""] + ["F", "M"] * ((n - 1) // 2) + ["F"] * ((n - 1) % 2), "site": "HH"})


def _decode_url(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


def test_thumbnail_box_averages_to_32_px():
    image = np.zeros((64, 64), "float32")
    image[:2, :2] = 1.0  # one 2x2 block → one white thumbnail pixel
    image[2:4, 2:4] = 0.5
    small = thumbnail(image)
    assert small.shape == (32, 32) and small.dtype == np.uint8
    assert small[0, 0] == 255 and small[1, 1] == 128 and small[0, 1] == 0 and small.sum() == 255 + 128
    # sizes that do not divide: resized, same range
    odd = thumbnail(np.full((50, 50), 0.5, "float32"))
    assert odd.shape == (32, 32) and abs(int(odd.mean()) - 128) <= 1
    with pytest.raises(ValueError, match="shape"):
        thumbnail(np.zeros((2, 8, 8)))


def test_thumbnail_urls_decode_back_to_the_thumbnails():
    rng = np.random.default_rng(0)
    images = rng.random((3, 128, 128)).astype("float32")
    urls = thumbnail_urls(images)
    assert len(urls) == 3
    for url, image in zip(urls, images):
        np.testing.assert_array_equal(_decode_url(url), thumbnail(image))
    assert _decode_url(urls[0]).shape == (THUMBNAIL_PX, THUMBNAIL_PX)


def _layer_and_data(chart):
    spec = chart.to_dict()
    layer = spec["layer"][0]
    name = (layer.get("data") or spec["data"])["name"]  # one layer: Altair hoists its data to the top
    return spec, layer, pd.DataFrame(spec["datasets"][name])


def test_map_chart_hover_shows_the_thumbnail_and_a_click_selects_the_global_row():
    n = 7
    table = _table(n)
    urls = thumbnail_urls(np.random.default_rng(1).random((n, 64, 64)))
    coords = np.arange(2 * n, dtype="float32").reshape(n, 2)
    spec, layer, data = _layer_and_data(map_chart(table, coords, "age", urls, title="PCA"))
    tooltip = [t["field"] for t in layer["encoding"]["tooltip"]]
    # vega-tooltip draws a field named "image" as a picture: it must carry the data URLs, row by row
    assert tooltip[0] == "image" and {"subject", "age", "sex", "site", "slice", "split", "row"} <= set(tooltip)
    assert data["image"].tolist() == urls and data["row"].tolist() == list(range(n))
    np.testing.assert_array_equal(data[["x", "y"]].to_numpy(), coords)
    pick = next(p for p in spec["params"] if p["name"] == MAP_SELECTION)
    assert pick["select"]["type"] == "point" and pick["select"]["fields"] == ["row"]
    assert pick["select"]["on"] == "click"
    # age: a continuous scale, with unknown ages drawn grey instead of dropped
    colour = layer["encoding"]["color"]
    assert colour["condition"]["field"] == "age_colour" and colour["condition"]["type"] == "quantitative"
    assert colour["condition"]["test"] == "datum.age_known" and colour["value"] == UNKNOWN_COLOUR
    # Vega-Lite drops marks whose continuous colour field is invalid: the coloured field never is
    assert data["age_colour"].notna().all() and data["age_known"].tolist() == [False] + [True] * (n - 1)
    assert data["age_colour"].iloc[1:].tolist() == data["age"].iloc[1:].tolist()
    assert data["sex"].iloc[0] == "unknown"
    assert spec["usermeta"]["embedOptions"]["renderer"] == "canvas" and spec["config"]["mark"]["aria"] is False


@pytest.mark.parametrize("colour_by, values", [("sex", ["F", "M", "unknown"]), ("split", ["train", "test"]),
                                               ("slice", ["160", "161", "162"])])
def test_map_chart_categories_have_one_colour_each(colour_by, values):
    table = _table(7)
    _, layer, data = _layer_and_data(map_chart(table, np.zeros((7, 2)), colour_by))
    colour = layer["encoding"]["color"]
    assert colour["field"] == "colour" and colour["scale"]["domain"] == values
    assert len(set(colour["scale"]["range"])) == len(values)
    assert "image" not in data  # no thumbnails given: no image field, no picture in the tooltip
    assert [t["field"] for t in layer["encoding"]["tooltip"]][0] == "subject"


def test_map_chart_with_no_known_age_draws_every_point_grey():
    """IXI volumes without a demographics row: the age map must still show every point."""
    table = _table(5).assign(age=np.nan)
    _, layer, data = _layer_and_data(map_chart(table, np.zeros((5, 2)), "age"))
    assert layer["encoding"]["color"] == {"value": UNKNOWN_COLOUR} and len(data) == 5


def test_map_chart_synthetic_layer_and_bad_lengths():
    table = _table(5)
    spec = map_chart(table, np.zeros((5, 2)), "site", synthetic=np.ones((4, 2))).to_dict()
    assert len(spec["layer"]) == 2
    samples = pd.DataFrame(spec["datasets"][spec["layer"][1]["data"]["name"]])
    assert len(samples) == 4 and spec["layer"][1]["mark"]["shape"] == "cross"
    with pytest.raises(ValueError, match="4 map points for 5 slices"):
        map_chart(table, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="2 thumbnails for 5 slices"):
        map_chart(table, np.zeros((5, 2)), thumbnails=["a", "b"])
