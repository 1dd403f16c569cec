"""Ensembles end to end (issue 17): a study trains real networks on Ray, then the API builds an
ensemble of its 5 best whose validation NLL is below the best single model's, exported as one
TorchScript module that reproduces the reported scores; the CLI shows it; it goes with its
study."""

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml

from models.data import load_dataset
from tests.conftest import Server, finished, wait_for
from tests.service.client.test_cli import ROOT, tuneforge

pytestmark = pytest.mark.slow


def _api(server: Server) -> httpx.Client:
    """The admin's client, reading long enough for answers held by ``?wait=60``."""
    client = server.api
    client.timeout = httpx.Timeout(120)
    return client


def _study(server: Server) -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "examples" / "ensemble-digits.yaml").read_text())
    api = _api(server)
    study = api.post("/studies", json=spec)
    assert study.status_code == 201, study.text
    done = wait_for(api, study.json()["id"], finished, timeout=600)
    assert done["status"] == "completed" and done["trial_counts"]["COMPLETE"] == 8, done
    return done


def _ensemble(server: Server, study_id: int, **body: Any) -> dict[str, Any]:
    api = _api(server)
    job = api.post(f"/studies/{study_id}/ensembles", json=body, params={"wait": 60}).json()
    while job["status"] not in ("done", "failed"):
        job = api.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
    assert job["status"] == "done", job
    return dict(job)


def test_an_ensemble_of_the_top_5_beats_the_best_single_model(
    server: Server, tmp_path: Path
) -> None:
    study = _study(server)
    sid = study["id"]
    job = _ensemble(server, sid, top_k=5, method="average")
    result = job["result"]
    members = result["members"]
    assert len(members) == 5
    # The 5 best trials by the objective, best first.
    api = _api(server)
    trials = api.get(f"/studies/{sid}/trials", params={"state": "COMPLETE"}).json()["items"]
    best = api.get(f"/studies/{sid}/best").json()
    top = sorted((t["value"] for t in trials), reverse=True)[:5]
    assert [m["value"] for m in members] == top
    assert members[0]["trial"] == best["number"]
    # Lower validation NLL than every member, the best single model included.
    assert result["metrics"]["nll"] < result["best_member"]["nll"]
    assert result["best_member"]["nll"] == min(m["metrics"]["nll"] for m in members)
    assert 0 <= result["metrics"]["ece"] < 0.2
    assert result["metrics"]["val_accuracy"] >= members[0]["metrics"]["val_accuracy"] - 0.02

    # One TorchScript module: raw inputs in, log-probabilities out, the reported scores back.
    api = _api(server)
    url = f"/studies/{sid}/ensembles/{job['id']}/artifacts"
    ts = api.get(f"{url}/torchscript")
    spec = api.get(f"{url}/spec").json()
    weights = api.get(f"{url}/weights")
    assert ts.status_code == weights.status_code == 200
    module = torch.jit.load(io.BytesIO(ts.content))
    data = load_dataset("digits")  # the study's split: val_fraction 0.2, split_seed 0
    x, y = torch.tensor(data.x_val), torch.tensor(data.y_val)
    with torch.no_grad():
        logp = module(x)
    nll = float(torch.nn.functional.nll_loss(logp, y))
    assert nll == pytest.approx(result["metrics"]["nll"], rel=1e-4)
    assert float((logp.argmax(1) == y).float().mean()) == pytest.approx(
        result["metrics"]["val_accuracy"]
    )
    assert [m["trial"] for m in spec["members"]] == [m["trial"] for m in members]
    assert spec["output"]["values"] == "log-probabilities" and spec["method"] == "average"
    assert all(m["model"]["family"] == "mlp" for m in spec["members"])

    # Greedy selection and a vote on the same study; the CLI lists an ensemble.
    greedy = _ensemble(server, sid, top_k=5, method="greedy")["result"]
    assert greedy["metrics"]["nll"] <= greedy["best_member"]["nll"]
    assert sum(m["weight"] for m in greedy["members"]) >= 1
    vote = _ensemble(server, sid, top_k=3, method="vote")["result"]
    assert len(vote["members"]) == 3
    out = tmp_path / "ensemble.ts"
    shown = tuneforge(server, "ensemble", str(sid), "--id", str(job["id"]), "-o", str(out))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"^ensemble \(average\) ", shown.stdout, re.M)
    assert out.read_bytes() == ts.content

    # Deleted with its study.
    api = _api(server)
    assert len(api.get(f"/studies/{sid}/ensembles").json()["items"]) == 3
    assert api.delete(f"/studies/{sid}").status_code == 204
    assert api.get(f"/jobs/{job['id']}").status_code == 404
    folder = server.data_dir / "artifacts" / study["optuna_study_name"] / f"ensemble-{job['id']}"
    assert not folder.exists()


def test_a_study_without_two_models_has_no_ensemble(server: Server) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "ensemble-digits.yaml").read_text())
    spec["budget"] = {"max_trials": 1}
    spec["name"] = "ensemble-of-one"
    api = _api(server)
    sid = api.post("/studies", json=spec).json()["id"]
    wait_for(api, sid, finished, timeout=300)
    job = api.post(f"/studies/{sid}/ensembles", json={}, params={"wait": 30}).json()
    while job["status"] not in ("done", "failed"):
        job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
    assert job["status"] == "failed"
    assert "an ensemble needs at least 2" in job["error"]
