"""The web application in headless Chromium (Debian's chromium and chromedriver, driven by selenium), as its users
meet it: `bascule demo --serve` started as a person starts it, agents logging in through the sandbox's ProConnect
login page, a finance agent reading the dashboard and downloading a CSV, a helpdesk agent pasting an old link and
resending one invitation that arrives in the SMTP sink, refusals for the wrong role and for anonymous callers, the
accessibility rules checked on every page the browser shows, and screenshots of the main pages written as artifacts
(BASCULE_TEST_ARTIFACTS, default tests/artifacts)."""

from __future__ import annotations

import csv
import email
import io
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import REPO
from tests.web.test_app import accessibility_problems

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("BASCULE_TEST_ARTIFACTS") or REPO / "tests" / "artifacts") / "screenshots"


def _user_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("BASCULE_", "PREFECT_"))}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServedDemo:
    """`bascule demo --serve` running: its summary, where the web application answers, its files."""

    summary: dict[str, Any]
    url: str
    cwd: Path
    environment: dict[str, str]

    @property
    def spool(self) -> Path:
        return Path(self.summary["where"]["mail_spool"])

    @property
    def database(self) -> Path:
        return Path(self.summary["where"]["database"].removeprefix("sqlite:///"))

    def bascule(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=self.cwd, env=self.environment,
                              text=True, capture_output=True, timeout=300, check=False)


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDemo]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("BASCULE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    cwd = tmp_path_factory.mktemp("demo-serve")
    port = _free_port()
    # The State's look (the DSFR and its charts as browser modules, under the CSP); the neutral theme's pages are
    # checked by test_app.
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "demo", "--agents", "300", "--seed", "11", "--json", "--serve",
         "--port", str(port)], cwd=cwd, env={**_user_environment(), "BASCULE_WEB_THEME": "dsfr"}, text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(process.stderr, err), daemon=True).start()
    said: list[str] = []
    try:
        summary: dict[str, Any] | None = None
        url = ""
        deadline = time.monotonic() + 600
        while not url:
            if process.poll() is not None or time.monotonic() > deadline:
                while not err.empty():
                    said.append(err.get())
                raise AssertionError("bascule demo --serve did not come up:\n" + "".join(said)[-4000:])
            try:
                line = out.get(timeout=0.2)
                if line.startswith("{"):
                    summary = json.loads(line)
            except queue.Empty:
                pass
            while not err.empty():
                said.append(line := err.get())
                if match := re.match(r"\s+dashboard\s+(http://\S+)/finance", line):
                    url = match.group(1)
        assert summary is not None, "no JSON summary on stdout"
        assert url == f"http://127.0.0.1:{port}", url  # the port asked for, since it was free
        environment = _user_environment()
        for line in Path(summary["where"]["environment"]).read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                environment[name] = value
        yield ServedDemo(summary, url, cwd, environment)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(demo: ServedDemo) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800",
                     "--lang=fr-FR", "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # CSP, SRI and script errors
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, name: str) -> Path:
    """NAME.png (the window, what an agent sees first) and NAME-full.png (the whole page: the dashboard is long)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    if height > 1800:
        driver.set_window_size(1280, min(height, 12000))
        assert driver.save_screenshot(str(ARTIFACTS / f"{name}-full.png"))
        driver.set_window_size(1280, 1800)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def _accessible(driver: Any) -> None:
    """The checks of test_app on the DOM the browser built, plus what only a browser knows: every form control has
    an accessible name, and nothing the page loads is refused (CSP, SRI) or fails."""
    # (the browser logs each page answered 403 or 404 too; the tests open some on purpose)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
              and not re.search(r"status of 40[34]", entry["message"])]
    assert not errors, (driver.current_url, errors)
    problems = accessibility_problems(driver.page_source)
    unnamed = driver.execute_script("""
        return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby') && !e.title)
          .map(e => e.id || e.name);""")
    assert not problems and not unnamed, (driver.current_url, problems, unnamed)
    assert driver.execute_script("return document.documentElement.lang") == "fr"
    assert driver.title.strip()


def _login(driver: Any, demo: ServedDemo, path: str, agent_email: str) -> None:
    """Open `path` anonymously: the app sends the browser to ProConnect; choose the agent on its login page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(demo.url + path)
    WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "form#agents")))
    assert "/proconnect/api/v2/interaction/" in driver.current_url, driver.current_url
    driver.find_element(By.CSS_SELECTOR, f'form#agents button[data-email="{agent_email}"]').click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(demo.url + path))


