"""The apps are layered one way (docs/architecture.md): import-linter's contracts in
pyproject.toml, lazy imports inside functions included, and what no import graph can see."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _app_layers() -> list[list[str]]:
    """The apps of each layer, top layer first (``a | b``: side by side, independent)."""
    (contract,) = [c for c in _contracts() if c["name"] == "Apps are layered one way"]
    return [
        [app.strip().removeprefix("apps.") for app in layer.split("|")]
        for layer in contract["layers"]
    ]


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") == len(_contracts())


def test_every_app_has_its_place_in_the_layers():
    apps = {p.parent.name for p in (ROOT / "apps").glob("*/__init__.py")}
    placed = [app for layer in _app_layers() for app in layer]
    assert len(placed) == len(set(placed))
    assert set(placed) == apps, "a new app must be placed in pyproject.toml's layers contract"


def _string_lookups(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, app label) of ``apps.get_model("label", …)`` / ``get_model("label.Model")`` and
    ``import_module("apps.label…")`` calls: model and module lookups by name, which no import
    graph sees."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if name == "get_model":
            found.append((node.lineno, first.value.split(".")[0]))
        elif name in ("import_module", "__import__") and first.value.startswith("apps."):
            found.append((node.lineno, first.value.split(".")[1]))
    return found


def test_no_app_looks_up_a_higher_app_by_name():
    # 0 is the top layer; side by side counts as higher both ways (independent).
    rank = {app: i for i, layer in enumerate(_app_layers()) for app in layer}
    wrong = []
    for path in (ROOT / "apps").rglob("*.py"):
        if "migrations" in path.parts:
            continue  # historical models, by design looked up by name
        app = path.relative_to(ROOT / "apps").parts[0]
        for line, label in _string_lookups(ast.parse(path.read_text())):
            if label in rank and label != app and rank[label] <= rank[app]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} looks up {label}")
    assert not wrong, wrong


def test_a_lazy_upward_import_breaks_the_contract(tmp_path):
    """The linter sees imports inside functions: the rule is enforced for them too."""
    package = tmp_path / "layered"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from layered import high\n")
    (package / "high.py").write_text("X = 1\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.importlinter]\nroot_packages = ["layered"]\n'
        '[[tool.importlinter.contracts]]\nname = "c"\ntype = "layers"\n'
        'layers = ["layered.high", "layered.low"]\n'
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "BROKEN" in result.stdout


def test_tests_share_helpers_through_tests_support_only():
    """A test module imports shared helpers from tests/support (or the factories), never from
    a conftest.py or another test module."""
    wrong = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last == "conftest" or last.startswith("test_")):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, wrong
