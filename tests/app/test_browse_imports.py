"""The Browse path (app.py, sidebar, Browse page) never imports TensorFlow or Keras.

They take seconds to import; the first picture of a cold start must not wait for them.
Checked in a fresh interpreter, since other tests in this process import them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import smooth_head, write_nifti

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=90)
at.session_state["source_kind"] = "folder"
at.session_state["source_path"] = sys.argv[2]
at.session_state[sys.argv[3]] = sys.argv[4] == "client"  # the browser's viewer, or the server's three images
at.run()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "torch", "jax"))
print(json.dumps({"exception": [str(e.value) for e in at.exception], "images": len(at.get("image")),
                  "heavy": heavy[:5]}))
"""


@pytest.mark.parametrize("path", ["client", "server"])
def test_browse_does_not_import_tensorflow(tmp_path, path):
    from ui import state

    data = tmp_path / "data"
    data.mkdir()
    write_nifti(data / "IXI901-Guys-0001-T1.nii.gz", smooth_head())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
           "LATENTBRAIN_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(REPO / "app.py"), str(data), state.BROWSE_CLIENT, path],
                          env=env, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["exception"], result
    if path == "server":  # the browser's viewer draws its planes on canvases AppTest cannot see
        assert result["images"] >= 3, result  # the page did draw its three planes
    assert result["heavy"] == [], f"imported on the Browse path: {result['heavy']}"
