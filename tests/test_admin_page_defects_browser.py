"""What trying the admin page found (issue 23, section 6), in Chromium on SQLite and on
PostgreSQL: older decisions stay older, the live feed pauses, the bots' switches stay on a
390 px phone, the skip link is the first Tab, and a switch is confirmed then announced.

The same defects without a browser are in tests/test_admin_page_defects.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import test_admin_browser
from test_admin_browser import Site

#: The browser and the running site of the admin page's browser tests (module-scoped).
driver = test_admin_browser.driver
site = test_admin_browser.site

pytestmark = [pytest.mark.slow, *test_admin_browser.pytestmark[1:]]  # and Chromium's skip

#: More than a page of the live feed (``reads.PAGE_SIZE``).
EVENTS = 60


def _fill(site: Site, prefix: str, count: int) -> None:
    events = [
        {
            "id": f"{prefix}-{n}",
            "kind": "created",
            "record": {"entity": "deal", "id": f"{prefix}-{n}", "owners": []},
        }
        for n in range(count)
    ]
    from test_service import bearer

    answer = site.api.post(
        "/v1/accounts/default/events:batch", json={"events": events}, headers=bearer(site.secrets["events"])
    )
    assert answer.status_code == 200, answer.text


def _first_record(site: Site) -> str:
    from selenium.webdriver.common.by import By

    return str(site.driver.find_element(By.CSS_SELECTOR, "#live-rows tr td:nth-child(3)").text)


def test_older_decisions_stay_older_and_the_live_feed_pauses(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _fill(site, "old", EVENTS)
    site.sign_in("page")
    site.open("/a/default/live")
    newest = _first_record(site)
    assert newest == f"deal old-{EVENTS - 1}"
    site.click_through(site.driver.find_element(By.LINK_TEXT, "Older decisions"))
    older = _first_record(site)
    assert older != newest
    time.sleep(4)  # more than a refresh of the live feed (3 s)
    assert _first_record(site) == older
    assert site.h1() == "Older decisions" and site.driver.find_elements(By.ID, "live-pause") == []

    site.open("/a/default/live")
    pause = site.driver.find_element(By.ID, "live-pause")
    assert (pause.text, pause.get_attribute("aria-pressed")) == ("Pause", "false")
    pause.click()
    assert (pause.text, pause.get_attribute("aria-pressed")) == ("Resume", "true")
    _fill(site, "paused", 1)
    time.sleep(4)
    assert _first_record(site) == newest
    pause.click()
    WebDriverWait(site.driver, 10).until(lambda d: _first_record(site) == "deal paused-0")


def test_on_a_390_px_phone_every_bots_switch_is_on_screen(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.sign_in("page")
    site.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        for path in ("/a/default", "/a/default/bots/inbound"):
            site.open(path)
            width = site.driver.execute_script("return window.innerWidth")
            assert width == 390
            page_width = site.driver.execute_script("return document.documentElement.scrollWidth")
            assert page_width <= width, path
            buttons = site.driver.find_elements(By.CSS_SELECTOR, "form.switch button")
            assert buttons, path
            for button in buttons:
                site.driver.execute_script("arguments[0].scrollIntoView()", button)
                box = site.driver.execute_script(
                    "return arguments[0].getBoundingClientRect().toJSON()", button
                )
                assert button.is_displayed(), path
                assert 0 <= box["left"] and box["right"] <= width, (path, box)
        site.open("/a/default")
        site.screenshot("phone-bots")
    finally:
        site.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_first_tab_reaches_the_skip_link_which_moves_to_the_content(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    site.sign_in("page")
    site.open("/a/default")
    site.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused: Any = site.driver.switch_to.active_element
    assert (focused.text, focused.get_attribute("href")) == ("Skip to content", f"{site.base}/a/default#main")
    assert focused.is_displayed()
    focused.send_keys(Keys.ENTER)
    assert site.driver.switch_to.active_element.get_attribute("id") == "main"


def test_a_bot_switch_is_confirmed_then_announced(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.sign_in("page")
    site.open("/a/default")
    row = site.driver.find_element(By.ID, "bot-dist")
    site.click_through(row.find_element(By.XPATH, ".//button[normalize-space()='Switch off…']"))
    assert site.h1() == "Switch bot Distribution off?"
    site.click_through(site.driver.find_element(By.XPATH, "//button[normalize-space()='Switch off']"))
    assert site.driver.find_element(By.ID, "notice").text.startswith("Bot Distribution switched off")
    assert site.driver.find_element(By.CSS_SELECTOR, "#bot-dist .state").text == "Off"
    row = site.driver.find_element(By.ID, "bot-dist")
    site.click_through(row.find_element(By.XPATH, ".//button[normalize-space()='Switch on…']"))
    site.click_through(site.driver.find_element(By.XPATH, "//button[normalize-space()='Switch on']"))
    assert site.driver.find_element(By.ID, "notice").text.startswith("Bot Distribution switched on")
