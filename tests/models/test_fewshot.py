"""Few-shot meta-learning: reproducible N-way K-shot episodes over disjoint classes,
prototypical networks and MAML (first and second order), and the submission's checks of a
``fewshot`` task (ways above the classes, shots above the smallest class: 422 at the field).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from torch import nn
from torch.nn import functional as F

from models.data import load_dataset
from models.fewshot import EpisodeSampler, FewShotConfig, meta_train, split_classes
from models.fewshot.methods import MetaModel, episode_logits
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings


def _sampler(ways: int = 3, shots: int = 2, queries: int = 3) -> EpisodeSampler:
    y = np.repeat(np.arange(6), 10)
    x = torch.arange(60, dtype=torch.float32)[:, None]  # a sample's value is its index
    return EpisodeSampler(x, y, [0, 2, 4, 5], ways, shots, queries)


def test_episodes_are_reproducible_disjoint_and_within_their_classes() -> None:
    first = list(_sampler().fixed(5, seed=3))
    again = list(_sampler().fixed(5, seed=3))
    other = list(_sampler().fixed(5, seed=4))
    assert all(torch.equal(a.x_query, b.x_query) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a.x_query, b.x_query) for a, b in zip(first, other, strict=True))
    for ep in first:
        support, query = ep.x_support.flatten().long(), ep.x_query.flatten().long()
        assert not set(support.tolist()) & set(query.tolist())
        assert set((support // 10).tolist()) | set((query // 10).tolist()) <= {0, 2, 4, 5}
        # labels 0..ways-1: each support label's samples share one original class
        for label in range(3):
            assert len(set((support[ep.y_support == label] // 10).tolist())) == 1
            assert set((query[ep.y_query == label] // 10).tolist()) == set(
                (support[ep.y_support == label] // 10).tolist()
            )


def test_episodes_that_cannot_be_drawn_say_why() -> None:
    with pytest.raises(ValueError, match="5-way episodes need 5 classes; there are 4"):
        _sampler(ways=5)
    with pytest.raises(ValueError, match="class 0 has 10 samples"):
        _sampler(shots=6, queries=5)


def test_meta_training_and_validation_classes_are_disjoint() -> None:
    assert split_classes(FewShotConfig(), 10) == ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    train, held = split_classes(FewShotConfig(val_classes=[1, 8]), 10)
    assert held == [1, 8] and train == [0, 2, 3, 4, 5, 6, 7, 9]


def test_prototypes_are_the_support_means_and_logits_minus_squared_distances() -> None:
    cfg = FewShotConfig(ways=2, shots=2, queries=1, embedding_dim=2)
    model = MetaModel(nn.Identity(), cfg)
    ep = next(iter(_episode_of([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]], [[1.0, 0.0]])))
    logits = episode_logits(model, ep, meta_train=True)
    # prototypes (1, 0) and (0, 5): distances 0 and 1 + 25
    assert logits.tolist() == [[-0.0, -26.0]]


def _episode_of(support: list[list[float]], query: list[list[float]]) -> Iterator[Any]:
    from models.fewshot.episodes import Episode

    yield Episode(
        torch.tensor(support), torch.tensor([0, 0, 1, 1]), torch.tensor(query), torch.tensor([0])
    )


def _maml_grad(first_order: bool) -> torch.Tensor:
    torch.manual_seed(0)
    cfg = FewShotConfig(
        method="maml",
        ways=3,
        shots=2,
        queries=3,
        embedding_dim=4,
        inner_steps=2,
        first_order=first_order,
    )
    embedding = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 4))
    model = MetaModel(embedding, cfg)
    ep = _sampler().sample(np.random.default_rng(0))
    F.cross_entropy(episode_logits(model, ep, meta_train=True), ep.y_query).backward()
    grad = embedding[0].weight.grad
    assert grad is not None
    return grad.clone()


def test_maml_second_order_differs_from_first_order() -> None:
    first, second = _maml_grad(True), _maml_grad(False)
    assert first.abs().sum() > 0 and second.abs().sum() > 0
    assert not torch.allclose(first, second)


def test_maml_adapts_from_a_zero_head_and_evaluation_keeps_no_graph() -> None:
    cfg = FewShotConfig(method="maml", ways=3, shots=2, queries=3, embedding_dim=4)
    model = MetaModel(nn.Sequential(nn.Linear(1, 4)), cfg)
    assert model.head is not None and float(model.head.weight.abs().sum()) == 0
    ep = _sampler().sample(np.random.default_rng(1))
    with torch.no_grad():
        logits = episode_logits(model, ep, meta_train=False)
    assert not logits.requires_grad
    assert float(logits.std()) > 0  # the inner steps moved the head off zero


@pytest.mark.parametrize("method", ["protonet", "maml"])
def test_meta_training_yields_epochs_then_the_best_with_its_interval(method: str) -> None:
    cfg = FewShotConfig(
        method=method,
        epochs=2,
        episodes_per_epoch=4,
        meta_batch=2,
        val_episodes=20,
        embedding_dim=16,
        first_order=True,
    )
    model = {"family": "mlp", "width": 32, "hidden_layers": 1}
    items = list(meta_train(model, cfg, load_dataset("digits"), seed=0))
    epochs, result = items[:-1], items[-1]
    assert [e.epoch for e in epochs] == [1, 2]  # type: ignore[union-attr]
    accs = [e.metrics["val_episode_accuracy"] for e in epochs]  # type: ignore[union-attr]
    assert result.metrics["val_episode_accuracy"] == max(accs)  # type: ignore[union-attr]
    assert 0 < result.metrics["val_episode_ci95"] < 0.5  # type: ignore[union-attr]
    again = list(meta_train(model, cfg, load_dataset("digits"), seed=0))[-1]
    assert again.metrics == result.metrics  # type: ignore[union-attr]


# -- the submission's checks ------------------------------------------------------------------

STUDIES = "/api/v1/studies"


def fewshot_study(**fewshot: Any) -> dict[str, Any]:
    return {
        "name": "fewshot",
        "objective": {"metric": "val_episode_accuracy", "direction": "maximize"},
        "budget": {"max_trials": 1},
        "task": {
            "kind": "fewshot",
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "width": 32, "hidden_layers": 1},
            "fewshot": {"ways": 5, "shots": 1, **fewshot},
        },
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, run_scheduler=False))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {read_admin_key(tmp_path)}"
        yield client


def _errors(client: TestClient, spec: dict[str, Any]) -> dict[str, str]:
    resp = client.post(STUDIES, json=spec)
    assert resp.status_code == 422, resp.text
    assert client.get(STUDIES).json()["total"] == 0  # nothing written
    return {item["path"]: item["msg"] for item in resp.json()["detail"]}


def test_a_fewshot_study_is_accepted_with_every_default_spelled_out(client: TestClient) -> None:
    resp = client.post(STUDIES, json=fewshot_study(method="maml"))
    assert resp.status_code == 201, resp.text
    task = resp.json()["spec"]["task"]
    assert task["kind"] == "fewshot" and "training" not in task
    assert task["fewshot"]["method"] == "maml" and task["fewshot"]["inner_steps"] == 1


def test_ways_above_the_classes_and_shots_above_the_smallest_class_are_422(
    client: TestClient,
) -> None:
    errors = _errors(client, fewshot_study(ways=6))
    assert "6-way episodes need 6 classes on each side" in errors["task.fewshot.ways"]
    errors = _errors(client, fewshot_study(shots=100, queries=80))
    assert "the smallest class of 'digits' has 174" in errors["task.fewshot.shots"]
    errors = _errors(client, fewshot_study(val_classes=[7, 12]))
    assert "class 12" in errors["task.fewshot.val_classes"]
    errors = _errors(client, fewshot_study(method="reptile"))
    assert "reptile" in errors["task.fewshot.method"]


def test_searched_ways_and_widths_are_checked_at_their_bounds(client: TestClient) -> None:
    spec = fewshot_study()
    spec["search_space"] = {
        "fewshot.ways": {"type": "int", "low": 2, "high": 8},
        "fewshot.inner_lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
        "model.width": {"type": "int", "low": 16, "high": 64},
        "training.lr": {"type": "float", "low": 0.01, "high": 0.1},
    }
    errors = _errors(client, spec)
    assert "8-way episodes" in errors['search_space["fewshot.ways"].high']
    assert "unknown parameter 'training.lr'" in errors['search_space["training.lr"]']
    assert len(errors) == 2


def test_training_fields_belong_to_train_tasks(client: TestClient) -> None:
    spec = fewshot_study()
    spec["task"]["training"] = {"epochs": 3}
    assert "training belong to train tasks" in _errors(client, spec)["task"]


@pytest.mark.parametrize("example", ["fewshot-protonet.yaml", "fewshot-maml.yaml"])
def test_the_examples_are_accepted_as_written(client: TestClient, example: str) -> None:
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / example).read_text())
    resp = client.post(STUDIES, json=spec)
    assert resp.status_code == 201, resp.text
    assert resp.json()["spec"]["task"]["kind"] == "fewshot"


@pytest.mark.parametrize("algorithm", ["pbt", "darts"])
def test_algorithms_with_their_own_trainer_are_refused(client: TestClient, algorithm: str) -> None:
    spec = fewshot_study()
    spec["algorithm"] = {"name": algorithm}
    assert "its own way" in _errors(client, spec)["algorithm.name"]
