"""Cold start: the Browse page (the app's first picture) never imports TensorFlow or Keras.

Run in a fresh interpreter: other tests of this session may have imported them already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=120)
at.session_state["source_kind"] = "folder"
at.session_state["source_path"] = sys.argv[1]
at.run()
at.run()  # the second run sends the volume to the browser viewer
heavy = ("tensorflow", "keras", "torch", "sklearn", "umap", "openTSNE", "onnxruntime", "tf2onnx")
print(json.dumps({"exceptions": [e.value for e in at.exception], "imported": [m for m in heavy if m in sys.modules],
                  "viewer": any("volume_viewer" in getattr(e.proto, "component_name", "")
                                for e in at.get("component_instance"))}))
"""


def test_browse_runs_without_tensorflow(ixi_sample_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ixi_sample_dir)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == [] and result["viewer"]
    assert result["imported"] == [], f"Browse imported {result['imported']}: the first picture waits for them"
