"""The catalog end to end: studies over a live server train CNNs, binary and regression
models on real data; their trained models download and reproduce the reported metrics;
specs that cannot build are refused at submission; uploaded data trains like bundled data.
"""

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_wine

from models.data import load_dataset
from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    return shared_server


def example(name: str) -> dict[str, Any]:
    spec = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(spec, dict)
    return spec


def run_study(server: Server, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    api = server.api
    created = api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(api, created.json()["id"], finished, timeout=400)
    assert study["status"] == "completed", study
    best = api.get(f"/studies/{study['id']}/best").json()
    return study, best


def download(server: Server, study_id: int, kind: str) -> bytes:
    resp = server.api.get(f"/studies/{study_id}/best/artifacts/{kind}")
    assert resp.status_code == 200, resp.text
    return resp.content


def load_torchscript(blob: bytes) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch.jit.load is deprecated upstream, still works
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(blob))


def test_cnn_on_digits_beats_097_and_exports_reproduce_it(server: Server) -> None:
    study, best = run_study(server, example("cnn-digits.yaml"))
    assert best["value"] > 0.97, best
    assert study["trial_counts"]["COMPLETE"] == 6
    assert sorted(best["artifacts"]) == ["spec", "torchscript", "weights"]
    assert best["final_metrics"]["val_accuracy"] == best["value"]
    assert {"param_count", "latency_ms", "mc_nll", "mc_ece", "val_f1_macro"} <= set(
        best["final_metrics"]
    )
    curve = best["learning_curve"]
    assert len(curve) == 15 and {"val_gap", "grad_norm", "lr"} <= set(curve[0]["metrics"])
    assert curve[-1]["metrics"]["lr"] < curve[0]["metrics"]["lr"]  # cosine schedule
    assert best["user_attrs"]["grad_norms"]  # per-layer gradient norms for debugging

    # The downloaded TorchScript takes raw digits and reproduces the reported accuracy.
    data = load_dataset("digits")
    scripted = load_torchscript(download(server, study["id"], "torchscript"))
    with torch.no_grad():
        logits = scripted(torch.tensor(data.x_val))
    accuracy = float((logits.argmax(1).numpy() == data.y_val).mean())
    assert accuracy == pytest.approx(best["value"], abs=1e-6)

    # The spec names exactly what rebuilds the model; the weights are a plain state_dict.
    spec = json.loads(download(server, study["id"], "spec"))
    assert spec["trial"] == best["number"] and spec["params"] == best["params"]
    assert spec["model"]["family"] == "cnn"
    assert spec["model"]["block"] == best["params"]["model.block"]
    assert spec["dataset"]["input_shape"] == [1, 8, 8]
    state = torch.load(io.BytesIO(download(server, study["id"], "weights")), weights_only=True)
    assert "pre.shift" in state and any(k.startswith("net.") for k in state)


def test_binary_task_with_bce(server: Server) -> None:
    study, best = run_study(server, example("breast-cancer-bce.yaml"))
    assert best["value"] > 0.93, best  # F1 of the positive class
    assert best["final_metrics"]["val_accuracy"] > 0.9
    data = load_dataset("breast_cancer")
    scripted = load_torchscript(download(server, study["id"], "torchscript"))
    with torch.no_grad():
        logit = scripted(torch.tensor(data.x_val))
    assert logit.shape == (len(data.x_val), 1)  # BCE: a single logit
    accuracy = float(((logit.squeeze(1) > 0).numpy() == data.y_val).mean())
    assert accuracy == pytest.approx(best["final_metrics"]["val_accuracy"], abs=1e-6)


