"""The network guard the end-to-end tests rely on really blocks the network (and only that)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GUARD = Path(__file__).resolve().parents[1] / "e2e" / "netguard"

CHILD = r"""
import socket
results = {}
for name, host in [("ip", "93.184.216.34"), ("dns", "example.org")]:
    try:
        socket.create_connection((host, 80), timeout=2)
        results[name] = "connected"
    except OSError as exc:
        results[name] = "blocked" if "blocked by the test harness" in str(exc) else f"other: {exc}"
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=2)
results["loopback"] = "connected"
print(results)
"""


def test_guard_refuses_remote_hosts_and_allows_loopback(tmp_path):
    log = tmp_path / "net.log"
    env = {**os.environ, "PYTHONPATH": str(GUARD), "LATENTBRAIN_NETGUARD_LOG": str(log)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'ip': 'blocked', 'dns': 'blocked', 'loopback': 'connected'}"
    text = log.read_text()
    assert "93.184.216.34" in text and "example.org" in text
