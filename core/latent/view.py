"""The "copy view" string: everything needed to reproduce a Latent explorer view.

``lbview1.<base64url JSON>.<8-hex checksum>``.  The JSON names the run (its name plus the
model file's mtime, see :func:`core.latent.encodings.run_fingerprint`), the start point and
the slider values.  Pasting a string that is malformed, altered, or made on another run (or
on an older model of this run) raises UserError with the reason.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import asdict, dataclass, field

from core.errors import UserError

__all__ = ["ViewState", "parse_view", "START_KINDS", "PREFIX"]

PREFIX = "lbview1"
START_KINDS = ("zero", "sample", "slice")


@dataclass(frozen=True)
class ViewState:
    """A view: ``run`` fingerprint, ``start`` kind ("zero" | "sample" | "slice"), start
    parameters (``subject`` + ``slice_index`` for a slice; ``seed`` + ``temperature`` +
    ``sample_index`` for a sample) and ``sliders`` ``{direction key: value}`` (zeros dropped)."""

    run: str
    start: str = "zero"
    subject: str = ""
    slice_index: int = 0
    seed: int = 0
    temperature: float = 1.0
    sample_index: int = 0
    sliders: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.start not in START_KINDS:
            raise UserError(f"view start must be one of {START_KINDS}, got {self.start!r}")
        clean = {str(k): round(float(v), 4) for k, v in dict(self.sliders).items() if float(v) != 0.0}
        object.__setattr__(self, "sliders", dict(sorted(clean.items())))

    def to_string(self) -> str:
        """The copyable string (stable: the same view gives the same string)."""
        payload = json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{PREFIX}.{body}.{zlib.crc32(payload):08x}"


def parse_view(text: str, run: str | None = None) -> ViewState:
    """The :class:`ViewState` in ``text``; with ``run`` given, refuse a view of another run.

    Raises UserError naming what is wrong (prefix, encoding, checksum, fields, run).
    """
    text = (text or "").strip()
    if not text:
        raise UserError("paste a view string first (it starts with 'lbview1.')")
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise UserError(f"not a latentbrain view string: it must look like '{PREFIX}.<data>.<checksum>'")
    _, body, check = parts
    try:
        payload = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise UserError("the view string is damaged (its data is not valid base64)") from exc
    if f"{zlib.crc32(payload):08x}" != check.lower():
        raise UserError("the view string is damaged or was edited (checksum mismatch); copy it again")
    try:
        fields = json.loads(payload)
        view = ViewState(**fields)
        view = ViewState(view.run, view.start, str(view.subject), int(view.slice_index), int(view.seed),
                         float(view.temperature), int(view.sample_index), dict(view.sliders))
    except UserError:
        raise
    except (ValueError, TypeError) as exc:
        raise UserError(f"the view string has unexpected contents ({exc})") from exc
    if run is not None and view.run != run:
        name, _, _ = view.run.partition("@")
        this, _, _ = run.partition("@")
        if name == this:
            raise UserError(f"this view was made on an older model of run {name!r} (the model was "
                            "retrained since); it cannot be reproduced exactly")
        raise UserError(f"this view belongs to run {name!r}, not to the chosen run {this!r}; "
                        "choose that run first")
    return view
