"""Bot texts (tag, wall note, notification): only safe placeholders, rendered from plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from salesbot_core.models import Bot, Deal, User
from salesbot_core.templates import OBJECTS, check_template, record_values, render

BOT = {"id": "big", "name": "Duże deale", "entity": "deal"}
OWNER = {"id": "pawel", "name": "Paweł Łęcki", "email": "pawel@example.com"}
RECORD = {"id": "d1", "entity": "deal", "title": "Żółta łódź", "value": 12000.0, "region": "północ"}
VALUES = {"bot": BOT, "owner": OWNER, "record": RECORD}


def test_objects_and_their_fields() -> None:
    assert OBJECTS == {
        "bot": frozenset({"id", "name", "entity"}),
        "owner": frozenset({"id", "name", "email"}),
        "record": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Assigned by {bot.name} to {owner.name}", "Assigned by Duże deale to Paweł Łęcki"),
        (
            "New deal {record.title} ({record.value:,.0f} PLN) is yours",
            "New deal Żółta łódź (12,000 PLN) is yours",
        ),
        ("{record.value:,.0f}", "12,000"),
        ("{owner.email} / {bot.id} / {bot.entity} / {record.id}", "pawel@example.com / big / deal / d1"),
        ("Region: {record.region}", "Region: północ"),
        ("[{record.title:>12}]", "[  Żółta łódź]"),
        ("{{record.title}} = {record.title}", "{record.title} = Żółta łódź"),
        ("{{ }} {{{owner.id}}}", "{ } {pawel}"),
        ("Przypisano automatycznie", "Przypisano automatycznie"),
        ("", ""),
    ],
)
def test_render(text: str, expected: str) -> None:
    assert check_template(text) == []
    assert render(text, VALUES) == expected


def test_a_missing_custom_field_renders_empty() -> None:
    assert render("Region: [{record.województwo}]", VALUES) == "Region: []"


def test_none_renders_empty_even_with_a_format_spec() -> None:
    values = {**VALUES, "record": {**RECORD, "value": None}}
    assert render("({record.value:,.0f} PLN)", values) == "( PLN)"


def test_a_value_the_format_spec_does_not_fit_renders_with_str() -> None:
    values = {**VALUES, "record": {**RECORD, "value": "dużo"}}
    assert render("{record.value:,.0f} PLN", values) == "dużo PLN"


def test_a_missing_object_renders_empty() -> None:
    assert render("To {owner.name}.", {"bot": BOT, "record": RECORD}) == "To ."


def test_a_polish_custom_field_name_is_allowed() -> None:
    values = {**VALUES, "record": {**RECORD, "województwo": "małopolskie"}}
    assert check_template("{record.województwo}") == []
    assert render("Woj. {record.województwo}", values) == "Woj. małopolskie"


_USE = "use bot.<field>, owner.<field> or record.<field>"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{record.__class__}", "field names cannot start with '_'"),
        ("{record._private}", "field names cannot start with '_'"),
        ("{bot._id}", "field names cannot start with '_'"),
        ("{owner.__init__.__globals__}", "only one field can be named: owner.<field>"),
        ("{bot.name.upper}", "only one field can be named: bot.<field>"),
        ("{record.title.__class__}", "only one field can be named: record.<field>"),
        ("{record[0]}", "indexing with [...] is not allowed; " + _USE),
        ("{record.fields[region]}", "indexing with [...] is not allowed; " + _USE),
        ("{0}", _USE),
        ("{}", _USE),
        ("{owner}", _USE),
        ("{record}", _USE),
        ("{x.name}", _USE),
        ("{foo.bar}", _USE),
        ("{ record.title }", _USE),
        ("{record.}", "'' is not a valid field name"),
        ("{record.1st}", "'1st' is not a valid field name"),
        ("{record.a-b}", "'a-b' is not a valid field name"),
        ("{owner.phone}", "owner has only email, id, name"),
        ("{bot.users}", "bot has only entity, id, name"),
        ("{record.title!r}", "conversions (!r, !s, !a) are not allowed"),
        ("{record.title!s}", "conversions (!r, !s, !a) are not allowed"),
        ("{record.title!a}", "conversions (!r, !s, !a) are not allowed"),
        ("{record.title!r:>10}", "conversions (!r, !s, !a) are not allowed"),
        ("{record.value:{record.title}}", "a format spec cannot contain placeholders or braces"),
        ("{record.value:>{{}}}", "a format spec cannot contain placeholders or braces"),
    ],
)
def test_rejected_placeholders(text: str, reason: str) -> None:
    problem = f"placeholder {text!r} is not allowed: {reason}"
    assert check_template(text) == [problem]
    with pytest.raises(ValueError) as excinfo:
        render(text, VALUES)
    assert str(excinfo.value) == f"invalid template: {problem}"


def test_the_examples_from_the_spec_read_as_documented() -> None:
    assert check_template("{record.__class__}") == [
        "placeholder '{record.__class__}' is not allowed: field names cannot start with '_'"
    ]
    assert check_template("{owner.phone}") == [
        "placeholder '{owner.phone}' is not allowed: owner has only email, id, name"
    ]
    assert check_template("{foo.bar}") == [
        "placeholder '{foo.bar}' is not allowed: use bot.<field>, owner.<field> or record.<field>"
    ]


def test_every_bad_placeholder_is_reported_once_in_order() -> None:
    text = "Hi {owner.phone}, {record.title} {record.__class__} {owner.phone}"
    assert check_template(text) == [
        "placeholder '{owner.phone}' is not allowed: owner has only email, id, name",
        "placeholder '{record.__class__}' is not allowed: field names cannot start with '_'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Deal {record.title", "expected '}' before end of string"),
        ("Deal {", "Single '{' encountered in format string"),
        ("Deal }", "Single '}' encountered in format string"),
        ("{record.title!}", "unmatched '{' in format spec"),
    ],
)
def test_unbalanced_braces_are_one_problem(text: str, message: str) -> None:
    assert check_template(text) == [message]
    with pytest.raises(ValueError, match="invalid template"):
        render(text, VALUES)


class Spy:
    """An object that records every attribute and item access made on it."""

    def __init__(self, log: list[str]) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        self._log.append(f"getattr {name}")
        return Spy(self._log)

    def __getitem__(self, key: Any) -> Any:
        self._log.append(f"getitem {key!r}")
        return Spy(self._log)


MALICIOUS = [
    "{owner.password_hash}",
    "{bot.token}",
    "{record.title.secret}",
    "{record[0]}",
    "{owner.__init__.__globals__}",
    "{record.__class__}",
    "{record.title!r}",
    "{record.value:{owner.password}}",
]


def test_the_spy_would_catch_str_format() -> None:
    log: list[str] = []
    template = "{owner.password_hash}"
    template.format(owner=Spy(log))
    assert log == ["getattr password_hash"]


@pytest.mark.parametrize("text", MALICIOUS)
def test_render_of_a_malicious_template_touches_nothing(text: str) -> None:
    log: list[str] = []
    values: dict[str, Any] = {"bot": Spy(log), "owner": Spy(log), "record": Spy(log)}
    with pytest.raises(ValueError, match="invalid template"):
        render(text, values)
    assert log == []


def test_render_never_calls_getattr_on_a_value() -> None:
    log: list[str] = []
    spy = Spy(log)
    rendered = render("{record.title}", {"record": {"title": spy}})
    assert rendered == str(spy)
    assert log == []


def test_record_values_merges_custom_fields_under_model_fields() -> None:
    deal = Deal(
        id="d1",
        owners=["bot:big"],
        tags=["vip"],
        title="Okno PCV",
        value=12000,
        fields={"region": "północ", "title": "custom title", "owners": "custom", "tags": "custom"},
    )
    values = record_values(deal.model_dump())
    assert values == {
        "region": "północ",
        "id": "d1",
        "open": True,
        "entity": "deal",
        "title": "Okno PCV",
        "process": None,
        "value": 12000.0,
        "persons": [],
        "company": None,
    }
    assert render("{record.title} ({record.region}, {record.value:,.0f} PLN)", {"record": values}) == (
        "Okno PCV (północ, 12,000 PLN)"
    )


def test_rendering_from_model_dumps() -> None:
    bot = Bot(id="big", name="Duże deale", users=["pawel"])
    owner = User(id="pawel", name="Paweł Łęcki", email="pawel@example.com")
    deal = Deal(id="d7", title="Żółta łódź", value=1234567.891, fields={"źródło": "targi"})
    values = {
        "bot": bot.model_dump(),
        "owner": owner.model_dump(),
        "record": record_values(deal.model_dump()),
    }
    text = (
        "{bot.name} → {owner.name} <{owner.email}>: {record.title}, {record.value:,.2f} PLN, {record.źródło}"
    )
    assert render(text, values) == (
        "Duże deale → Paweł Łęcki <pawel@example.com>: Żółta łódź, 1,234,567.89 PLN, targi"
    )


def test_a_huge_width_in_a_format_spec_is_rejected() -> None:
    assert check_template("{record.title:>999999999}") == [
        "placeholder '{record.title:>999999999}' is not allowed: "
        "a format spec's width and precision cannot exceed 200"
    ]
    assert render("{record.value:>8.2f}", {"record": {"value": 3.5}}) == "    3.50"
