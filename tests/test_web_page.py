"""The search page in a real browser: headless Chromium driven by Selenium over chromedriver.

Needs Debian's ``chromium`` and ``chromium-driver`` (the Makefile's test setup installs them);
skipped only when /usr/bin/chromium is absent. A screenshot is always written to the test's tmp
folder, and to ``docs/search-page.png`` when ``CLIPFORGE_SCREENSHOT=1``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from clipforge.search.server import create_app

from search_helpers import known_answer_index, running_server, swatch

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def result_cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#results .result")


def test_search_page_end_to_end(tmp_path, browser):
    from selenium.webdriver.common.by import By

    _, index_dir = known_answer_index(tmp_path)
    app = create_app(index_dir)
    with running_server(app) as url:
        browser.get(url + "/")
        wait_for(browser, lambda d: "12 items" in d.find_element(By.ID, "index-info").text)

        browser.find_element(By.ID, "query-text").send_keys("a red apple")
        browser.find_element(By.ID, "search-button").click()
        wait_for(browser, lambda d: "results for" in d.find_element(By.ID, "status").text)
        cards = result_cards(browser)
        assert len(cards) == 12  # k = 20 > 12 items
        top = cards[0]
        assert top.get_attribute("data-id") == "3"
        assert top.find_element(By.CSS_SELECTOR, ".caption").text == "a red apple"
        assert top.find_element(By.CSS_SELECTOR, ".score").text == "score 1.000"
        wait_for(
            browser,
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#results img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            ),
        )
        browser.save_screenshot(str(tmp_path / "search-page.png"))
        if os.environ.get("CLIPFORGE_SCREENSHOT"):
            docs = Path(__file__).resolve().parents[1] / "docs"
            docs.mkdir(exist_ok=True)
            shutil.copy(tmp_path / "search-page.png", docs / "search-page.png")
        assert (tmp_path / "search-page.png").stat().st_size > 10_000

        # clicking a result searches by that item ("more like this")
        clicked_id = cards[4].get_attribute("data-id")
        cards[4].click()
        wait_for(browser, lambda d: "more like" in d.find_element(By.ID, "status").text)
        assert result_cards(browser)[0].get_attribute("data-id") == clicked_id

        # an uploaded image is searched by its embedding
        swatch("blue").save(tmp_path / "query.png")
        picker = browser.find_element(By.ID, "image-input")
        browser.execute_script("arguments[0].style.display = 'block'", picker)
        picker.send_keys(str(tmp_path / "query.png"))
        wait_for(browser, lambda d: d.find_element(By.ID, "image-preview").is_displayed())
        browser.find_element(By.ID, "query-text").clear()
        browser.find_element(By.ID, "search-button").click()
        wait_for(browser, lambda d: "for the image" in d.find_element(By.ID, "status").text)
        searcher = app.state.searcher
        expected = searcher.search_vector(searcher.encoder.image(swatch("blue")), 1)[0].id
        assert result_cards(browser)[0].get_attribute("data-id") == str(expected)

        # a /?q= address searches on load (shareable links, headless screenshots)
        browser.get(url + "/?q=a%20red%20apple")
        wait_for(browser, lambda d: "results for" in d.find_element(By.ID, "status").text)
        assert result_cards(browser)[0].get_attribute("data-id") == "3"
