"""setup.cfg lists packages one by one: a package missing there is missing from every
install that is not editable (tox's, a user's), though every test in an editable checkout
passes. Each package of the source tree must be listed."""

from __future__ import annotations

import ast
import configparser
import re
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_of_the_tree_is_installed() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set(config["options"]["packages"].split())
    roots = {
        name.strip(): path.strip()
        for name, _, path in (line.partition("=") for line in config["options"]["package_dir"].splitlines())
        if name.strip()
    }
    found = {
        ".".join([package, *init.parent.relative_to(ROOT / folder).parts])
        for package, folder in roots.items()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == listed


def _requirement_names(lines: str) -> set[str]:
    names = set()
    for line in lines.splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_every_library_the_server_imports_is_in_the_core_or_the_server_extra() -> None:
    """`pip install 'salesbot[server]'` must be enough for `salesbot serve` and `salesbot
    deliver`: each third-party module imported under http/ and admin/ (at the top or in a
    function) comes with the core's requirements or the server extra."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    provided = _requirement_names(config["options"]["install_requires"])
    provided |= _requirement_names(config["options.extras_require"]["server"])
    distributions = packages_distributions()
    imported: set[str] = set()
    for folder in ("http", "admin"):
        for source in (ROOT / "salesbot_core" / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name in distributions and name != "salesbot_core"}
    needed = {dist.lower().replace("_", "-") for name in third_party for dist in distributions[name]}
    assert "httpx" in needed  # the delivery worker's client
    assert needed - provided == set()
