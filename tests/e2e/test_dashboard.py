"""optuna-dashboard as a first-class view, in a real browser: a study the service ran, opened
in ``tuneforge dashboard`` (its own process, on the service's database and data directory),
shows its best trial with short user attributes and with the trained model's files, which
download byte for byte; deleting the study through the API deletes those files.

Headless Debian Chromium through ChromeDriver, every host but 127.0.0.1 unresolvable (the
browser helpers of ``tests/e2e/test_browser.py``). Screenshots are saved in ``tmp_path``.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from search.attrs import MAX_ATTR_JSON
from tests.conftest import Server, finished, wait_for
from tests.e2e.test_browser import WAIT_S, console_errors, screenshot
from tests.e2e.test_browser import browser as browser  # the fixtures, shared
from tests.e2e.test_browser import dashboard as dashboard
from tests.e2e.test_browser import pytestmark as pytestmark  # slow; skipped without Chromium
from tests.service.reports._report import tiny_spec

MODEL_FILES = ["curve.csv", "model.ts", "spec.json", "weights.pt"]


def attributes_shown(driver: WebDriver) -> dict[str, str] | bool:
    """The user attributes on a trial's page, as the page writes them (``key value``, one
    line each); False until they are there. Read from the DOM's text, scrolled or not."""
    rows = driver.find_elements(
        By.XPATH, "//p[normalize-space()='User Attributes']/following-sibling::div[1]//p"
    )
    shown = {}
    for row in rows:
        key, _, value = (row.get_attribute("textContent") or "").partition(" ")
        shown[key] = value
    return shown or False


def test_the_best_trial_in_optuna_dashboard_has_short_attributes_and_its_model(
    server: Server,
    dashboard: Callable[[Server], str],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    wait = WebDriverWait(browser, WAIT_S)
    api = server.api
    created = api.post("/studies", json=tiny_spec(name="dashboard-view"))
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    study = wait_for(api, study_id, finished)
    assert study["status"] == "completed", study
    best = api.get(f"/studies/{study_id}/best").json()
    assert len(best["learning_curve"]) == 3  # the API's answer keeps its whole curve
    assert best["artifacts"] == ["weights", "torchscript", "spec"]
    optuna_name = study["optuna_study_name"]
    model_dir = server.data_dir / "artifacts" / optuna_name / f"trial-{best['number']}"

    dash = dashboard(server)
    studies = httpx.get(f"{dash}/api/studies", timeout=10).json()["study_summaries"]
    (sid,) = [s["study_id"] for s in studies if s["study_name"] == optuna_name]
    # What the dashboard sends its pages: every user attribute of the study and of each of
    # its trials is short (their records stay out of its reach).
    detail = httpx.get(f"{dash}/api/studies/{sid}", params={"after": 0}, timeout=10).json()
    sent = detail["user_attrs"] + [a for t in detail["trials"] for a in t["user_attrs"]]
    assert {a["key"] for a in detail["user_attrs"]} == {"tuneforge_spec", "tuneforge_study_id"}
    too_long = [a for a in sent if len(a["value"]) > MAX_ATTR_JSON]
    assert too_long == []

    # The best trial's page.
    browser.get(f"{dash}/dashboard/studies/{sid}/trials?numbers={best['number']}")
    title = f"Trial {best['number']} (trial_id="
    wait.until(lambda d: any(h.text.startswith(title) for h in d.find_elements(By.TAG_NAME, "h4")))
    shown = wait.until(attributes_shown)
    assert isinstance(shown, dict)
    assert {"seed", "node_id", "epochs", "final_val_accuracy", "best_epoch"} <= set(shown), shown
    assert not {"curve", "final_metrics", "grad_norms", "artifact_uri"} & set(shown), shown
    assert float(shown["final_val_accuracy"]) == best["value"]
    assert shown["epochs"] == "3"
    too_long_shown = {k: v for k, v in shown.items() if len(v) > MAX_ATTR_JSON}
    assert too_long_shown == {}

    # Its model's files, listed under Artifacts with a download link each.
    def links(driver: WebDriver) -> dict[str, str] | bool:
        found = driver.find_elements(By.CSS_SELECTOR, "a[aria-label='download artifact']")
        named = {a.get_attribute("download") or "": a.get_attribute("href") or "" for a in found}
        return named if sorted(named) == MODEL_FILES else False

    downloads: Any = wait.until(links)
    screenshot(
        browser, tmp_path / "dashboard-best-trial.png", full_page=True, docs_name="dashboard.png"
    )
    for name, href in downloads.items():
        assert href.startswith(f"{dash}/artifacts/{sid}/"), href
        got = httpx.get(href, timeout=10)
        assert got.status_code == 200, (name, got.text[:200])
        assert got.content == (model_dir / name).read_bytes(), name
    spec = json.loads(httpx.get(downloads["spec.json"], timeout=10).content)
    assert spec["params"] == best["params"]
    curve = httpx.get(downloads["curve.csv"], timeout=10).text.splitlines()
    assert curve[0].startswith("epoch,") and len(curve) == 1 + 3
    assert console_errors(browser) == []

    # Deleting the study deletes its files from Optuna's artifact store.
    store = server.data_dir / "optuna-artifacts"
    ids = [href.rsplit("/", 1)[1] for href in downloads.values()]
    assert all((store / i).is_file() for i in ids)
    assert api.delete(f"/studies/{study_id}").status_code == 204
    assert [i for i in ids if (store / i).exists()] == []
