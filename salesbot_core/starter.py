"""The rulesets folder ``salesbot init`` writes: one account, a few users and one bot,
every common option shown but commented out, valid as written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import SalesbotError
from .rulesets import SUFFIXES
from .safetext import escape

__all__ = ["STARTER_FILES", "starter_text", "write_starter"]

#: The files ``salesbot init`` writes, and the package data each is copied from: data, like
#: the shipped example rulesets (they show an admin the options of the built-in plugins;
#: the code here knows none of them). Read when ``init`` runs, not when the CLI starts.
STARTER_FILES = {"salesbot.yaml": "starter.yaml"}


def starter_text(name: str = "salesbot.yaml") -> str:
    """The text ``salesbot init`` writes as ``name``."""
    return (resources.files(__package__) / STARTER_FILES[name]).read_text(encoding="utf-8")


def write_starter(folder: Path) -> list[Path]:
    """Write ``STARTER_FILES`` into ``folder`` (created if missing) and return their paths.

    Nothing is overwritten, and a folder that already holds ruleset files is left alone
    (a second account file beside them would break the folder): ``SalesbotError`` names
    them and nothing is written."""
    paths = [folder / name for name in STARTER_FILES]
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing:
        raise SalesbotError(f"{existing[0]} exists: salesbot init overwrites nothing (pick another folder)")
    rulesets = sorted(
        path.name
        for path in (folder.iterdir() if folder.is_dir() else ())
        if path.suffix.lower() in SUFFIXES and not path.name.startswith(".")
    )
    if rulesets:
        named = ", ".join(escape(name) for name in rulesets[:5]) + (", ..." if len(rulesets) > 5 else "")
        raise SalesbotError(
            f"{escape(str(folder))} already holds ruleset files ({named}): salesbot init writes "
            "into a new or empty folder (pick another folder)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            with path.open("x", encoding="utf-8") as f:  # "x": never over a file made meanwhile
                f.write(starter_text(path.name))
    except OSError as exc:
        raise SalesbotError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return paths
