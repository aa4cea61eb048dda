"""The install: what the code imports is declared, test-only packages live in requirements-dev.txt,
Keras is new enough for safe_mode to hold, and core pins the Keras backend."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL = {"core", "ui", "pages", "helpers", "e2e", "bench", "conftest", "support",
         # benchmark scripts import each other by name (bench/ is on their sys.path)
         *(path.stem for path in (REPO / "bench").glob("*.py"))}
TEST_ONLY = {"pytest", "pytest-timeout", "hypothesis", "playwright"}


def _requirements(name: str) -> dict[str, str]:
    """{normalised distribution name: specifier} of a requirements file, following ``-r``."""
    found = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found.update(_requirements(line[3:].strip()))
        elif line:
            dist, spec = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", line).groups()
            found[_norm(dist.split("[")[0])] = spec
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _tracked(*roots: str) -> list[Path]:
    """The Python files under ``roots`` that git tracks (what a clean clone has); every one of
    them outside a git checkout (an unpacked archive)."""
    try:
        out = subprocess.run(["git", "ls-files", "--", *roots], cwd=REPO, capture_output=True, text=True,
                             check=True)
        return [REPO / p for p in out.stdout.split() if p.endswith(".py")]
    except (OSError, subprocess.CalledProcessError):
        return [p for root in roots for p in ([REPO / root] if root.endswith(".py") else (REPO / root).rglob("*.py"))]


def _imports(paths) -> set[str]:
    """Top-level modules imported, except imports guarded by ``except ImportError`` (optional)."""
    names = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        optional = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                    for h in node.handlers):
                optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in LOCAL}


def _undeclared(modules: set[str], declared: dict[str, str]) -> list[str]:
    dists = packages_distributions()
    missing = []
    for module in sorted(modules):
        names = {_norm(d) for d in dists.get(module, [])}
        if not names & set(declared):
            missing.append(f"{module} (from {sorted(names) or 'no installed distribution'})")
    return missing


def test_the_app_declares_what_it_imports():
    declared = _requirements("requirements.txt")
    app = _imports(_tracked("core", "ui", "pages", "app.py"))
    assert {"streamlit", "keras", "altair"} <= app
    assert _undeclared(app, declared) == [], "declare these in requirements.txt (or import them optionally)"


def test_tests_and_benchmarks_declare_what_they_import_in_requirements_dev():
    declared = _requirements("requirements-dev.txt")
    assert set(_requirements("requirements.txt")) < set(declared)  # -r requirements.txt
    assert _undeclared(_imports(_tracked("tests", "bench")), declared) == [], "declare these in requirements-dev.txt"


def test_test_only_packages_are_not_app_requirements():
    app, dev = _requirements("requirements.txt"), _requirements("requirements-dev.txt")
    assert not TEST_ONLY & set(app) and TEST_ONLY <= set(dev)
    assert "openpyxl" in app


def test_keras_is_new_enough_for_safe_mode():
    spec = _requirements("requirements.txt")["keras"]
    floor = tuple(int(x) for x in re.match(r">=\s*([\d.]+)", spec).group(1).split("."))
    assert floor >= (3, 11, 3), spec
    from importlib.metadata import version

    installed = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", version("keras")).groups())
    assert installed >= floor


def test_core_pins_the_tensorflow_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", "import os, core; print(os.environ['KERAS_BACKEND'])"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == "tensorflow", out.stderr
    assert 'env["KERAS_BACKEND"] = "tensorflow"' in (REPO / "core" / "training" / "jobs.py").read_text()


def test_readme_and_ci_install_the_dev_requirements():
    readme = (REPO / "README.md").read_text()
    assert "pip install -r requirements-dev.txt" in readme
    assert "only GPU tests are skipped" not in readme
    assert "pip install -q -r requirements-dev.txt" in (REPO / ".ci" / "run").read_text()
