"""Benchmarks and tests call only public names of the package: no ``from compress.x import _y``, no
``module._y`` on a compress module, no monkeypatching of ``"_y"`` on one. A private name they need gets a
public one in its module instead.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _uses(path: Path) -> list[tuple[int, str]]:
    """(line, dotted private name of the package) for every use in ``path``."""
    tree, modules, found = ast.parse(path.read_text()), {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("compress"):
                    modules[alias.asname or "compress"] = alias.name if alias.asname else "compress"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("compress"):
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
                elif _is_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in modules:
                found.append((node.lineno, ".".join([modules[value.id], *chain, node.attr])))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("setattr", "delattr") and node.args:
            target, names = node.args[0], [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            if isinstance(target, ast.Name) and target.id in modules:
                found += [(node.lineno, f"{modules[target.id]}.{n}") for n in names if isinstance(n, str) and _private(n)]
    return found


def test_benchmarks_and_tests_call_only_public_names():
    files = sorted([*ROOT.glob("benchmarks/**/*.py"), *ROOT.glob("tests/**/*.py")])
    used = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in files for line, name in _uses(path)]
    assert not used, used


def test_the_check_finds_a_private_name(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import compress.run.deploy as deploy\nfrom compress.cli import main\n"
                     "from compress.cli.main import _runs_work\ndeploy._padding_advice(8)\n"
                     "def test(monkeypatch):\n    monkeypatch.setattr(main, '_runs_work', None)\n")
    assert [name for _, name in _uses(probe)] == ["compress.cli.main._runs_work", "compress.run.deploy._padding_advice",
                                                  "compress.cli.main._runs_work"]
