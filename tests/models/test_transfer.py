"""Transfer learning: a training starts from another's weights (``init_from``), on a subset of
a dataset's classes; what carries over, what stays frozen, how fast the backbone learns; and
the submission's 422s at ``task.init_from`` (shapes, another tenant's study) through the API.
"""

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from models.data import load_dataset, subset, subset_arrays
from models.training.config import TrainConfig
from models.training.trainer import Trainer, train
from models.training.transfer import InitSpec, head_names, load_weights
from search import attrs, optuna_compat
from search.artifacts import data_facts, write_artifacts
from search.document import from_document, to_document
from search.spec import (
    AlgorithmSpec,
    Budget,
    DatasetRef,
    InitFrom,
    Objective,
    Resources,
    StudySpec,
    TrainTask,
)
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings

MLP = {"family": "mlp", "width": 32, "hidden_layers": 1}
FIRST, SECOND = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


@pytest.fixture(scope="module")
def pretrained() -> bytes:
    """An MLP trained 3 epochs on digits 0-4: its exported weights."""
    *_, result = train(dict(MLP), TrainConfig(epochs=3), subset(load_dataset("digits"), FIRST), 0)
    return result.state_dict


def test_a_class_subset_is_relabelled_in_the_given_order() -> None:
    data = load_dataset("digits")
    part = subset(data, (7, 3))
    assert part.info.n_outputs == 2
    assert set(np.unique(part.y_train)) == {0, 1}
    # label 0 is digit 7: the samples are exactly the 7s of the original split
    assert np.array_equal(part.x_train[part.y_train == 0], data.x_train[data.y_train == 7])
    assert len(part.x_val) == int(np.isin(data.y_val, (7, 3)).sum())


def test_the_head_is_what_depends_on_the_class_count() -> None:
    assert head_names(MLP, (1, 8, 8), 5) == {"net.2.weight", "net.2.bias"}


def test_all_layers_carry_over_and_backbone_leaves_the_head_fresh(pretrained: bytes) -> None:
    data = subset(load_dataset("digits"), SECOND)
    source = load_weights(pretrained)
    loaded = Trainer(MLP, TrainConfig(), data, 1, init=InitSpec(pretrained, "all")).net
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, source[name]), name
    fresh = Trainer(MLP, TrainConfig(), data, 1, init=InitSpec(pretrained, "backbone")).net
    state = fresh.state_dict()
    assert torch.equal(state["net.1.fc.weight"], source["net.1.fc.weight"])
    assert not torch.equal(state["net.2.weight"], source["net.2.weight"])


def test_frozen_layers_do_not_move_and_lr_mult_scales_the_backbone(pretrained: bytes) -> None:
    data = subset(load_dataset("digits"), SECOND)
    init = InitSpec(pretrained, "backbone", freeze=("backbone",), lr_mult=0.1)
    trainer = Trainer(MLP, TrainConfig(lr=0.01), data, 1, init=init)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    trainer.run_epoch()
    after = trainer.net.state_dict()
    assert torch.equal(after["net.1.fc.weight"], before["net.1.fc.weight"])
    assert not torch.equal(after["net.2.weight"], before["net.2.weight"])
    scaled = Trainer(MLP, TrainConfig(lr=0.01), data, 1, init=InitSpec(pretrained, lr_mult=0.1))
    scaled.run_epoch()
    assert sorted(g["lr"] for g in scaled.opt.param_groups) == pytest.approx([0.001, 0.01])


def test_weights_that_do_not_fit_are_refused(pretrained: bytes) -> None:
    data = subset(load_dataset("digits"), SECOND)
    wider = {**MLP, "width": 48}
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(wider, TrainConfig(), data, 1, init=InitSpec(pretrained))


def test_init_from_and_classes_survive_the_stored_document() -> None:
    init = InitFrom(3, 2, "backbone", ("net.1",), 0.5, "/data/artifacts/x/trial-2")
    task = TrainTask(DatasetRef(name="digits", classes=(5, 6, 7)), dict(MLP), {}, init)
    spec = StudySpec(
        "s",
        (Objective("val_accuracy", "maximize"),),
        AlgorithmSpec("tpe"),
        (),
        Budget(1),
        1,
        Resources(),
        task,
    )
    assert from_document(to_document(spec)).task == task
    best = replace(task, init_from=replace(init, trial="best"))
    assert from_document(to_document(replace(spec, task=best))).task == best


# -- through the API (no scheduler: the source trial is written as a run would) -----------------

STUDIES = "/api/v1/studies"


def _study(name: str, classes: tuple[int, ...], **task: Any) -> dict[str, Any]:
    return {
        "name": name,
        "budget": {"max_trials": 1},
        "task": {
            "dataset": {"name": "digits", "classes": list(classes)},
            "model": dict(MLP),
            "training": {"epochs": 2},
            **task,
        },
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, run_scheduler=False))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {read_admin_key(tmp_path)}"
        yield client


def _finish_source(client: TestClient, tmp_path: Path, pretrained: bytes) -> int:
    """Submit a study on digits 0-4 and record one finished trial with its files, as the
    loop does."""
    created = client.post(STUDIES, json=_study("source", FIRST))
    assert created.status_code == 201, created.text
    row = created.json()
    storage = client.app.state.storage  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=row["optuna_study_name"], storage=storage)
    spec = from_document(to_document_of(client, row["id"]))
    trial = study.ask()
    folder = tmp_path / "artifacts" / row["optuna_study_name"] / "trial-0"
    data = subset(load_dataset("digits"), FIRST)
    record = {"trial": 0, "params": {}, "seed": 0, "metrics": {"val_accuracy": 0.9}}
    write_artifacts(folder, pretrained, b"ts", spec, record, data_facts(data.info))
    attrs.write(trial, {"artifact_uri": str(folder)})
    optuna_compat.tell(study, trial, 0.9)
    return int(row["id"])