def test_regression_with_huber(server: Server) -> None:
    study, best = run_study(server, example("diabetes-huber.yaml"))
    # The targets' std is about 77; a linear model reaches about 54.
    assert best["value"] < 62, best
    trials = server.api.get(f"/studies/{study['id']}/trials").json()["items"]
    deltas = {t["params"]["training.huber_delta"] for t in trials}
    assert len(deltas) == 6  # the delta was searched
    data = load_dataset("diabetes")
    scripted = load_torchscript(download(server, study["id"], "torchscript"))
    with torch.no_grad():
        pred = scripted(torch.tensor(data.x_val)).numpy()
    rmse = float(np.sqrt(((pred - data.y_val) ** 2).mean()))  # original units
    assert rmse == pytest.approx(best["value"], rel=1e-4)


@pytest.mark.parametrize(
    ("task", "search_space", "path", "words"),
    [
        (
            {"dataset": {"name": "iris"}, "model": {"family": "cnn"}},
            {},
            "task.model.family",
            ("cnn needs image data", "'iris' is tabular"),
        ),
        (
            {
                "dataset": {"name": "digits"},
                "model": {"family": "cnn", "norm": "group", "groups": 3},
            },
            {},
            "task.model.groups",
            ("3 groups do not divide 32 channels",),
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"family": "mlp", "activation": "swishy"}},
            {},
            "task.model.activation",
            ("unknown value 'swishy'", "gelu"),
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"family": "transformer", "heads": 5}},
            {},
            "task.model.heads",
            ("5 heads do not divide d_model=64",),
        ),
        (
            {"dataset": {"name": "digits"}, "model": {"family": "cnn", "stages": 6}},
            {},
            "task.model.stages",
            ("6 stages pool a size-8 input below one pixel", "at most 4"),
        ),
        (
            {"dataset": {"name": "iris"}, "training": {"loss": "bce"}},
            {},
            "task.training.loss",
            ("bce needs a binary dataset",),
        ),
        (
            {
                "dataset": {"name": "digits"},
                "model": {"family": "cnn", "norm": "group", "groups": 8},
            },
            {"model.width": {"type": "categorical", "choices": [16, 20]}},
            'search_space["model.width"].choices[1]',
            ("20 is not a valid model.width", "8 groups do not divide 20 channels"),
        ),
    ],
)
def test_unbuildable_spec_is_refused_at_submission(
    server: Server,
    task: dict[str, Any],
    search_space: dict[str, Any],
    path: str,
    words: tuple[str, ...],
) -> None:
    api = server.api
    before = api.get("/studies").json()["total"]
    resp = api.post("/studies", json={"name": "broken", "task": task, "search_space": search_space})
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail, detail
    for word in words:
        assert word in detail[path]
    assert api.get("/studies").json()["total"] == before  # nothing written


def test_study_on_an_uploaded_csv(server: Server, tmp_path: Path) -> None:
    wine = load_wine()
    rows = np.column_stack([wine.data, wine.target])
    header = ",".join([*wine.feature_names, "target"])
    csv = tmp_path / "wine.csv"
    np.savetxt(csv, rows, delimiter=",", header=header, comments="", fmt="%.6g")
    api = server.api
    with csv.open("rb") as f:
        uploaded = api.post("/datasets", files={"file": ("wine.csv", f, "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    info = uploaded.json()
    assert (info["task"], info["kind"], info["n_outputs"]) == ("multiclass", "tabular", 3)
    spec = {
        "name": "wine-upload",
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"model.width": {"type": "categorical", "choices": [16, 32]}},
        "budget": {"max_trials": 2},
        "parallelism": 2,
        "task": {"dataset": {"upload_id": info["id"]}, "training": {"epochs": 30, "lr": 0.01}},
    }
    study, best = run_study(server, spec)
    assert best["value"] > 0.85, best
    spec_file = json.loads(download(server, study["id"], "spec"))
    assert spec_file["dataset"]["upload_id"] == info["id"]
    assert spec_file["dataset"]["input_shape"] == [13]
    # A dataset in use by a finished study may go; a study cannot name a missing one.
    assert api.delete(f"/datasets/{info['id']}").status_code == 204
    resp = api.post("/studies", json=spec)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["path"] == "task.dataset.upload_id"
