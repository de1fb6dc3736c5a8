"""The hook specs are the documented plugin contract."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from salesbot_core import hookspecs

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("salesbot_"))
#: The hook reference, in the docs page on writing plugins.
PLUGINS_PAGE = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")


def test_there_are_hooks() -> None:
    assert HOOKS == [
        "salesbot_after_assign",
        "salesbot_bot_applies",
        "salesbot_due",
        "salesbot_keep_routing",
        "salesbot_open_store",
        "salesbot_prefer_candidates",
        "salesbot_preselect",
        "salesbot_register_entities",
        "salesbot_register_propagation_modes",
        "salesbot_register_strategies",
        "salesbot_ruleset_fields",
        "salesbot_skip_candidate",
        "salesbot_sla_met",
        "salesbot_sla_missed",
        "salesbot_stopped_matching",
        "salesbot_user_available",
    ]


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_typed_and_documented_with_an_example(name: str) -> None:
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert len(doc.split()) >= 25, f"{name} needs a docstring saying what it receives and returns"
    assert "Example::" in doc and "@hookimpl" in doc
    signature = inspect.signature(spec)
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_in_the_docs_hook_table(name: str) -> None:
    assert re.search(rf"^\| `{name}\(", PLUGINS_PAGE, re.MULTILINE), f"{name} missing from docs/plugins.md"


def test_the_docs_hook_table_names_no_other_hook() -> None:
    assert sorted(re.findall(r"^\| `(salesbot_\w+)\(", PLUGINS_PAGE, re.MULTILINE)) == HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_the_docs_say_which_hooks_are_firstresult(name: str) -> None:
    firstresult = getattr(hookspecs, name).salesbot_spec.get("firstresult", False)
    row = re.search(rf"^\| `{name}\(.*$", PLUGINS_PAGE, re.MULTILINE)
    assert row is not None
    assert ("`firstresult`" in row.group(0)) == firstresult, f"{name}: docs and spec disagree on firstresult"
