"""Study reports through the API: ``GET .../report`` end to end through a real server (real
Ray, real training, SQLite), and the route's OpenAPI document (HTML, errors as JSON)."""

from pathlib import Path

import pytest

from service.app import create_app
from service.config import Settings
from tests.conftest import Server, finished, wait_for
from tests.service.reports._report import SINGLE_PLOTS, Page, tiny_spec

# set_metric_names is how the service names objectives (see crud.create_study).
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.mark.slow
def test_the_report_route_serves_a_finished_studys_report(shared_server: Server) -> None:
    api = shared_server.api
    created = api.post("/studies", json=tiny_spec())
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    study = wait_for(api, study_id, finished)
    assert study["status"] == "completed", study
    assert study["trial_counts"]["COMPLETE"] == 3, study

    resp = api.get(f"/studies/{study_id}/report")
    assert resp.status_code == 200, resp.text[:2000]
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    html = resp.text
    assert html.startswith("<!DOCTYPE html>")
    page = Page(html)
    assert page.plots == SINGLE_PLOTS
    assert page.plot_count == len(SINGLE_PLOTS)
    assert page.notes == [] and page.urls == []
    assert "report-e2e" in page.text and "completed (max_trials reached)" in page.text
    assert study["optuna_study_name"] in page.text
    assert "3 (COMPLETE 3)" in page.text
    assert f"{study['best_value']:.6g}" in page.text
    # The curves are the best trial's, one line per metric it recorded.
    best = api.get(f"/studies/{study_id}/best").json()
    assert f"Trial {best['number']}." in page.text
    metrics = list(best["learning_curve"][0]["metrics"])
    curves = next(s for s in page.scripts if f'"tf-plot-{len(SINGLE_PLOTS)}"' in s)
    assert curves.count('"mode":"lines+markers"') == len(metrics)
    for metric in metrics:
        assert f'"name":"{metric}"' in curves

    missing = api.get("/studies/999999/report")
    assert missing.status_code == 404 and missing.json() == {"detail": "study 999999 not found"}


def test_the_route_documents_html_and_its_errors_as_json(tmp_path: Path) -> None:
    # FastAPI documents a route's error models with the route's media type; these are JSON.
    app = create_app(Settings(data_dir=tmp_path, run_scheduler=False))
    responses = app.openapi()["paths"]["/api/v1/studies/{study_id}/report"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["text/html"]
    for code in ("401", "404", "413", "422"):
        assert list(responses[code]["content"]) == ["application/json"], code
