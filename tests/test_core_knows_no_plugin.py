"""Issue 11: no module of ``salesbot_core`` names a built-in plugin, its strategies or its fields.

The core reaches the built-ins only through hooks, so any of them can be blocked or
replaced. Code is checked, not prose: identifiers and string constants, docstrings left
out (they may give a built-in as an example).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from salesbot_core.registry import builtin_plugins, make_plugin_manager

CORE = Path(__file__).parent.parent / "salesbot_core"

#: Where the core may name a plugin's thing, and why.
ALLOWED = {
    # Default values of the ruleset schema: data an admin may leave out, looked up among
    # whatever the loaded plugins registered, like any name written in a file.
    ("models.py", "round_robin"),
    ("models.py", "add"),
    # A command's name that is an ordinary word: `salesbot webhook add`.
    ("delivery.py", "add"),
    # An ordinary word: the retry schedule of webhook deliveries, not a bot's schedule.
    ("delivery.py", "schedule"),
    # The one name the core boots from: the package that lists the built-ins.
    ("registry.py", "salesbot_plugins"),
}


def _forbidden() -> set[str]:
    catalog = make_plugin_manager(autoload=False).catalog()
    modules = {name.rsplit(".", 1)[-1] for name in builtin_plugins()}
    # Entities are core data (the Deal, Person... models); "propagation" also names the
    # core module of the propagation-mode contract.
    modules -= set(catalog.entities) | {"propagation"}
    return {"salesbot_plugins"} | modules | set(catalog.strategies) | {key for _, key in catalog.fields}


def _exact() -> set[str]:
    """Names that are ordinary words too ("add", "replace"): only a string constant that
    is exactly one of them counts, not ``list.add`` or ``str.replace``."""
    return set(make_plugin_manager(autoload=False).catalog().propagation_modes)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    # A bare string after an assignment documents it (``#:`` style is a comment already).
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            found.add(id(node.value))
    return found


def _mentions(path: Path, words: set[str], exact: set[str]) -> set[tuple[str, str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    hits = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            names = re.findall(r"\w+", node.value) + ([node.value] if node.value in exact else [])
        elif isinstance(node, ast.alias):
            names = re.findall(r"\w+", node.name)
        value = getattr(node, "value", None)
        hits |= {
            (path.name, name, node.lineno)
            for name in names
            if name in words or (name in exact and name == value)
        }
    return hits


def test_the_core_names_no_builtin_plugin() -> None:
    words, exact = _forbidden(), _exact()
    assert {"salesbot_plugins", "round_robin", "caps", "sticky", "working_hours"} <= words
    assert {"add", "replace"} <= exact
    hits = set()
    for path in sorted(CORE.rglob("*.py")):
        hits |= {hit for hit in _mentions(path, words, exact) if hit[:2] not in ALLOWED}
    assert not hits, "salesbot_core names built-in plugins' things:\n" + "\n".join(map(str, sorted(hits)))
