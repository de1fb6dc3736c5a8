"""The bot form and the users page in Chromium, on SQLite and on PostgreSQL: the live
preview of a wall note rendered by the server as it is typed, the condition builder whose
text follows its rows (the page's own script, under the strict CSP), an offboarding
shown before it moves anything, and working hours and out-of-office edited in the user
form deciding the next event. On SQLite it takes the screenshots that docs/managing.md
shows (``docs/img/bot-form.png``, ``condition-builder.png``, ``history.png``,
``offboard.png``, ``user-form.png``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_server
import pytest
from admin_site import browser, make_tokens, publish_rules
from test_service import bearer, serve

from salesbot_core import Engine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None or shutil.which("chromedriver") is None,
        reason="the browser tests need Debian's chromium and chromium-driver",
    ),
]

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"


class Page:
    """A running ``serve --rules-from store``, its tokens, and Chromium signed in."""

    def __init__(self, store: str, db: str, api: Any, secrets: dict[str, str], driver: Any):
        self.store, self.db, self.api, self.secrets, self.driver = store, db, api, secrets, driver
        self.base = str(api.base_url).rstrip("/")

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, test: Any) -> None:
        """Until ``test()`` is true; a page that navigates meanwhile makes elements stale."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        ignored = (NoSuchElementException, StaleElementReferenceException)
        WebDriverWait(self.driver, 10, ignored_exceptions=ignored).until(lambda d: test())

    def picture(self, name: str) -> None:
        """A screenshot for the docs, taken once: on SQLite."""
        if self.store == "sqlite":
            IMAGES.mkdir(exist_ok=True)
            self.driver.save_screenshot(str(IMAGES / name))

    def book(self) -> dict[str, Any]:
        with Engine(None, self.db) as engine:
            return engine.rulebook("default")[1]

    def bot(self, bot: str) -> dict[str, Any]:
        return next(b for b in self.book()["bots"] if b["id"] == bot)


