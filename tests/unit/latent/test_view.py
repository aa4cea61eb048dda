"""The "copy view" string round-trips and refuses damaged or foreign strings."""

import pytest

from core.errors import UserError
from core.latent.view import ViewState, parse_view

RUN = "vae-demo@1795657853429289423"


def test_round_trip_of_every_start_kind():
    views = [
        ViewState(RUN),
        ViewState(RUN, "slice", "IXI002-Guys-0828-T1", 172, sliders={"pc1": 1.5, "age": -20, "unit3": 0}),
        ViewState(RUN, "sample", seed=7, temperature=0.8, sample_index=3, sliders={"sex:M": 2.25}),
    ]
    for view in views:
        text = view.to_string()
        assert text.startswith("lbview1.")
        assert parse_view(text, RUN) == view
        assert parse_view(text) == view
    assert "unit3" not in views[1].sliders  # zeros are dropped: equal views, equal strings


def test_same_view_same_string():
    assert ViewState(RUN, sliders={"b": 1, "a": 2}).to_string() == ViewState(RUN, sliders={"a": 2, "b": 1}).to_string()


@pytest.mark.parametrize("text, words", [
    ("", "paste"),
    ("hello", "not a latentbrain view"),
    ("lbview1.abc", "not a latentbrain view"),
    ("lbview2.abc.00000000", "not a latentbrain view"),
    ("lbview1.%%%.00000000", "damaged"),
    ("lbview1.e30.00000000", "checksum"),
])
def test_malformed_strings_are_refused_with_a_reason(text, words):
    with pytest.raises(UserError, match=words):
        parse_view(text, RUN)


def test_edited_string_fails_its_checksum():
    text = ViewState(RUN, sliders={"pc1": 1.0}).to_string()
    prefix, body, check = text.split(".")
    tampered = f"{prefix}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{check}"
    with pytest.raises(UserError, match="checksum|damaged"):
        parse_view(tampered, RUN)


def test_unexpected_fields_are_refused():
    import base64
    import json
    import zlib

    payload = json.dumps({"run": RUN, "colour": "red"}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(UserError, match="unexpected contents"):
        parse_view(f"lbview1.{body}.{zlib.crc32(payload):08x}", RUN)
    payload = json.dumps({"run": RUN, "start": "moon"}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(UserError, match="start"):
        parse_view(f"lbview1.{body}.{zlib.crc32(payload):08x}", RUN)


def test_view_of_another_run_or_older_model_is_refused():
    text = ViewState(RUN, sliders={"pc1": 1.0}).to_string()
    with pytest.raises(UserError, match="belongs to run 'vae-demo'"):
        parse_view(text, "vq-demo@1")
    with pytest.raises(UserError, match="older model"):
        parse_view(text, "vae-demo@2")
