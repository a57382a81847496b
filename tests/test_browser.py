"""The search page at `/` in a real headless Chromium (Debian's `chromium` and `chromium-driver`).

Type a query and the API key, press Enter, and read the results the way a person would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browsing import chromium, needs_chromium
from tests.serving import ADMIN_KEY, serving_samples

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_samples(tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def search_page(browser: object, base: str, query: str, key: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(base + "/")
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "query").send_keys(query, Keys.ENTER)


def status_after_search(browser: object) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.text and status.text != "Searching…")
    return status.text


def test_a_query_shows_ranked_results_with_source_breadcrumb_and_score(browser: object, base: str) -> None:
    from selenium.webdriver.common.by import By

    search_page(browser, base, "how often should tomatoes be watered", ADMIN_KEY)
    assert status_after_search(browser) == "3 results"
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    first = hits[0]
    assert first.find_element(By.CLASS_NAME, "source").text.endswith("gardening.txt")
    assert first.find_element(By.CLASS_NAME, "breadcrumb").text == "Growing tomatoes"
    assert "water them deeply twice a week" in first.find_element(By.CLASS_NAME, "text").text
    scores = [float(hit.find_element(By.CLASS_NAME, "score").text) for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[0] <= 1


def test_a_wrong_key_shows_the_servers_refusal(browser: object, base: str) -> None:
    from selenium.webdriver.common.by import By

    search_page(browser, base, "tomatoes", "not-the-right-key-at-all")
    assert status_after_search(browser) == "Search failed: 401: unknown API key"
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == []


def test_section_text_is_shown_as_text_never_run_as_html(browser: object, base: str) -> None:
    """Documents are untrusted: markup in a section must appear literally, not become elements."""
    import time

    import httpx
    from selenium.webdriver.common.by import By

    hostile = b"Phishing notice <img src=x onerror=\"document.title='owned'\"> about tomatoes watering."
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    job = httpx.post(f"{base}/v1/ingest", files={"file": ("hostile.txt", hostile)}, headers=headers).json()
    while job["status"] not in ("succeeded", "failed"):
        time.sleep(0.2)
        job = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job

    search_page(browser, base, "phishing notice", ADMIN_KEY)
    status_after_search(browser)
    first = browser.find_element(By.CSS_SELECTOR, "#results .hit")
    assert "<img src=x" in first.find_element(By.CLASS_NAME, "text").text
    assert first.find_elements(By.TAG_NAME, "img") == []
    assert browser.title == "ragkit search"
