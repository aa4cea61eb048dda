"""tests/conftest.py: in CI a test skipped for want of ../shared or Chromium fails; other skips stay skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

CASES = '''
import pytest
from helpers import skip_missing


@pytest.fixture(scope="session")
def shared_data():
    skip_missing("../shared/data/nothing is not present")


def test_needs_shared(shared_data):
    pass


def test_needs_shared_too(shared_data):  # the session fixture's cached skip, raised again
    pass


def test_needs_chromium():
    skip_missing("/usr/bin/chromium is not installed")


def test_ordinary_skip():
    pytest.skip("not on this platform")


def test_passes():
    pass
'''


def _run(tmp_path, ci: str | None) -> str:
    folder = tmp_path / f"ci_{ci}"
    folder.mkdir()
    for name in ("conftest.py", "helpers.py"):  # the real hook and helper, not copies of their logic
        shutil.copy(TESTS / name, folder / name)
    (folder / "test_cases.py").write_text(CASES)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(TESTS.parent)])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-o",
                           "addopts=", "test_cases.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)
    return f"exit {done.returncode}\n" + done.stdout + done.stderr


def test_missing_shared_data_or_chromium_fails_in_ci_and_skips_elsewhere(tmp_path):
    local = _run(tmp_path, None)
    assert local.startswith("exit 0") and "1 passed, 4 skipped" in local, local
    ci = _run(tmp_path, "true")
    # A fixture's skip becomes an error at setup, a test's own a failure; either fails the run.
    assert ci.startswith("exit 1") and "1 failed, 1 passed, 1 skipped, 2 errors" in ci, ci
    assert ci.count("CI=true, and this test needs what is missing") >= 3, ci
    assert "../shared/data/nothing is not present" in ci and "/usr/bin/chromium is not installed" in ci
    assert "SKIPPED" in ci and "not on this platform" in ci
