"""The rulesets folder ``salesbot init`` writes: one account, a few users and one bot,
every common option shown but commented out, valid as written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import SalesbotError

__all__ = ["STARTER_FILES", "write_starter"]

#: The schema file the editor comment points to.
SCHEMA_FILE = "salesbot.schema.json"

#: The starter file: data, like the shipped example rulesets (it shows an admin the options
#: of the built-in plugins; the code here knows none of them).
STARTER = (resources.files(__package__) / "starter.yaml").read_text(encoding="utf-8")

#: File name -> text, as ``salesbot init`` writes them.
STARTER_FILES = {"salesbot.yaml": STARTER}


def write_starter(folder: Path) -> list[Path]:
    """Write ``STARTER_FILES`` into ``folder`` (created if missing) and return their paths.

    Nothing is overwritten: if any of the files exists, ``SalesbotError`` names it and
    nothing is written."""
    paths = [folder / name for name in STARTER_FILES]
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing:
        raise SalesbotError(f"{existing[0]} exists: salesbot init overwrites nothing (pick another folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, STARTER_FILES.values(), strict=True):
            with path.open("x", encoding="utf-8") as f:  # "x": never over a file made meanwhile
                f.write(text)
    except OSError as exc:
        raise SalesbotError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return paths
