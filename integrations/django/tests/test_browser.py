"""The seed's story in Chromium, through Django CRM's own admin pages: a sales manager
signs in, opens a deal, picks "Sales Bot: Inbound leads" in its Owner field and saves;
the deal page then shows Anna as owner, the bot's tag and one office memo. The
screenshots are the ones docs/django.md shows.

Chromium is driven as the admin page's browser tests drive it (``tests/admin_site.py``:
Debian's chromium and chromedriver, headless, a fresh profile).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_django_crm import BOT, bot, deal, owner_of, user

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "docs" / "img"


@pytest.fixture
def live(crm: Path) -> Iterator[str]:
    """Django CRM served on a loopback port (with its static files), until the test ends."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.terminate()


@pytest.fixture
def chromium() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from admin_site import browser
    finally:
        sys.path.remove(str(ROOT / "tests"))
    with browser() as driver:
        yield driver


def test_a_manager_picks_the_bot_as_owner_in_chromium(live: str, chromium: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    manager = user("IamGlobalSALES")
    manager.set_password("sales-manager-pass")
    manager.save()
    bot()
    offer = deal("Warsztat: fleet service", manager)
    page = f"{live}/en/123/crm/deal/{offer.pk}/change/"
    chromium.get(f"{live}/en/123/789-login/?next=/en/123/crm/deal/{offer.pk}/change/")  # its sign-in page
    chromium.find_element(By.NAME, "username").send_keys("IamGlobalSALES")
    chromium.find_element(By.NAME, "password").send_keys("sales-manager-pass")
    chromium.find_element(By.CSS_SELECTOR, "[type=submit]").click()
    assert chromium.current_url == page
    field = chromium.find_element(By.NAME, "owner")
    open_section(chromium, field)
    Select(field).select_by_visible_text(BOT)
    chromium.save_screenshot(str(IMAGES / "django-crm-owner.png"))
    chromium.find_element(By.NAME, "_save").click()
    # Saved: Django CRM goes back to the list of deals.
    WebDriverWait(chromium, 30).until(lambda driver: driver.current_url != page)
    assert chromium.current_url == f"{live}/en/123/crm/deal/"
    assert owner_of(offer) == "anna"
    chromium.get(page)
    shown = chromium.find_element(By.CSS_SELECTOR, ".field-owner .readonly")
    open_section(chromium, shown)
    chromium.save_screenshot(str(IMAGES / "django-crm-assigned.png"))
    assert shown.text == "anna"
    # The tags are on the page, in a section the manager has not opened.
    tags = chromium.find_elements(By.CSS_SELECTOR, ".field-tags .readonly")
    assert {tag.get_attribute("textContent").replace("local_offer", "").strip() for tag in tags} == {
        "inbound-bot"
    }
    assert "OFFICE MEMOS (1)" in chromium.find_element(By.CSS_SELECTOR, ".object-tools").text.upper()


def open_section(driver: Any, element: Any) -> None:
    """Open the collapsed section of the form holding ``element``, as a user does, and
    bring it into view."""
    from selenium.webdriver.common.by import By

    summary = element.find_element(By.XPATH, "ancestor::details/summary")
    driver.execute_script("arguments[0].scrollIntoView()", summary)
    summary.click()
