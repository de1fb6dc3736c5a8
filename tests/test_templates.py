"""Bot texts (tag, wall note, notification): only safe placeholders, rendered from plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from salesbot_core.models import Bot, Deal, User
from salesbot_core.templates import (
    ELLIPSIS,
    MAX_NOTE_BYTES,
    MAX_NOTIFICATION_BYTES,
    MAX_TEMPLATE_LENGTH,
    OBJECTS,
    check_template,
    record_values,
    render,
)

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


# Format specs: only parts that cannot crash or explode on any value ---------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{record.v:>12,.2f}", 1234567.891, "1,234,567.89"),
        ("{record.v:+d}", 42, "+42"),
        ("{record.v: d}", 42, " 42"),
        ("{record.v:_}", 1000000, "1_000_000"),
        ("{record.v:.1%}", 0.125, "12.5%"),
        ("{record.v:.2e}", 12345.0, "1.23e+04"),
        ("{record.v:g}", 0.5, "0.5"),
        ("{record.v:08.2f}", 3.5, "00003.50"),
        ("{record.v:=+8d}", 42, "+     42"),
        ("{record.v:*^9s}", "łódź", "**łódź***"),
        ("{record.v:.3}", "Żółta", "Żół"),
        ("{record.v:.3s}", "Żółta", "Żół"),
        ("{record.v:<6}|", "ab", "ab    |"),
        ("{record.v:d}", 1.5, "1.5"),  # the spec does not fit: plain text
        ("{record.v:,.0f}", True, "1"),
    ],
)
def test_allowed_format_specs(text: str, value: Any, expected: str) -> None:
    assert check_template(text) == []
    assert render(text, {"record": {"v": value}}) == expected


SPEC_HELP = (
    "a spec may have fill and alignment (< > ^ =), a sign, a width, ',' or '_', "
    "a precision and a type d, f, e, g, % or s"
)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("c", f"format spec 'c' is not allowed; {SPEC_HELP}"),
        ("x", f"format spec 'x' is not allowed; {SPEC_HELP}"),
        ("X", f"format spec 'X' is not allowed; {SPEC_HELP}"),
        ("o", f"format spec 'o' is not allowed; {SPEC_HELP}"),
        ("b", f"format spec 'b' is not allowed; {SPEC_HELP}"),
        ("n", f"format spec 'n' is not allowed; {SPEC_HELP}"),
        ("#x", f"format spec '#x' is not allowed; {SPEC_HELP}"),
        ("z.2f", f"format spec 'z.2f' is not allowed; {SPEC_HELP}"),
        (">10c", f"format spec '>10c' is not allowed; {SPEC_HELP}"),
        ("F", f"format spec 'F' is not allowed; {SPEC_HELP}"),
        (",,", f"format spec ',,' is not allowed; {SPEC_HELP}"),
        ("=10s", "type 's' (text) takes no sign, grouping or '=' alignment"),
        ("+s", "type 's' (text) takes no sign, grouping or '=' alignment"),
        (",s", "type 's' (text) takes no sign, grouping or '=' alignment"),
    ],
)
def test_rejected_format_specs(spec: str, reason: str) -> None:
    text = "{record.n:" + spec + "}"
    assert check_template(text) == [f"placeholder {text!r} is not allowed: {reason}"]


def test_the_code_point_spec_that_crashed_rendering_is_rejected_at_load() -> None:
    for value in (10**9, 0xD800, -1):
        with pytest.raises(ValueError, match="invalid template"):
            render("{record.n:c}", {"record": {"n": value}})


class Unformattable:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("no")

    def __str__(self) -> str:
        return "plain"


def test_render_is_total_any_formatting_error_renders_plain_text() -> None:
    assert render("[{record.v:>8.2f}]", {"record": {"v": Unformattable()}}) == "[plain]"


def test_lone_surrogates_are_replaced_so_the_result_encodes_as_utf8() -> None:
    rendered = render("{record.title} \ud83d", {"record": {"title": "a\udc00b"}})
    assert rendered == "a\ufffdb \ufffd"
    assert rendered.encode("utf-8") == b"a\xef\xbf\xbdb \xef\xbf\xbd"


# Size: the template at load, the rendering when the event arrives -----------------------


def test_the_documented_size_limits() -> None:
    assert (MAX_TEMPLATE_LENGTH, MAX_NOTE_BYTES, MAX_NOTIFICATION_BYTES, ELLIPSIS) == (2000, 4096, 1024, "…")


def test_a_template_longer_than_the_limit_is_one_problem() -> None:
    assert check_template("x" * 2000) == []
    assert check_template("{" * 2001) == ["a text may be at most 2000 characters long; this one has 2001"]


@pytest.mark.parametrize(
    ("title", "limit", "expected"),
    [
        ("żżżżż", 10, "żżżżż"),  # exactly 10 bytes: unchanged
        ("żżżżżż", 10, "żżż…"),  # 12 bytes: cut to at most 7 (a whole ż is 2), then "…"
        ("abcdefghijk", 10, "abcdefg…"),
        ("a😀b", 5, "a…"),  # the 4-byte emoji does not fit in 3 bytes: not split
        ("abcd", 2, "…"),  # a limit under 3 bytes still ends with the ellipsis
    ],
)
def test_a_rendering_over_the_limit_is_cut_at_a_character_and_ends_with_an_ellipsis(
    title: str, limit: int, expected: str
) -> None:
    assert render("{record.title}", {"record": {"title": title}}, limit=limit) == expected


def test_a_text_repeating_a_placeholder_is_cut_to_the_note_limit() -> None:
    text = "{record.title}" * 142  # 1,988 characters: a valid template
    rendered = render(text, {"record": {"title": "x" * 500}}, limit=MAX_NOTE_BYTES)
    assert rendered == "x" * 4093 + "…"
    assert len(rendered.encode("utf-8")) == MAX_NOTE_BYTES


def test_notes_and_notifications_are_capped_when_an_event_arrives(write_rules, tmp_path) -> None:
    from factories import TEAM, deal_event
    from salesbot_core import Engine

    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - id: inbound
            users: [anna]
            actions: {note: "N {record.title}", notify: "Hi {record.title}"}
        """,
        }
    )
    with Engine(folder, tmp_path / "s.db") as engine:
        outcome = engine.handle(deal_event(1, title="ł" * 5000))
    decision = outcome.decisions[0]
    assert decision.note == "N " + "ł" * 2045 + "…"  # 2 + 4090 + 3 = 4095 bytes
    assert decision.notification == "Hi " + "ł" * 509 + "…"  # 3 + 1018 + 3 = 1024 bytes


def test_a_ruleset_with_a_too_long_note_names_the_field(write_rules) -> None:
    from factories import TEAM
    from salesbot_core import RulesetError
    from salesbot_core.registry import make_plugin_manager
    from salesbot_core.rulesets import load_rulesets

    note = "{record.title}" * 143
    bots = f"bots:\n  - {{id: b, users: [anna], actions: {{notify: '{note}'}}}}\n"
    folder = write_rules(**{"team.yaml": TEAM, "b.yaml": bots})
    with pytest.raises(RulesetError) as info:
        load_rulesets(folder, make_plugin_manager().catalog())
    assert [str(p) for p in info.value.problems] == [
        f"{folder / 'b.yaml'}: bot 'b': field 'actions.notify': "
        "a text may be at most 2000 characters long; this one has 2002"
    ]
