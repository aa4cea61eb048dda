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


def _dotted(node) -> str:
    """``keras.saving.load_model`` for an attribute chain (calls in the chain print as ``()``)."""
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return getattr(node, "id", "?")


def _is_keras_loader(call, keras_names) -> bool:
    """Whether a ``load_model`` call is Keras' (``keras.saving.load_model``, ``tf.keras.models.load_model``,
    or a ``load_model`` imported from Keras), not a method of our own that is safe inside
    (``RunData.load_model`` calls ``checkpoints.load_keras``, which this test checks too)."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in keras_names
    prefix = _dotted(func.value)
    return prefix.split(".")[0] in {"keras", "tf", "tensorflow"} or prefix.endswith(("saving", "models"))


def _keras_imported_names(tree) -> set[str]:
    return {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in {"keras", "tensorflow"} for alias in node.names}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_pickle_and_only_safe_model_loading(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    keras_names = _keras_imported_names(tree)
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
        if name == "load_model" and _is_keras_loader(call, keras_names):
            value = keywords.get("safe_mode")
            assert isinstance(value, ast.Constant) and value.value is True, (
                f"{path}:{call.lineno}: load_model must pass safe_mode=True")


def test_the_checks_see_the_code():
    """The scan covers the real loaders (a moved folder would make the test above vacuous)."""
    text = "".join(p.read_text() for p in SOURCES)
    assert len(SOURCES) > 20 and "load_model(" in text and "np.load(" in text
    keras_calls = [call for path in SOURCES for name, call in _calls(ast.parse(path.read_text()))
                   if name == "load_model" and _is_keras_loader(call, _keras_imported_names(ast.parse(path.read_text())))]
    assert keras_calls, "no Keras load_model call found: the safe_mode check would check nothing"


def test_the_loader_check_tells_keras_from_our_own():
    def call(code):
        return ast.parse(code).body[-1].value

    assert _is_keras_loader(call("keras.saving.load_model(p)"), set())
    assert _is_keras_loader(call("tf.keras.models.load_model(p)"), set())
    assert _is_keras_loader(call("load_model(p)"), {"load_model"})
    assert not _is_keras_loader(call("RunData.open(run).load_model()"), set())
    assert not _is_keras_loader(call("data.load_model()"), set())
