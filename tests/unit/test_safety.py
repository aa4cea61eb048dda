"""Static guarantees about files a user gives the app (checked on the source, so a new call
site cannot slip in unnoticed):

- nothing goes through ``pickle`` (``np.load(allow_pickle=True)``, ``pickle``/``joblib``/
  ``dill``/``shelve`` loads, ``pd.read_pickle``), which runs code from the file;
- every ``keras.saving.load_model`` call passes ``safe_mode=True`` (no lambdas or arbitrary
  code from a ``.keras`` file).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    p for folder in ("core", "ui", "pages") for p in (REPO / folder).rglob("*.py")
) + [REPO / "app.py"]
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "shelve", "joblib", "cloudpickle", "marshal"}


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_pickle_and_only_safe_model_loading(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & UNSAFE_MODULES, f"{path}:{node.lineno}"
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in UNSAFE_MODULES, f"{path}:{node.lineno}"
    for name, call in _calls(tree):
        keywords = {k.arg: k.value for k in call.keywords}
        if name == "load" and "allow_pickle" in keywords:
            value = keywords["allow_pickle"]
            assert isinstance(value, ast.Constant) and value.value is False, f"{path}:{call.lineno} allow_pickle"
        assert name != "read_pickle", f"{path}:{call.lineno} read_pickle"
        if name == "load_model":
            value = keywords.get("safe_mode")
            assert isinstance(value, ast.Constant) and value.value is True, (
                f"{path}:{call.lineno}: load_model must pass safe_mode=True")


def test_the_checks_see_the_code():
    """The scan covers the real loaders (a moved folder would make the test above vacuous)."""
    text = "".join(p.read_text() for p in SOURCES)
    assert len(SOURCES) > 20 and "load_model(" in text and "np.load(" in text