@pytest.fixture(params=["sqlite", "postgresql"])
def page(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            db = str(tmp_path / "salesbot.db")
        else:
            admin_url = request.getfixturevalue("postgres_admin_url")
            db = stack.enter_context(contextlib.contextmanager(pg_server.database_factory(admin_url))())
        publish_rules(db)
        secrets = make_tokens(db)
        api = stack.enter_context(
            contextlib.contextmanager(serve)(tmp_path / "none", db, tmp_path, "--rules-from", "store")
        )
        driver = stack.enter_context(browser())
        shown = Page(request.param, db, api, secrets, driver)
        from selenium.webdriver.common.by import By

        shown.open("/signin")
        driver.find_element(By.ID, "token").send_keys(secrets["page"])
        shown.find("form[action='/signin'] button").click()
        shown.wait(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Accounts")
        yield shown


def test_the_wall_note_preview_follows_the_typing_and_the_pages_are_pictured(page: Page) -> None:
    page.open("/a/default/bots/inbound/edit")
    page.find("#note").send_keys("Assigned to {owner.name}: {record.title}")
    page.wait(lambda: page.find("#note-preview").text == "Assigned to Anna Nowak: Sample deal")
    page.find("#message").send_keys("a wall note for inbound")
    page.picture("bot-form.png")
    page.find("button[value=publish]").click()
    page.wait(lambda: "Published version 2" in page.find("#notice").text)
    page.picture("history.png")
    assert page.bot("inbound")["actions"] == {"note": "Assigned to {owner.name}: {record.title}"}


def test_the_condition_builder_writes_its_rows_as_text_as_they_change(page: Page) -> None:
    from selenium.webdriver.support.ui import Select

    page.open("/a/default/bots/dist/edit")
    area = page.find("#where")
    assert area.get_attribute("value") == "$gt:\n  value: 0\n" and area.get_attribute("readonly") == "true"
    first = "#cond-rows tr:nth-child(1) "
    value = page.find(first + "[name=cond_value]")
    value.clear()
    value.send_keys("10000")
    Select(page.find(first + "[name=cond_op]")).select_by_visible_text("is at least")
    page.wait(lambda: area.get_attribute("value") == "$gte:\n  value: 10000\n")
    second = "#cond-rows tr:nth-child(2) "
    page.find(second + "[name=cond_field]").send_keys("process")
    Select(page.find(second + "[name=cond_op]")).select_by_visible_text("is one of")
    page.find(second + "[name=cond_value]").send_keys("sales, partners")
    expected = (
        "$and:\n- $gte:\n    value: 10000\n- $or:\n  - $eq:\n      process: sales\n"
        "  - $eq:\n      process: partners\n"
    )
    page.wait(lambda: area.get_attribute("value") == expected)
    assert page.find("#where-check").text == "The conditions are valid."
    rows = len(page.driver.find_elements("css selector", "#cond-rows tr"))
    page.find("#cond-add").click()
    assert len(page.driver.find_elements("css selector", "#cond-rows tr")) == rows + 1
    page.find(first + "[name=cond_value]").clear()
    page.wait(lambda: "row 1 (value): is at least needs a value" in page.find("#where-check").text)
    page.find(first + "[name=cond_value]").send_keys("10000")
    page.wait(lambda: page.find("#where-check").text == "The conditions are valid.")
    page.picture("condition-builder.png")

    # A condition beyond the rows is written as text, checked as it is typed...
    page.find("#where-raw").click()
    assert area.get_attribute("readonly") is None
    assert page.find(first + "[name=cond_field]").get_attribute("disabled") == "true"
    area.clear()
    area.send_keys("$imt: {title: '^acme'}")
    page.wait(lambda: "'^' is not supported" in page.find("#where-check").text)
    # ... and the builder does not take it over.
    page.find("#where-builder").click()
    page.wait(lambda: "The builder cannot show these conditions" in page.find("#where-check").text)
    assert page.find("#where-raw").is_selected()
    area.clear()
    area.send_keys("$lt: {value: 5}")
    page.find("#where-builder").click()
    page.wait(lambda: page.find(first + "[name=cond_value]").get_attribute("value") == "5")
    assert Select(page.find(first + "[name=cond_op]")).first_selected_option.text == "is less than"
    assert page.find(second + "[name=cond_field]").get_attribute("value") == ""
    page.find("button[value=publish]").click()
    page.wait(lambda: "Published version 2" in page.find("#notice").text)
    assert page.bot("dist")["trigger"] == {"where": {"$lt": {"value": 5}}}


def test_an_offboarding_shows_where_each_record_would_go_before_it_moves_them(page: Page) -> None:
    from selenium.webdriver.common.by import By

    owners = []
    for n in range(4):
        record = {"entity": "deal", "id": f"lead-{n}", "owners": ["bot:inbound"]}
        answer = page.api.post(
            "/v1/accounts/default/events",
            json={"id": f"lead-{n}", "kind": "created", "record": record},
            headers=bearer(page.secrets["events"]),
        )
        owners.append(answer.json()["owners_after"])
    # Round robin over anna and celina (bartek is away): anna has two of the four.
    annas = [f"lead-{n}" for n, got in enumerate(owners) if got == ["anna"]]
    assert len(annas) == 2
    page.open("/a/default/users")
    page.driver.find_element(By.CSS_SELECTOR, "#user-anna a[href$='/offboard']").click()
    page.wait(lambda: page.driver.find_element(By.TAG_NAME, "h1").text == "Offboard user anna?")
    shown = [row.text for row in page.driver.find_elements(By.CSS_SELECTOR, "#moved tbody tr")]
    assert shown == [f"deal {r} Celina Zając Inbound leads its own pick" for r in annas]
    page.picture("offboard.png")
    page.driver.find_element(
        By.XPATH, "//button[starts-with(., 'Switch anna off and move 2 records')]"
    ).click()
    page.wait(lambda: "User Anna Nowak is switched off: 2 records moved." in page.find("#notice").text)
    with Engine(None, page.db) as engine:
        assert [engine.record("default", "deal", r).owners for r in annas] == [["celina"], ["celina"]]  # type: ignore[union-attr]
        assert engine.store.open_records("default", "anna") == []


def test_working_hours_and_out_of_office_edited_in_the_user_form_decide_the_next_event(page: Page) -> None:
    from datetime import UTC, datetime

    from selenium.webdriver.common.by import By

    # A day three days off today's (in UTC, anna's zone): not today, whatever the hour.
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    today = datetime.now(UTC).weekday()
    day = days[(today + 3) % 7]
    edits = [
        ("anna", "#plugin-working_hours", f"{{days: [{day}], start: '09:00', end: '17:00'}}"),
        (
            "celina",
            "#plugin-out_of_office",
            "- {start: '2020-01-01T00:00:00Z', end: '2099-01-01T00:00:00Z', reason: at a fair}",
        ),
        ("bartek", "#plugin-out_of_office", ""),  # back from his holiday
    ]
    for number, (user, field, text) in enumerate(edits, start=2):
        page.open("/a/default/users")
        page.driver.find_element(By.CSS_SELECTOR, f"#user-{user} a[href$='/edit']").click()
        heading = f"Edit user {user}"
        page.wait(lambda: page.driver.find_element(By.TAG_NAME, "h1").text == heading)  # noqa: B023
        area = page.find(field)
        area.clear()
        area.send_keys(text)
        if user == "anna":
            timezone = page.find("#timezone")
            timezone.clear()
            timezone.send_keys("Europe/Warsaw")
            page.picture("user-form.png")
            timezone.clear()
            timezone.send_keys("UTC")
        page.find("button[value=publish]").click()
        notice = f"Published version {number}: user {user} saved in the page"
        page.wait(lambda: notice in page.find("#notice").text)  # noqa: B023
    row = page.find("#user-anna").text
    assert f"days {day}; start 09:00; end 17:00" in row
    assert (
        "start 2020-01-01T00:00:00Z; end 2099-01-01T00:00:00Z; reason at a fair"
        in page.find("#user-celina").text
    )
    users = {u["id"]: u for u in page.book()["users"]}
    assert users["anna"]["working_hours"] == {"days": [day], "start": "09:00", "end": "17:00"}
    assert (
        "out_of_office" not in users["bartek"]
        and users["celina"]["out_of_office"][0]["reason"] == "at a fair"
    )

    answer = page.api.post(
        "/v1/accounts/default/events",
        json={
            "id": "after-edit",
            "kind": "created",
            "record": {"entity": "deal", "id": "after-edit", "owners": ["bot:inbound"]},
        },
        headers=bearer(page.secrets["events"]),
    ).json()
    assert (answer["owners_after"], answer["rules_version"]) == (["bartek"], 4)
    page.open("/a/default/records/deal/after-edit")
    shown = page.driver.find_element(By.TAG_NAME, "main").text
    assert f"Anna Nowak: does not work on {days[today]} (UTC)" in shown
    assert "Celina Zając: at a fair until 2099-01-01T00:00:00+00:00" in shown
