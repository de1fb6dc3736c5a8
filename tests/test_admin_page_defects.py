"""What trying the admin page as an admin found (issue 23, section 6), page by page without
a browser: words instead of ids, names instead of ids, a skip link, a confirmed switch
with a notice, "today" in the account's time zone, totals per user with their caps, and
a company page listing the deals that changed it.

The live feed, the pause and the phone-sized tables are in Chromium:
tests/test_admin_page_defects_browser.py (slow).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from admin_site import make_tokens, write_rules
from fastapi.testclient import TestClient
from test_admin import csrf_of, signed_in

from factories import deal_event
from salesbot_core import Engine
from salesbot_core.admin import reads
from salesbot_core.http.app import create_app


def visible(page: str) -> str:
    """A page's text as a reader sees it: no tags, no attributes, entities decoded."""
    body = page.split("<body>", 1)[1]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", body))
    return html.unescape(re.sub(r" ([,:;.])", r"\1", text))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    db = str(tmp_path / "salesbot.db")
    folder = write_rules(tmp_path / "rulesets")
    with Engine(folder, db) as engine:
        engine.set_bot_active("default", "switchme", False)
        engine.handle({**deal_event(1, owners=["bot:switchme"])})
        engine.handle({**deal_event(2, owners=["bot:inbound"], title="Lift")})
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        signed_in(client, made["page"])
        yield client, made, db


