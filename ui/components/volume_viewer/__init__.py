"""Browse's three planes drawn in the browser: a custom Streamlit component (no Node at run time).

``volume_viewer(...)`` gets one subject's volume once, as 8-bit bytes (:func:`core.viz.volume.volume_payload`),
and cuts, windows and draws its axial, coronal and sagittal planes in the page, with the crosshair,
the slice-range lines and the edge labels: moving a slice (its slider, the mouse wheel, a drag on a
view) and changing the display window (right- or shift-drag, double-click resets) never reach the
server.  The component sends a value only on:

- ``{"event": "voxel", "voxel": [i, j, k], "seq": n}``: a click (or the end of a drag) on a view;
- ``{"event": "range", "range": [start, stop], "seq": n}``: *Range starts here* / *Range ends here*;
- ``{"event": "unsupported", "message": ...}``: the browser could not fetch or unpack the volume;
- ``{"event": "volume", "token": ...}``: after a render with planes only, once: send the volume.

The volume travels as a media file (one HTTP GET per subject, cached by the browser and kept by the
component; a page rerun sends only its URL) when a Streamlit runtime serves media, else inline.

``build/`` holds the built assets and ships in the repository; ``scripts/build_components.sh``
rebuilds it from ``frontend/`` with npm.
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

__all__ = ["volume_viewer", "media_url", "BUILD_DIR", "built"]

BUILD_DIR = Path(__file__).parent / "build"
_component = components.declare_component("volume_viewer", path=str(BUILD_DIR))


def built() -> bool:
    """Whether the built assets are present (the page draws on the server without them)."""
    return all((BUILD_DIR / f).is_file() for f in ("index.html", "viewer.js", "viewer.css"))


def media_url(payload: bytes, coordinates: str) -> str | None:
    """A URL under which Streamlit's media server serves ``payload`` to this session, or None when
    there is no runtime that serves media.  Registered again on every run (the same bytes give the
    same URL), so the file lives as long as the page shows it."""
    try:
        from streamlit import runtime

        if not runtime.exists():
            return None
        return runtime.get_instance().media_file_mgr.add(payload, "application/octet-stream", coordinates)
    except Exception:  # noqa: BLE001 — no media server: the bytes go inline instead
        return None


def volume_viewer(*, payload: bytes | None, token: str, meta: dict, key: str, preview: dict | None = None,
                  on_change=None):
    """Draw the three planes; returns the last value the component sent (or None).

    Args:
        payload: :func:`core.viz.volume.volume_payload` bytes of the volume shown, or None: then
            the viewer draws ``preview`` and sends ``{"event": "volume", "token": token}`` to ask
            for the volume (a subject's first render does not wait for the volume to be made).
        token: identifies ``payload`` (e.g. file identity + window): the inline fallback sends
            the bytes under it.
        meta: :func:`core.viz.volume.viewer_meta`: shape, voxel sizes, affine, convention, the
            crosshair (applied when it changes), the range lines and the window table.
        key: the widget key (its value is the last event).  on_change: called when an event arrives.
        preview: ``{axis: (rows, cols) uint8}`` planes at the crosshair
            (:func:`core.viz.volume.preview_planes`), drawn until the volume is here: pass them
            with a subject's first render (a rerun need not send them again).
    """
    extra = {f"preview_{axis}": bytes(image.tobytes()) for axis, image in (preview or {}).items()}
    if payload is None:  # planes only: the viewer draws them and asks for the volume
        return _component(token=token, meta=meta, key=key, default=None, on_change=on_change, **extra)
    url = media_url(payload, f"volume_viewer.{key}")
    if url is not None:
        return _component(url=url, token=token, meta=meta, key=key, default=None, on_change=on_change, **extra)
    return _component(data=payload, token=token, meta=meta, key=key, default=None, on_change=on_change, **extra)
