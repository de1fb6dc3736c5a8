"""The admin page in a real browser: Debian's Chromium, driven by selenium through
chromedriver, against a real ``salesbot serve`` process, on SQLite and on PostgreSQL.

The six scenarios of the admin page's issue, each on its own; screenshots of the main
pages are saved under ``screenshots/`` (kept by CI in the workspace; git-ignored).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pg_server
import pytest
from admin_site import HOLIDAY, HOSTILE, IMG, SCRIPT, browser, make_tokens, write_rules
from test_service import bearer, serve

from salesbot_core.engine import open_store
from salesbot_core.http.delivery import add_webhook
from salesbot_core.registry import make_plugin_manager

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None or shutil.which("chromedriver") is None,
        reason="the browser tests need Debian's chromium and chromium-driver",
    ),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"


class Site:
    """A running ``salesbot serve``, its tokens, and a browser signed in or not."""

    def __init__(self, store: str, db: str, client: httpx.Client, secrets: dict[str, str], driver: Any):
        self.store, self.db, self.api, self.secrets, self.driver = store, db, client, secrets, driver
        self.base = str(client.base_url).rstrip("/")

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def sign_in(self, token: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.delete_all_cookies()
        self.open("/signin")
        self.driver.find_element(By.ID, "token").send_keys(self.secrets[token])
        self.click_through(self.driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button"))
        assert self.h1() == "Accounts"

    def click_through(self, element: Any) -> None:
        """Click what loads another page, and wait until it has: the old page's root is
        gone (its heading is not the next page's)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()

        def replaced(driver: Any) -> bool:
            try:
                return not old.is_enabled()  # any question to the old root
            except WebDriverException:  # stale, or "does not belong to the document"
                return True

        WebDriverWait(self.driver, 10).until(replaced)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def h1(self) -> str:
        """The page's heading, once a page with one has loaded (a form post navigates)."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        # Read in the wait: a page that navigates meanwhile makes the element stale.
        wait = WebDriverWait(
            self.driver, 10, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        )
        return str(wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text))

    def session(self) -> httpx.Client:
        """An HTTP client holding the browser's session cookie (the form posts of a script)."""
        cookies = {c["name"]: c["value"] for c in self.driver.get_cookies()}
        return httpx.Client(base_url=self.base, cookies=cookies, timeout=30)

    def event(self, record: dict[str, Any], event_id: str) -> dict[str, Any]:
        response = self.api.post(
            "/v1/accounts/default/events",
            json={"id": event_id, "kind": "created", "record": record},
            headers=bearer(self.secrets["events"]),
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.driver.save_screenshot(str(SCREENSHOTS / f"{self.store}-{name}.png"))


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with browser() as found:
        yield found


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, driver: Any
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("admin")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            db = str(folder / "salesbot.db")
        else:
            admin_url = request.getfixturevalue("postgres_admin_url")
            db = stack.enter_context(contextlib.contextmanager(pg_server.database_factory(admin_url))())
        rules = write_rules(folder / "rulesets")
        secrets = make_tokens(db)
        client = stack.enter_context(contextlib.contextmanager(serve)(rules, db, folder))
        yield Site(request.param, db, client, secrets, driver)


def test_1_a_bot_switched_off_in_the_page_assigns_nothing(site: Site) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site.sign_in("page")
    site.screenshot("accounts")
    site.open("/a/default")
    row = site.driver.find_element(By.ID, "bot-switchme")
    assert "On" in row.text
    site.click_through(row.find_element(By.XPATH, ".//button[normalize-space()='Switch off…']"))
    site.driver.find_element(By.XPATH, "//button[normalize-space()='Switch off']").click()
    WebDriverWait(site.driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#bot-switchme .state").text == "Off"
    )
    row = site.driver.find_element(By.ID, "bot-switchme")
    assert row.find_element(By.CSS_SELECTOR, ".state").text == "Off"
    assert "by token default/page at " in row.find_element(By.CSS_SELECTOR, ".who").text
    site.screenshot("bots")

    outcome = site.event({"entity": "deal", "id": "off-1", "owners": ["bot:switchme"]}, "off-1")
    assert [(d["bot"], d["status"], d["reason"]) for d in outcome["decisions"]] == [
        ("switchme", "not_applied", "the bot is switched off")
    ]
    assert outcome["owners_after"] == []
    listed = site.api.get("/v1/accounts/default/bots", headers=bearer(site.secrets["events"])).json()
    assert {b["id"]: b["active"] for b in listed["bots"]}["switchme"] is False


def test_2_the_distribution_bars_carry_the_apis_counts(site: Site) -> None:
    from selenium.webdriver.common.by import By

    events = [
        {
            "id": f"dist-{n}",
            "kind": "created",
            "record": {"entity": "deal", "id": f"dist-{n}", "value": n, "owners": ["bot:dist"]},
        }
        for n in range(1, 31)
    ]
    results = site.api.post(
        "/v1/accounts/default/events:batch", json={"events": events}, headers=bearer(site.secrets["events"])
    ).json()["results"]
    from_api = Counter(r["outcome"]["owners_after"][0] for r in results)
    assert from_api == {"anna": 10, "celina": 10, "jan": 10}  # bartek is on holiday

    site.sign_in("page")
    site.open("/a/default/bots/dist")
    charts = site.driver.find_elements(By.CSS_SELECTOR, "figure.chart")
    titles = [c.find_element(By.TAG_NAME, "figcaption").text for c in charts]
    assert titles == [
        "Today (UTC): 30 assignment(s)",
        "Last 7 days: 30 assignment(s)",
        "Last 30 days: 30 assignment(s)",
        "This rotation (last 3 assignments): 3 assignment(s)",  # 3 users eligible now
    ]
    drawn = [
        {
            bar.get_attribute("data-user"): int(bar.find_element(By.CSS_SELECTOR, "text.count").text)
            for bar in chart.find_elements(By.CSS_SELECTOR, "g.bar")
        }
        for chart in charts
    ]
    assert drawn == [{"anna": 10, "bartek": 0, "celina": 10, "jan": 10}] * 3 + [
        {"anna": 1, "bartek": 0, "celina": 1, "jan": 1}
    ]
    pool = {
        row.find_element(By.TAG_NAME, "code").text: row.find_elements(By.TAG_NAME, "td")[0].text
        for row in site.driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby='pool-h'] tbody tr")
    }
    assert pool == {"anna": "active", "bartek": "out of office", "celina": "active", "jan": "active"}
    site.screenshot("bot")


def test_3_a_record_shows_the_out_of_office_user_skipped_and_why(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    outcome = site.event(
        {"entity": "deal", "id": "ooo-1", "title": "Lift", "owners": ["bot:inbound"]}, "ooo-1"
    )
    assert outcome["decisions"][0]["skipped"] == [{"user": "bartek", "reason": HOLIDAY}]
    site.sign_in("page")
    site.open("/a/default/records")
    Select(site.driver.find_element(By.ID, "entity")).select_by_value("deal")
    site.driver.find_element(By.ID, "record-id").send_keys("ooo-1")
    site.click_through(site.driver.find_element(By.XPATH, "//button[normalize-space()='Open']"))
    assert site.h1() == "Deal ooo-1: Lift"
    skipped = [li.text for li in site.driver.find_elements(By.CSS_SELECTOR, "ul.skipped li")]
    assert skipped == [f"Bartek Wiśniewski: {HOLIDAY}"]
    names = {"anna": "Anna Nowak", "celina": "Celina Zając"}
    assert site.driver.find_element(By.ID, "owners").text == names[outcome["owners_after"][0]]
    site.screenshot("record")


def test_4_hostile_names_titles_and_notes_are_text_and_run_nothing(site: Site) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    site.event({"entity": "deal", "id": "xss-1", "title": HOSTILE, "owners": ["bot:xss"]}, "xss-1")
    site.sign_in("page")
    for path, times in (("/a/default", 1), ("/a/default/bots/xss", 1), ("/a/default/records/deal/xss-1", 3)):
        site.open(path)
        with pytest.raises(TimeoutException):
            WebDriverWait(site.driver, 1).until(expected_conditions.alert_is_present())
        text = site.text()
        # bots list: the name; bot page: the title; record: the title, the wall note, the note of the decision
        assert text.count(SCRIPT) >= times and text.count(IMG) >= times, path
        assert site.driver.find_elements(By.CSS_SELECTOR, "img") == []
        scripts = site.driver.find_elements(By.TAG_NAME, "script")
        assert [s.get_attribute("src") for s in scripts] == [f"{site.base}/admin-static/admin.js"]
    site.open("/a/default/live")
    assert "deal xss-1" in site.text()
    site.screenshot("live")


def test_5_an_account_token_cannot_open_another_accounts_pages(site: Site) -> None:
    site.sign_in("beta")
    assert "default" not in site.text().split("Accounts", 1)[1].split("Rulesets")[0]
    pages = [
        "/a/default",
        "/a/default/bots/inbound",
        "/a/default/records/deal/ooo-1",
        "/a/default/live",
        "/a/default/live/rows",
        "/a/default/deliveries",
        "/a/default/replay",
    ]
    for path in pages:
        site.open(path)
        assert site.h1() == "Not found", path
        assert "anna" not in site.text() and "inbound" not in site.text()
    with site.session() as http:
        for path in pages:
            assert http.get(path).status_code == 404, path
        csrf = _csrf(http.get("/a/beta").text)
        refused = http.post("/a/default/bots/inbound/active", data={"active": "off", "csrf": csrf})
        assert refused.status_code == 404
    site.open("/a/beta")
    assert site.h1() == "Bots of account beta"


def test_6_a_form_post_without_the_csrf_token_is_refused(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site.sign_in("page")
    site.open("/a/default")
    row = site.driver.find_element(By.ID, "bot-inbound")
    site.click_through(row.find_element(By.XPATH, ".//button[normalize-space()='Switch off…']"))
    form = site.driver.find_element(
        By.CSS_SELECTOR, "form[method=post][action='/a/default/bots/inbound/active']"
    )
    site.driver.execute_script("arguments[0].querySelector('input[name=csrf]').remove()", form)
    site.click_through(form.find_element(By.XPATH, ".//button[normalize-space()='Switch off']"))
    WebDriverWait(site.driver, 10).until(lambda d: "Refused" in d.title or d.title.startswith("403"))
    assert site.h1() == "Refused"
    assert "CSRF" in site.text()
    with site.session() as http:
        assert http.post("/a/default/bots/inbound/active", data={"active": "off"}).status_code == 403
        assert (
            http.post("/a/default/bots/inbound/active", data={"active": "off", "csrf": "x" * 64}).status_code
            == 403
        )
        assert http.post("/signout", data={}).status_code == 403
    listed = site.api.get("/v1/accounts/default/bots", headers=bearer(site.secrets["events"])).json()
    assert {b["id"]: b["active"] for b in listed["bots"]}["inbound"] is True


def test_7_a_failed_delivery_shows_its_error_and_is_retried_from_the_page(site: Site) -> None:
    from selenium.webdriver.common.by import By

    store = open_store(make_plugin_manager(), site.db)
    try:
        # Nothing listens on the discard port: serve's delivery worker fails, to retry later.
        add_webhook(store, "default", "http://127.0.0.1:9/hook", ["assignment"])
        site.event({"entity": "deal", "id": "hook-1", "owners": ["bot:inbound"]}, "hook-1")
        dead = None
        for _ in range(600):
            failed = [d for d in store.deliveries("default", "pending") if d.last_error]
            # Given up now rather than after the retry horizon (unless claimed again meanwhile).
            if failed and store.finish_delivery(
                failed[0].id, failed[0].attempts, "dead", failed[0].next_at, failed[0].last_error
            ):
                dead = failed[0]
                break
            time.sleep(0.1)
        assert dead is not None and dead.last_error
        site.sign_in("page")
        site.open("/a/default/deliveries")
        row = site.driver.find_element(By.XPATH, f"//tr[td/code[text()='{dead.id}']]")
        assert dead.last_error[:40] in row.text
        site.screenshot("deliveries")
        site.click_through(row.find_element(By.XPATH, ".//button[normalize-space()='Retry']"))
        assert site.h1() == "Webhook deliveries"
        assert store.deliveries("default", "dead") == []
        assert [d.id for d in store.deliveries("default", "pending")] == [dead.id]
    finally:
        store.close()


def test_8_the_api_reference_renders_under_its_csp_with_nothing_from_a_cdn(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site.driver.get_log("browser")  # what earlier pages logged
    site.open("/docs")
    title = WebDriverWait(site.driver, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    )
    assert (site.driver.title, title.split("\n")[0]) == ("salesbot - Swagger UI", "salesbot")
    operations = site.driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert "/v1/accounts/{account}/events" in [op.text.replace("\u200b", "") for op in operations]
    assert site.driver.get_log("browser") == []  # nothing refused by the policy, no error
    site.screenshot("docs")

    site.open("/redoc")
    heading = WebDriverWait(site.driver, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, "h1").text)
    assert (site.driver.title, heading) == ("salesbot - ReDoc", "salesbot (1)")
    # The policy is in force: redoc's logo, linked from its CDN, is refused.
    refused = [entry["message"] for entry in site.driver.get_log("browser")]
    assert len(refused) == 1 and "https://cdn.redoc.ly/redoc/logo-mini.svg" in refused[0], refused
    assert "violates the following Content Security Policy directive: \"img-src 'self' data:\"" in refused[0]


def _csrf(html: str) -> str:
    start = html.index('name="csrf" value="') + len('name="csrf" value="')
    return html[start : html.index('"', start)]
