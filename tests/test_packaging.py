"""setup.cfg lists packages one by one: a package missing there is missing from every
install that is not editable (tox's, a user's), though every test in an editable checkout
passes. Each package of the source tree must be listed."""

from __future__ import annotations

import configparser
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