def test_statuses_and_strategies_read_as_words_with_the_ids_kept_in_data_attributes(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, _, _ = site
    bots = client.get("/a/default").text
    assert "round robin" in visible(bots) and "round_robin" not in visible(bots)
    assert bots.count('data-strategy="round_robin"') == 4
    for path in ("/a/default/live", "/a/default/records/deal/d1", "/a/default/bots/switchme"):
        page = client.get(path).text
        assert "not applied" in visible(page) and "not_applied" not in visible(page), path
        assert 'data-status="not_applied"' in page, path
    assert "round robin" in visible(client.get("/a/default/records/deal/d2").text)


def test_users_and_bots_are_shown_by_name(site: tuple[TestClient, dict[str, str], str]) -> None:
    client, _, _ = site
    record = client.get("/a/default/records/deal/d2").text
    assert re.search(r'<dd id="owners">Anna Nowak</dd>', record)
    assert '<strong data-bot="inbound">Bot Inbound leads</strong>' in record
    assert '<strong data-user="bartek">Bartek Wiśniewski</strong>: on holiday' in record
    assert "Candidates</dt><dd>Anna Nowak, Celina Zając</dd>" in record
    bots = client.get("/a/default").text
    assert "Anna Nowak, Bartek Wiśniewski, Celina Zając" in visible(bots)
    live = visible(client.get("/a/default/live").text)
    assert "Inbound leads: assigned → Anna Nowak" in live and "Switch me: not applied" in live
    chart = client.get("/a/default/bots/inbound").text
    assert '<text class="label" x="0" y="16">Anna Nowak</text>' in chart
    assert "Next in rotation: Bartek" not in visible(chart) and "Next in rotation: Celina Zając" in visible(
        chart
    )


def test_a_skip_link_is_the_first_thing_to_focus_on_every_page(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, _, _ = site
    focusable = re.compile(r'<(a|button|select|textarea)\b[^>]*>|<input\b(?![^>]*type="hidden")[^>]*>')
    for path in ("/", "/a/default", "/a/default/bots/inbound", "/a/default/live", "/a/default/records"):
        page = client.get(path).text
        first = focusable.search(page.split("<body>", 1)[1])
        assert first and first.group(0) == '<a class="skip" href="#main">', path
        assert '<a class="skip" href="#main">Skip to content</a>' in page and '<main id="main"' in page


def test_switching_a_bot_asks_first_then_says_it_is_done(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, _, db = site
    bots = client.get("/a/default").text
    assert 'action="/a/default/bots/inbound/active" class="switch"' in bots
    assert re.search(r'<form method="get" action="/a/default/bots/inbound/active"', bots)
    asked = client.get("/a/default/bots/inbound/active?to=off")
    assert asked.status_code == 200
    assert "<h1>Switch bot Inbound leads off?</h1>" in asked.text
    assert "assigns nothing from the next event on" in asked.text
    assert '<form method="post" action="/a/default/bots/inbound/active"' in asked.text
    with Engine(None, db) as engine:
        assert "inbound" not in engine.store.switches("default")  # asking changes nothing
    done = client.post(
        "/a/default/bots/inbound/active",
        data={"csrf": csrf_of(asked.text), "active": "off", "back": ""},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/a/default?switched=inbound")
    notice = client.get(done.headers["location"]).text
    assert re.search(r'id="notice">Bot Inbound leads switched off: it assigns nothing', notice)
    back = client.post(
        "/a/default/bots/inbound/active",
        data={"csrf": csrf_of(asked.text), "active": "on", "back": "bot"},
        follow_redirects=False,
    )
    assert back.headers["location"] == "/a/default/bots/inbound?switched=inbound"
    assert "Bot Inbound leads switched on" in client.get(back.headers["location"]).text
    assert client.get("/a/default/bots/inbound/active?to=maybe").status_code == 400
    assert client.get("/a/default/bots/ghost/active?to=off").status_code == 404
    # No notice without a switch, nor for another bot's name in the address.
    assert 'id="notice"' not in client.get("/a/default/bots/inbound?switched=dist").text


TOKYO = """
settings: {timezone: Asia/Tokyo}
users:
  - {id: anna, name: Anna Nowak, caps: {day: 3, month: 40, open: 9}}
  - {id: jan, name: Jan Kowalski, timezone: Asia/Tokyo}
bots:
  - {id: one, entity: deal, users: [anna]}
  - {id: two, entity: deal, users: [anna, jan]}
"""


def test_today_is_the_day_in_the_accounts_time_zone(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    # 20:00 UTC on 10 January is 05:00 on 11 January in Tokyo.
    now = datetime(2025, 1, 10, 20, tzinfo=UTC)
    assert reads.start_of_day(now, ZoneInfo("Asia/Tokyo")) == datetime(2025, 1, 10, 15, tzinfo=UTC)
    with Engine(write_rules(**{"t.yaml": TOKYO}), tmp_path / "s.db") as engine:
        for n, at in enumerate(("2025-01-10T10:00:00Z", "2025-01-10T16:00:00Z", "2025-01-10T19:00:00Z"), 1):
            engine.handle({**deal_event(n, owners=["bot:one"]), "at": at})
        (row,) = reads.overview(engine, ["default"], now)
        assert (row.timezone, row.activity.assignments) == ("Asia/Tokyo", 2)  # the UTC day has 3
        page = reads.bot_page(engine, "default", "one", now, 1)
        assert page is not None
        assert [c.title for c in page.charts[:1]] == ["Today (Asia/Tokyo)"]
        assert page.charts[0].total == 2


def test_totals_per_user_add_up_every_bot_beside_the_caps(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    now = datetime(2025, 1, 10, 20, tzinfo=UTC)
    with Engine(write_rules(**{"t.yaml": TOKYO}), tmp_path / "s.db") as engine:
        engine.handle({**deal_event(1, owners=["bot:one"]), "at": "2025-01-10T19:00:00Z"})
        engine.handle({**deal_event(2, owners=["bot:two"]), "at": "2025-01-10T19:30:00Z"})
        engine.handle({**deal_event(3, owners=["bot:two"]), "at": "2025-01-10T19:40:00Z"})
        totals = {t.user: t for t in reads.user_totals(engine, "default", now)}
    # anna: one from each bot (the second bot's rotation gave jan the other).
    assert dict(totals["anna"].counts) == {"day": 2, "week": 2, "month": 2}
    assert dict(totals["anna"].limits) == {"day": 3, "month": 40, "open": 9}
    assert (dict(totals["jan"].counts), dict(totals["jan"].limits)) == ({"day": 1, "week": 1, "month": 1}, {})


@pytest.mark.parametrize("bots", [2, 300])
def test_the_totals_are_counted_per_user_whatever_the_number_of_bots(
    write_rules: Callable[..., Path], tmp_path: Path, bots: int
) -> None:
    """Read as the caps count, one statement per user and period: counted per bot, a page
    of an account with 2,000 bots ran 120,000 statements (2 seconds)."""
    more = "".join(f"  - {{id: b{n}, entity: deal, users: [anna, jan]}}\n" for n in range(bots - 2))
    now = datetime(2025, 1, 10, 20, tzinfo=UTC)
    with Engine(write_rules(**{"t.yaml": TOKYO + more}), tmp_path / "s.db") as engine:
        engine.handle({**deal_event(1, owners=["bot:two"]), "at": "2025-01-10T19:00:00Z"})
        engine.handle({**deal_event(2, owners=[f"bot:b{bots - 3}" if bots > 2 else "bot:one"]),
                       "at": "2025-01-10T19:30:00Z"})  # fmt: skip
        statements: list[str] = []
        engine.store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        totals = {t.user: dict(t.counts) for t in reads.user_totals(engine, "default", now)}
        engine.store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    assert totals == {"anna": {"day": 2, "week": 2, "month": 2}, "jan": {"day": 0, "week": 0, "month": 0}}
    assert len([sql for sql in statements if sql.startswith("SELECT")]) == 2 * 3


def test_the_bots_page_shows_the_totals_with_caps_beside_the_counts(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "s.db")
    folder = write_rules(**{"t.yaml": TOKYO})
    with Engine(folder, db) as engine:
        engine.handle(deal_event(1, owners=["bot:one"]))
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        signed_in(client, made["page"])
        page = client.get("/a/default").text
    row = re.search(r'<tr id="total-anna">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = [visible("<body>" + cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert [c.strip() for c in cells] == ["1 of 3", "1", "1 of 40", "open: 9"]


COMPANY = """
users: [{id: anna, name: Anna Nowak}, {id: jan, name: Jan Kowalski}]
bots:
  - {id: deals, entity: deal, users: [anna], actions: {related: {company: true, mode: add}}}
"""


def test_a_company_page_lists_the_deals_that_changed_it(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "s.db")
    folder = write_rules(**{"c.yaml": COMPANY})
    with Engine(folder, db) as engine:
        engine.handle(
            {"id": "c1", "kind": "created", "record": {"entity": "company", "id": "acme", "owners": []}}
        )
        for n in (1, 2):
            deal = {"entity": "deal", "id": f"d{n}", "company": "acme", "owners": ["bot:deals"]}
            engine.handle({"id": f"e{n}", "kind": "created", "record": deal})
        engine.handle({"id": "e3", "kind": "created", "record": {"entity": "deal", "id": "d3", "owners": []}})
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        signed_in(client, made["page"])
        company = client.get("/a/default/records/company/acme").text
        lone = client.get("/a/default/records/company/none-such")
    listed = re.search(r'<ul id="changed-by">(.*?)</ul>', company, re.S)
    assert listed is not None
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', listed.group(1)) == [
        ("/a/default/records/deal/d1", "Deal d1"),
        ("/a/default/records/deal/d2", "Deal d2"),
    ]
    assert re.search(r'<dd id="owners">Anna Nowak</dd>', company)
    assert lone.status_code == 404


def test_the_readme_says_where_to_click_to_add_a_bot() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    said = "open the account under **Accounts** and click **New bot**"
    assert said in readme
    link = "(docs/admin.md#editing-the-rules-rules-kept-in-the-store)"
    assert readme.index(link) > readme.index(said)
    headings = (root / "docs" / "admin.md").read_text(encoding="utf-8").splitlines()
    assert "## Editing the rules (rules kept in the store)" in headings
    template = root / "salesbot_core" / "admin" / "templates" / "bots.html"
    assert '<a href="/a/{{ account|q }}/bots/new" id="new-bot">New bot</a>' in template.read_text(
        encoding="utf-8"
    )