def to_document_of(client: TestClient, study_id: int) -> dict[str, Any]:
    spec = client.get(f"{STUDIES}/{study_id}").json()["spec"]
    return {**spec, "spec_version": 3}


def _errors(client: TestClient, spec: dict[str, Any]) -> dict[str, str]:
    before = client.get(STUDIES).json()["total"]
    resp = client.post(STUDIES, json=spec)
    assert resp.status_code == 422, resp.text
    assert client.get(STUDIES).json()["total"] == before  # nothing written
    return {item["path"]: item["msg"] for item in resp.json()["detail"]}


def test_a_fitting_source_is_accepted_and_stored_with_its_folder(
    client: TestClient, tmp_path: Path, pretrained: bytes
) -> None:
    source = _finish_source(client, tmp_path, pretrained)
    spec = _study("fine-tune", SECOND, init_from={"study": source, "layers": "backbone"})
    created = client.post(STUDIES, json=spec)
    assert created.status_code == 201, created.text
    init = created.json()["spec"]["task"]["init_from"]
    assert init["study"] == source and init["layers"] == "backbone"
    assert Path(init["source"]) == tmp_path / "artifacts" / _name(client, source) / "trial-0"


def _name(client: TestClient, study_id: int) -> str:
    return str(client.get(f"{STUDIES}/{study_id}").json()["optuna_study_name"])


def test_mismatched_shapes_unknown_trials_and_studies_are_422_at_the_field(
    client: TestClient, tmp_path: Path, pretrained: bytes
) -> None:
    source = _finish_source(client, tmp_path, pretrained)
    wider = _study("wider", SECOND, init_from={"study": source})
    wider["task"]["model"]["width"] = 48
    errors = _errors(client, wider)
    assert "shapes differ" in errors["task.init_from"]
    assert "net.1.fc.weight" in errors["task.init_from"]
    errors = _errors(client, _study("t", SECOND, init_from={"study": source, "trial": 7}))
    assert "no finished a trial 7" in errors["task.init_from.trial"]
    errors = _errors(client, _study("u", SECOND, init_from={"study": 999}))
    assert errors == {"task.init_from.study": "study 999 not found"}
    frozen = _study("f", SECOND, init_from={"study": source, "freeze": ["nothing.here"]})
    errors = _errors(client, frozen)
    assert "names no parameter" in errors["task.init_from.freeze[0]"]
    bad_classes = _study("c", (5, 12))
    assert "class 12" in _errors(client, bad_classes)["task.dataset.classes"]


def test_another_tenants_study_answers_like_an_unknown_one(
    client: TestClient, tmp_path: Path, pretrained: bytes
) -> None:
    source = _finish_source(client, tmp_path, pretrained)
    key = client.post("/api/v1/keys", json={"name": "other", "tenant": "other"})
    assert key.status_code == 201, key.text
    other = copy.copy(client.headers)
    other["Authorization"] = f"Bearer {key.json()['key']}"
    resp = client.post(
        STUDIES, json=_study("steal", SECOND, init_from={"study": source}), headers=other
    )
    assert resp.status_code == 422, resp.text
    detail = {item["path"]: item["msg"] for item in resp.json()["detail"]}
    assert detail == {"task.init_from.study": f"study {source} not found"}


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_examples_are_accepted_as_written(
    client: TestClient, tmp_path: Path, pretrained: bytes
) -> None:
    pretrain = yaml.safe_load((EXAMPLES / "transfer-pretrain.yaml").read_text())
    assert client.post(STUDIES, json=pretrain).status_code == 201
    source = _finish_source(client, tmp_path, pretrained)  # a 32-wide MLP: not the example's
    finetune = yaml.safe_load((EXAMPLES / "transfer-finetune.yaml").read_text())
    assert finetune["task"]["init_from"]["study"] == 1 and source == 2
    created = client.post(STUDIES, json=finetune)  # study 1 has no finished trial yet
    assert created.status_code == 422
    assert "no finished a best trial" in created.json()["detail"][0]["msg"]


def test_a_population_study_on_a_class_subset_is_refused(client: TestClient) -> None:
    spec = _study("pbt", SECOND)
    spec["algorithm"] = {"name": "pbt"}
    spec["search_space"] = {"training.lr": {"type": "float", "low": 0.001, "high": 0.1}}
    errors = _errors(client, spec)
    assert "supports neither task.init_from nor" in errors["algorithm.name"]


def test_an_uploads_classes_are_checked_and_selected(client: TestClient, tmp_path: Path) -> None:
    from search.datadir import DataDir
    from service.store.uploads import load_upload
    from tests.service.api._datasets import iris, npz, upload

    x, y = iris()
    body = upload(client, "iris.npz", npz(x=x.astype(np.float32), y=y)).json()
    spec = {
        "name": "iris-2-0",
        "budget": {"max_trials": 1},
        "task": {"dataset": {"upload_id": body["id"], "classes": [2, 0]}},
    }
    assert client.post(STUDIES, json=spec).status_code == 201
    spec["task"]["dataset"]["classes"] = [2, 3]
    assert "class 3 is not one of" in _errors(client, spec)["task.dataset.classes"]
    # what a trial trains on: the upload's 2s as class 0, its 0s as class 1
    xs, ys = subset_arrays(*load_upload(DataDir(tmp_path), body["id"]), (2, 0))
    assert np.array_equal(xs[ys == 0], x[y == 2].astype(np.float32))
    assert len(xs) == 100 and set(ys.tolist()) == {0, 1}
