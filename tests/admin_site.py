"""A site for the admin page's tests: rules with hostile names, tokens, and a browser.

The rules: account ``default`` with a round-robin bot whose pool has a user out of office
until 2099 (``bartek``), a bot whose name and wall note are XSS strings, a bot to switch
off, and a bot for the distribution; account ``beta`` with one bot. As ruleset files, or
published in the store.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

#: What the page must show as text and never run.
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT} {IMG}"
#: Why bartek is skipped, as the availability plugin words it.
HOLIDAY = "on holiday until 2099-01-01T00:00:00+00:00"

DEFAULT = """
users:
  - {id: anna, name: Anna Nowak}
  - id: bartek
    name: Bartek Wiśniewski
    out_of_office: [{start: "2020-01-01T00:00:00Z", end: "2099-01-01T00:00:00Z", reason: on holiday}]
  - {id: celina, name: Celina Zając}
  - {id: jan, name: Jan Kowalski}
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    users: [anna, bartek, celina]
  - id: xss
    name: 'HOSTILE'
    entity: deal
    users: [anna, celina]
    actions: {note: 'HOSTILE'}
  - id: switchme
    name: Switch me
    entity: deal
    users: [anna, celina]
  - id: dist
    name: Distribution
    entity: deal
    users: [anna, bartek, celina, jan]
    trigger: {where: {$gt: {value: 0}}}
""".replace("HOSTILE", HOSTILE.replace("'", "''"))

BETA = """
account: beta
users: [{id: zoe, name: Zoe}]
bots:
  - {id: beta-bot, name: Beta bot, entity: deal, users: [zoe]}
"""

#: Chromium as the brief of the tests asks: headless, quiet, a fresh profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Debian's packages put both on PATH (`chromium`, `chromium-driver`).
CHROMIUM = shutil.which("chromium") or "chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "chromedriver"


def write_rules(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "default.yaml").write_text(DEFAULT, encoding="utf-8")
    (folder / "beta.yaml").write_text(BETA, encoding="utf-8")
    return folder


def publish_rules(db: str) -> None:
    """The same rules kept in the store instead (``serve --rules-from store``): accounts
    ``default`` and ``beta`` at version 1, published by ``setup``."""
    from salesbot_core import Engine

    with Engine(None, db) as engine:
        for account, text in (("default", DEFAULT), ("beta", BETA)):
            book = yaml.safe_load(text)
            book.pop("account", None)
            engine.store.create_account(account, "professional", True)
            engine.publish(account, book, 0, author="setup", message="first rules")


def make_tokens(db: str) -> dict[str, str]:
    """``page``: default's manage token; ``events``: default's API token; ``beta``: beta's;
    ``read``: default's token without manage; ``admin``: an admin token."""
    store = open_store(make_plugin_manager(), db)
    try:
        return {
            "page": create_token(store, "default", "page", ["manage", "read"]),
            "events": create_token(store, "default", "crm"),
            "beta": create_token(store, "beta", "beta-page", ["manage"]),
            "read": create_token(store, "default", "reader", ["read"]),
            "admin": create_token(store, "*", "ops"),
        }
    finally:
        store.close()


@contextlib.contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium driven through Debian's chromedriver, on a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    # The console, for the pages' Content-Security-Policy reports (``driver.get_log``).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="salesbot-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()
