"""The web dashboard in a real headless Chromium (Debian's chromium and chromium-driver).

The server runs a real job while the browser watches it: the job page's
graph and status change on screen, and its buttons pause, resume and
cancel it.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    FAILING_FLOW,
    QUICK_FLOW,
    SLOW_FLOW,
    SLOW_ROUTINES,
    SUMS_FLOW,
    TASKS_MODULE,
    write,
)
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from server_support import serving

from flowforge.server import create_app
from flowforge.store import SQLiteStore

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"
    ),
]
TOKEN = "dash-token"


class Site:
    """The server under test: its base URL, and API calls with the token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The server, with the slow (3 s), quick, failing and sums (tasks) flows and two workers."""
    directory = tmp_path_factory.mktemp("dash")
    write(directory, "slow_notes.py", SLOW_ROUTINES)
    write(directory, "slow.yaml", SLOW_FLOW % list(range(60)))
    write(directory, "quick.yaml", QUICK_FLOW)
    write(directory, "failing.yaml", FAILING_FLOW)
    write(directory, "server_tasks.py", TASKS_MODULE)
    write(directory, "sums.yaml", SUMS_FLOW)
    store = SQLiteStore(directory / "jobs.db", lease_seconds=5, durability="activation")
    with serving(create_app(store, [directory], TOKEN, workers=2, poll=0.05)) as port:
        yield Site(port)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def logged_in(site: Site, browser: webdriver.Chrome) -> webdriver.Chrome:
    """The browser with the token cookie set."""
    browser.get(site.base + "/api/health")
    browser.add_cookie({"name": "flowforge_token", "value": TOKEN, "path": "/"})
    return browser


def until(browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any]) -> Any:
    """Wait for ``condition`` to hold on the page (the test's timeout bounds it)."""
    try:
        return WebDriverWait(browser, 40, poll_frequency=0.05).until(condition)
    except TimeoutException:
        page = browser.find_element(By.TAG_NAME, "main").text
        raise AssertionError(f"the page never got there; it shows:\n{page}") from None


def text_of(browser: webdriver.Chrome, selector: str) -> str:
    """The text of the first element ``selector`` finds ("" if none, or if it was just redrawn)."""
    try:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def test_the_login_form_sets_the_token_and_shows_the_jobs(
    site: Site, browser: webdriver.Chrome
) -> None:
    """Without the cookie the page asks for the token; with it, the jobs table lists jobs."""
    browser.delete_all_cookies()
    job_id = site.post("/api/flows/quick/jobs", {})["job_id"]
    browser.get(site.base + "/")
    until(browser, lambda b: b.find_elements(By.ID, "token"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-button").click()
    row = f"#jobs tr[data-job='{job_id}']"
    until(browser, lambda b: "completed" in text_of(b, row))
    assert "quick" in text_of(browser, row)


def test_the_jobs_table_filters_by_status(site: Site, logged_in: webdriver.Chrome) -> None:
    """Choosing a status leaves only jobs with that status in the table."""
    failed = site.post("/api/flows/failing/jobs", {})["job_id"]
    logged_in.get(site.base + "/")
    until(logged_in, lambda b: "failed" in text_of(b, f"#jobs tr[data-job='{failed}']"))
    Select(logged_in.find_element(By.ID, "filter-status")).select_by_value("failed")

    def only_failed(browser: webdriver.Chrome) -> bool:
        rows = text_of(browser, "#jobs tbody").splitlines()
        return bool(rows) and all(" failing failed " in row for row in rows)

    until(logged_in, only_failed)


def test_the_jobs_table_filters_by_flow(site: Site, logged_in: webdriver.Chrome) -> None:
    """Choosing a flow leaves only that flow's jobs in the table."""
    quick = site.post("/api/flows/quick/jobs", {})["job_id"]
    site.post("/api/flows/failing/jobs", {})
    logged_in.get(site.base + "/")
    until(logged_in, lambda b: "completed" in text_of(b, f"#jobs tr[data-job='{quick}']"))
    Select(logged_in.find_element(By.ID, "filter-flow")).select_by_value("quick")

    def only_quick(browser: webdriver.Chrome) -> bool:
        rows = text_of(browser, "#jobs tbody").splitlines()
        return bool(rows) and all(" quick " in row for row in rows)

    until(logged_in, only_quick)


def test_a_job_page_shows_the_task_outputs_and_the_history(
    site: Site, logged_in: webdriver.Chrome
) -> None:
    """A job of tasks shows each task's output, and what its routines emitted."""
    job_id = site.post("/api/flows/sums/jobs", {"params": {"n": 3}})["job_id"]
    logged_in.get(f"{site.base}/jobs/{job_id}")
    until(logged_in, lambda b: text_of(b, "#job-status") == "completed")
    until(logged_in, lambda b: '"total": 3' in text_of(b, "#outputs"))
    assert '"numbers": [' in text_of(logged_in, "#outputs")
    until(
        logged_in,
        lambda b: "numbers" in text_of(b, "#history") and "total" in text_of(b, "#history"),
    )


def test_a_live_job_changes_on_screen_and_obeys_the_buttons(
    site: Site, logged_in: webdriver.Chrome
) -> None:
    """The graph and status follow a running job; pause, resume and cancel act on it."""
    job_id = site.post("/api/flows/slow/jobs", {})["job_id"]
    logged_in.get(f"{site.base}/jobs/{job_id}")
    until(logged_in, lambda b: text_of(b, "#job-status") == "running")
    node = "#node-note"
    first = until(logged_in, lambda b: "calls" in text_of(b, node) and text_of(b, node))
    until(logged_in, lambda b: text_of(b, node) not in ("", first))
    logged_in.find_element(By.ID, "pause").click()
    until(logged_in, lambda b: text_of(b, "#job-status") == "paused")
    logged_in.find_element(By.ID, "pause").click()
    until(logged_in, lambda b: "it is paused" in text_of(b, "#message"))
    logged_in.find_element(By.ID, "resume").click()
    until(logged_in, lambda b: text_of(b, "#job-status") in ("queued", "running"))
    logged_in.find_element(By.ID, "cancel").click()
    until(logged_in, lambda b: text_of(b, "#job-status") == "cancelled")


def test_a_job_page_shows_errors_with_tracebacks(site: Site, logged_in: webdriver.Chrome) -> None:
    """A failing job's page lists the routine failures with their tracebacks."""
    job_id = site.post("/api/flows/failing/jobs", {})["job_id"]
    logged_in.get(f"{site.base}/jobs/{job_id}")
    until(logged_in, lambda b: "Traceback" in text_of(b, "#errors .traceback"))
    assert "flaky" in text_of(logged_in, "#errors")
    assert logged_in.find_element(By.ID, "node-flaky").get_attribute("data-status")


def test_the_flows_page_draws_the_graph_and_starts_a_job(
    site: Site, logged_in: webdriver.Chrome, tmp_path: Path
) -> None:
    """The flow's page draws its routines; its form starts a job and opens its page."""
    logged_in.get(f"{site.base}/flows/quick")
    until(logged_in, lambda b: b.find_elements(By.ID, "node-double"))
    assert len(logged_in.find_elements(By.CSS_SELECTOR, "svg .edge")) == 2
    params = logged_in.find_element(By.ID, "params-quick")
    params.clear()
    params.send_keys('{"values": [7]}')
    logged_in.find_element(By.ID, "start-quick").click()
    until(logged_in, lambda b: "/jobs/" in b.current_url)
    until(logged_in, lambda b: text_of(b, "#job-status") == "completed")
    assert "1 calls" in text_of(logged_in, "#node-double")
