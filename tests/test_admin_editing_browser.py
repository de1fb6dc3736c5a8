"""The bot form in Chromium: the live preview of a wall note rendered by the server as it
is typed (the page's own script, under the strict CSP), and the screenshots of the form
and the history that docs/admin.md shows (``docs/img/bot-form.png``, ``history.png``)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from admin_site import browser, make_tokens, publish_rules
from test_service import serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None or shutil.which("chromedriver") is None,
        reason="the browser tests need Debian's chromium and chromium-driver",
    ),
]

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"


def test_the_wall_note_preview_follows_the_typing_and_the_pages_are_pictured(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    db = str(tmp_path / "salesbot.db")
    publish_rules(db)
    secrets = make_tokens(db)
    with contextlib.contextmanager(serve)(tmp_path / "none", db, tmp_path, "--rules-from", "store") as api:
        base = str(api.base_url).rstrip("/")
        with browser() as driver:
            driver.get(base + "/signin")
            driver.find_element(By.ID, "token").send_keys(secrets["page"])
            driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button").click()
            WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Accounts")
            driver.get(base + "/a/default/bots/inbound/edit")
            note = driver.find_element(By.ID, "note")
            note.send_keys("Assigned to {owner.name}: {record.title}")
            WebDriverWait(driver, 10).until(
                lambda d: d.find_element(By.ID, "note-preview").text == "Assigned to Anna Nowak: Sample deal"
            )
            driver.find_element(By.ID, "message").send_keys("a wall note for inbound")
            IMAGES.mkdir(exist_ok=True)
            driver.save_screenshot(str(IMAGES / "bot-form.png"))
            driver.find_element(By.CSS_SELECTOR, "button[value=publish]").click()
            WebDriverWait(driver, 10).until(
                lambda d: "Published version 2" in d.find_element(By.ID, "notice").text
            )
            driver.save_screenshot(str(IMAGES / "history.png"))
