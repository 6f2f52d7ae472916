"""The overview page in a real headless Chromium (Debian's chromium + chromedriver)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

from testkit.remote import Remote

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with JavaScript off: the page must work without it."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_the_overview_shows_deployments_queues_locks_and_releases(
    start_server,
    bare_remote: Remote,
    tmp_path: Path,
    browser: webdriver.Chrome,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bare_remote.push_files(
        tmp_path,
        {
            "environments/development/config.json": '{"upstream":{"latest":true}}',
            "environments/staging/config.json": "{}",
        },
    )
    server = start_server(bare_remote)
    assert (
        server.release(
            "payments",
            {"development": "a: 1", "staging": "a: 1"},
            fields={"team": "pay", "display_version": "v1.0"},
        ).status_code
        == 201
    )
    assert (
        requests.put(
            f"{server.url}/environments/development/applications/search/locks/hold",
            json={"message": "incident"},
            timeout=30,
        ).status_code
        == 201
    )
    assert (
        server.release("search", {"development": "b: 1"}, fields={"team": "find"}).status_code
        == 201
    )

    browser.get(server.url + "/")
    assert browser.title == "kuberpult-lite: releases"
    table = browser.find_elements(By.TAG_NAME, "table")[0]
    rows = {
        row.find_element(By.TAG_NAME, "th").text.split("\n")[0]: row
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert set(rows) == {"payments", "search"}
    payments = rows["payments"].find_elements(By.TAG_NAME, "td")
    assert payments[0].text.startswith("1 (v1.0)")  # development, auto-deployed
    assert payments[1].text == "–"  # staging: not an upstream-latest environment
    search = rows["search"].find_elements(By.TAG_NAME, "td")[0].text
    assert "queued 1" in search and "locked: hold" in search
    latest = browser.find_elements(By.TAG_NAME, "table")[1].text
    assert "payments" in latest and "search" in latest and "pushed" in latest

    screenshots = tmp_path_factory.getbasetemp() / "screenshots"
    screenshots.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(screenshots / "overview.png"))
    assert (screenshots / "overview.png").stat().st_size > 10_000

    # The team filter is a plain form: it works without JavaScript.
    Select(browser.find_element(By.ID, "team")).select_by_value("pay")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 10).until(lambda driver: driver.current_url.endswith("/?team=pay"))
    filtered = browser.find_elements(By.TAG_NAME, "table")[0].text
    assert "payments" in filtered and "search" not in filtered
