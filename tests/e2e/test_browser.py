"""In a real browser: headless Debian Chromium, driven through selenium, shows what tuneforge
wrote. optuna-dashboard (its own process, on the service's database) lists a study the service
ran, with every trial and its state; the study's report, opened from disk, draws every plot it
promises with no JavaScript error.

Screenshots of each page are saved in the test's ``tmp_path``.
"""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import Server, finished, free_port, wait_for
from tests.service.reports._report import SINGLE_PLOTS, tiny_spec

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_missing),
        reason=f"needs Debian's Chromium and ChromeDriver (`make browser`): no {_missing}",
    ),
]

# Without the background-networking flags Chromium keeps calling Google's services, which
# on a closed network means a flood of failing connections. Every host but 127.0.0.1 resolves
# to nothing: the pages under test must work with no outside host, and the test reaches none.
CHROMIUM_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]
WAIT_S = 30
# optuna-dashboard's names for Optuna's trial states.
DASHBOARD_STATES = {
    "COMPLETE": "Complete",
    "FAIL": "Fail",
    "PRUNED": "Pruned",
    "RUNNING": "Running",
    "WAITING": "Waiting",
}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile; its console log is readable (``get_log``)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Callable[[Server], str]]:
    """Start ``tuneforge dashboard`` on a server's database; stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(server: Server) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / "dashboard.log"
        env = {
            **os.environ,
            "TUNEFORGE_DATABASE_URL": server.database_url,
            "TUNEFORGE_DATA_DIR": str(server.data_dir),
        }
        cmd = [sys.executable, "-m", "service.cli", "dashboard"]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*cmd, "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited ({proc.returncode}): {log_path.read_text()}")
            try:
                if httpx.get(f"{url}/api/studies", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"dashboard did not answer at {url}: {log_path.read_text()}")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The console's errors since the last call (reading the log empties it)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: WebDriver, path: Path, full_page: bool = False, docs_name: str = "") -> None:
    """Save the page as ``path``. With ``docs_name`` and ``TUNEFORGE_SCREENSHOTS`` set (``make
    screenshots``), also a 1400 by 1200 view of its top as that file in that folder: the docs'
    images."""
    docs_dir = os.environ.get("TUNEFORGE_SCREENSHOTS")
    if docs_name and docs_dir:
        driver.set_window_size(1400, 1200)
        assert driver.save_screenshot(str(Path(docs_dir) / docs_name)), docs_name
        driver.set_window_size(1400, 1000)
    if full_page:  # headless Chromium shoots the window: make it as tall as the page
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 100, 16000))
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(1400, 1000)


def test_dashboard_and_report_in_a_real_browser(
    shared_server: Server,
    dashboard: Callable[[Server], str],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    wait = WebDriverWait(browser, WAIT_S)
    # The console log can be read here at all: an error of our own shows up in it.
    browser.execute_script("console.error('tuneforge-probe')")
    assert any("tuneforge-probe" in e["message"] for e in console_errors(browser))

    server = shared_server
    api = server.api
    spec = tiny_spec(name="browser-e2e")
    created = api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    study = wait_for(api, study_id, finished)
    assert study["status"] == "completed", study
    trials = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert len(trials) == spec["budget"]["max_trials"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == len(trials), trials  # every trial of this study trains fine
    best = api.get(f"/studies/{study_id}/best").json()
    optuna_name = study["optuna_study_name"]

    # optuna-dashboard: its home page lists the study by its Optuna name; open it.
    dash = dashboard(server)
    browser.get(f"{dash}/dashboard")

    def study_link(driver: WebDriver) -> Any:
        links = driver.find_elements(By.CSS_SELECTOR, "a[href*='/dashboard/studies/']")
        return next((a for a in links if optuna_name in a.text), False)

    link = wait.until(study_link)
    href = link.get_attribute("href") or ""
    assert re.fullmatch(rf"{re.escape(dash)}/dashboard/studies/\d+", href), href
    screenshot(browser, tmp_path / "dashboard-home.png")
    link.click()
    wait.until(lambda d: d.current_url == href)
    wait.until(lambda d: optuna_name in d.find_element(By.TAG_NAME, "body").text)
    # The study page draws its charts (history, importances, ...) with plotly too.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg"))
    screenshot(browser, tmp_path / "dashboard-study.png")

    # Its trial list: every trial, with its state, and the best one marked.
    browser.get(f"{href}/trials")
    wait.until(lambda d: f"{len(trials)} Trials" in d.find_element(By.TAG_NAME, "body").text)

    def listed(driver: WebDriver) -> Any:
        items = [li.text.splitlines() for li in driver.find_elements(By.CSS_SELECTOR, "li")]
        rows = {
            int(m[1]): lines[1:]
            for lines in items
            if lines and (m := re.fullmatch(r"Trial (\d+)", lines[0]))
        }
        return rows if len(rows) == len(trials) else False

    rows = wait.until(listed)
    for t in trials:
        shown = rows[t["number"]]
        assert shown[0] == DASHBOARD_STATES[t["state"]], (t["number"], shown)
        assert ("Best Trial" in shown) == (t["number"] == best["number"]), (t["number"], shown)
    # The best trial's page: its value and the service's user attributes.
    browser.get(f"{href}/trials?numbers={best['number']}")
    title = f"Trial {best['number']} (trial_id="
    wait.until(lambda d: any(h.text.startswith(title) for h in d.find_elements(By.TAG_NAME, "h4")))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert repr(best["value"]) in body
    for key in ("node_id", "seed"):
        assert key in body
    screenshot(browser, tmp_path / "dashboard-trials.png")
    assert console_errors(browser) == []

    # The report, fetched with the API key and opened from disk.
    resp = api.get(f"/studies/{study_id}/report")
    assert resp.status_code == 200, resp.text[:2000]
    report = tmp_path / "report.html"
    report.write_text(resp.text, encoding="utf-8")
    browser.get(report.as_uri())
    promised = int(
        browser.find_element(By.CSS_SELECTOR, "main.tf-report").get_attribute("data-plot-count")
        or "-1"
    )
    assert promised == len(SINGLE_PLOTS)
    plots = browser.find_elements(By.CSS_SELECTOR, "div.tf-plot")
    assert [p.get_attribute("data-plot") for p in plots] == SINGLE_PLOTS

    # Plotly.newPlot gives its div the class js-plotly-plot and draws into svg.main-svg.
    wait.until(
        lambda d: all(
            p.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg") for p in plots
        )
    )
    for plot in plots:
        assert len(plot.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) == 1
    by_name = {p.get_attribute("data-plot"): p for p in plots}
    params = sorted(spec["search_space"])
    # The data made it into the drawings: one marker per completed trial in the history, one
    # line per trial in the intermediate values, one bar per parameter, one line per metric.
    history = by_name["optimization-history"]
    assert len(history.find_elements(By.CSS_SELECTOR, ".scatterlayer .point")) == len(complete)
    intermediate = by_name["intermediate-values"]
    assert len(intermediate.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")) == len(complete)
    for name in params:
        assert name in by_name["parallel-coordinate"].text
        assert name in by_name["param-importances"].text
    assert len(by_name["param-importances"].find_elements(By.CSS_SELECTOR, ".bars .point")) == len(
        params
    )
    metrics = best["learning_curve"][0]["metrics"]
    curves = by_name["learning-curves"]
    assert len(curves.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")) == len(metrics)
    # No button sends the study's data to Plotly Cloud (plotly.js 3 shows one by default).
    titles = {
        b.get_attribute("data-title")
        for b in browser.find_elements(By.CSS_SELECTOR, ".modebar-btn")
    }
    assert "Download plot as a PNG" in titles and "Share chart..." not in titles
    screenshot(browser, tmp_path / "report.png", full_page=True, docs_name="report.png")
    assert console_errors(browser) == []


def test_api_docs_render_with_no_outside_host(
    browser: WebDriver, shared_server: Server, tmp_path: Path
) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc) load their scripts from the service itself: with
    every host but 127.0.0.1 unresolvable, both render the API's operations and the page's
    word on authentication."""
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(f"{shared_server.url}/docs")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/v1/studies", "/api/v1/studies/{study_id}", "/api/v1/quota"} <= paths, paths
    assert "Authentication" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.CSS_SELECTOR, ".btn.authorize")
    screenshot(browser, tmp_path / "docs.png")
    assert console_errors(browser) == []

    browser.get(f"{shared_server.url}/redoc")
    wait.until(lambda d: "Upload Dataset" in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Create Study" in text and "Authentication" in text
    screenshot(browser, tmp_path / "redoc.png")
    # ReDoc's "API docs by Redocly" footer badge is an image on Redocly's CDN (no option in
    # ReDoc turns it off): the one request the page makes outside, and it needs none of it.
    badge = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [e for e in console_errors(browser) if badge not in e["message"]] == []