def _wait_for(driver: Any, selector: str) -> Any:
    """The element once the page that holds it has loaded (a click that submits a form returns before)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                                          selector)))


def _cookies(driver: Any) -> dict[str, str]:
    return {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}


def test_an_anonymous_caller_is_sent_to_the_proconnect_login(demo: ServedDemo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(demo.url + "/finance")
    assert "/proconnect/api/v2/interaction/" in browser.current_url
    listed = [button.get_attribute("data-email") for button in
              browser.find_elements(By.CSS_SELECTOR, "form#agents button[data-email]")]
    assert set(demo.summary["web"]["agents"].values()) <= set(listed)  # the demo's agents head the list
    _shot(browser, "proconnect-login")
    browser.get(demo.url + "/")
    _accessible(browser)
    _shot(browser, "home-anonymous")
    anonymous_api = httpx.get(demo.url + "/api/savings", timeout=10)
    assert anonymous_api.status_code == 401


def test_finance_sees_the_report_s_figures_and_downloads_a_csv_that_adds_up(demo: ServedDemo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    finance = demo.summary["web"]["agents"]["finance"]
    _login(browser, demo, "/finance", finance)
    assert urlsplit(browser.current_url).path == "/finance"
    _accessible(browser)
    _shot(browser, "finance-dashboard")
    shown = {cell.get_attribute("data-figure"): cell.get_attribute("data-value")
             for cell in browser.find_elements(By.CSS_SELECTOR, "#headline-table [data-figure]")}
    month = browser.find_element(By.CSS_SELECTOR, "#month option[selected]").get_attribute("value")
    report = demo.bascule("savings", "report", "--tenant", demo.summary["where"]["tenant_file"], "--month", month,
                          "--json")
    assert report.returncode == 0, report.stderr[-3000:]
    headline = json.loads(report.stdout)["headline"]
    for figure in ("potential_annual", "stranded", "realised_run_rate", "net", "benchmark_annual"):
        assert Decimal(shown[figure]) == Decimal(str(headline[figure])), figure
    assert int(shown["reclaimed_seats"]) == headline["reclaimed_seats"] == demo.summary["savings"]["reclaimed_seats"]
    # The charts are dsfr-chart's custom elements, defined (their module loaded under the CSP and its SRI hash) and
    # drawn; each is followed by its table (checked by _accessible).
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart bar-chart, figure.chart line-chart")
    assert len(charts) >= 5
    assert browser.execute_script("return !!customElements.get('bar-chart') && !!customElements.get('line-chart')")
    assert browser.execute_script("return arguments[0].shadowRoot !== null || arguments[0].children.length > 0",
                                  charts[0])
    # The CSV link the page offers, downloaded with the agent's session.
    link = browser.find_element(By.CSS_SELECTOR, 'a[href*="/finance/export/by-tool.csv"]').get_attribute("href")
    answer = httpx.get(link, cookies=_cookies(browser), timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and sum(Decimal(row["potential_annual"]) for row in rows) == Decimal(str(headline["potential_annual"]))
    assert sum(Decimal(row["stranded"]) for row in rows) == Decimal(str(headline["stranded"]))
    for page in ("/console",):   # finance holds no migration role
        browser.get(demo.url + page)
        assert "403" in browser.title or "Accès refusé" in browser.page_source


def _moved_and_mailed(database: Path) -> tuple[str, str, str]:
    """(old URL, Visio URL, organiser) of a Zoom or Webex meeting the demo's wave moved and sent an update for."""
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "select l.old_url, r.url, r.owner_email from link l join room r on r.id = l.room_id "
            "join plan_action a on a.platform = l.platform and a.meeting_external_id = l.meeting_external_id "
            "  and a.wave_id = l.wave_id and a.kind = 'send_invitation' "
            "join notification n on n.action_key = a.idempotency_key and n.state = 'sent' "
            "where l.status = 'mapped' and l.platform in ('zoom', 'webex') order by l.id limit 1").fetchone()
    assert row is not None, "the demo's wave sent no calendar update for a Zoom or Webex meeting"
    return str(row[0]), str(row[1]), str(row[2])


def test_helpdesk_finds_the_visio_link_and_resends_one_invitation(demo: ServedDemo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    old_url, visio_url, attendee = _moved_and_mailed(demo.database)
    helpdesk = demo.summary["web"]["agents"]["helpdesk"]
    _login(browser, demo, "/helpdesk", helpdesk)
    box = browser.find_element(By.ID, "q")
    box.send_keys(old_url)
    browser.find_element(By.ID, "search").click()
    found = _wait_for(browser, "#result a.visio-url")
    assert found.get_attribute("href") == visio_url
    _accessible(browser)
    _shot(browser, "helpdesk-result")
    before = set(demo.spool.glob("*.eml"))
    form = browser.find_element(By.CSS_SELECTOR, "form.resend-form")
    form.find_element(By.CSS_SELECTOR, "input[type=email]").send_keys(attendee)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert _wait_for(browser, "#resent").text
    _shot(browser, "helpdesk-resent")
    deadline = time.monotonic() + 20
    while not (arrived := set(demo.spool.glob("*.eml")) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(arrived) == 1, arrived
    message = email.message_from_bytes(next(iter(arrived)).read_bytes(), policy=policy.default)
    assert message.get_all("X-Original-To") == [attendee]     # the envelope: that address only
    assert visio_url in message.as_string().replace("=\n", "")
    # The helpdesk role opens neither the finance pages nor the finance API.
    browser.get(demo.url + "/finance")
    assert "Accès refusé" in browser.page_source
    _accessible(browser)
    api = httpx.get(demo.url + "/api/savings", cookies=_cookies(browser), timeout=10)
    assert api.status_code == 403


def test_the_migration_console_and_logout(demo: ServedDemo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    migration = demo.summary["web"]["agents"]["migration"]
    _login(browser, demo, "/console", migration)
    assert demo.summary["wave"]["name"] in browser.page_source
    _accessible(browser)
    _shot(browser, "console")
    # The wave's page: how each series reaches its attendees, as `bascule demo --json` counted it.
    browser.get(f"{demo.url}/console/waves/{demo.summary['wave']['name']}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#table-channels tbody tr")
    shown = {row.get_attribute("data-channel"): int(row.find_element(By.TAG_NAME, "td").text.replace("\u202f", "")
                                                    .replace(" ", "").replace("\xa0", "")) for row in rows}
    assert shown == demo.summary["wave"]["series_by_channel"] and shown["calendar_in_place"] > 0
    _accessible(browser)
    _shot(browser, "wave")
    browser.find_element(By.ID, "logout").click()
    deadline = time.monotonic() + 20
    while "logged_out=1" not in browser.current_url and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.current_url.startswith(demo.url + "/?logged_out=1")
    browser.get(demo.url + "/console")
    assert "/proconnect/api/v2/interaction/" in browser.current_url  # the session is gone
