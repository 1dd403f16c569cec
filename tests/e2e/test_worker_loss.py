"""A Ray node dies under a running trial: the trial resumes from its checkpoint on another node.

A real multi-node Ray on loopback (``ray.cluster_utils.Cluster``: a head that runs nothing and
worker nodes, each its own raylet and object store), and a real ``tuneforge serve`` joined to
it through ``TUNEFORGE_RAY_ADDRESS``.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Server, finished, free_port, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 300


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    # Every node on loopback (see search.ray_runtime): the same switch the service uses.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    head = {
        "num_cpus": 0,  # the head schedules nothing: trials run on worker nodes only
        "gcs_server_port": free_port(),
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_trial_on_a_dead_node_resumes_from_its_checkpoint_on_another(
    cluster: Any, server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    node_a = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    server = server_factory(
        sqlite_url,
        env={"TUNEFORGE_RAY_ADDRESS": cluster.address, "TUNEFORGE_CHECKPOINT_EVERY": "5"},
    )
    api = server.api
    spec = {
        "name": "worker-loss",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"model.width": {"type": "int", "low": 16, "high": 32}},
        "budget": {"max_trials": 3},
        "parallelism": 1,
        "resources": {"cpu": 1},
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": EPOCHS},
        },
    }
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]

    deadline = time.monotonic() + 120
    first: dict[str, Any] = {}
    while time.monotonic() < deadline:
        items = api.get(f"/studies/{study_id}/trials").raise_for_status().json()["items"]
        if items and items[0]["user_attrs"].get("checkpoint_epoch", 0) >= 10:
            first = items[0]
            break
        time.sleep(0.1)
    assert first, "the first trial never checkpointed"
    assert first["state"] == "RUNNING"
    assert first["node_id"] == node_a.node_id
    checkpointed = first["user_attrs"]["checkpoint_epoch"]

    node_b = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.remove_node(node_a, allow_graceful=False)  # raylet, object store, workers: gone

    study = wait_for(api, study_id, finished)
    assert study["status"] == "completed", study
    items = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert [t["state"] for t in items] == ["COMPLETE"] * 3  # the budget, each trial once
    (resume,) = items[0]["user_attrs"]["resumes"]
    assert resume["reason"].startswith("worker lost: NodeDiedError")
    assert node_a.node_id in resume["reason"]
    # From the newest checkpoint the scheduler held when the node died, not from scratch.
    assert resume["from_epoch"] >= checkpointed and resume["from_epoch"] % 5 == 0
    assert items[0]["node_id"] == node_b.node_id
    detail = api.get(f"/studies/{study_id}/trials/0").raise_for_status().json()
    assert [p["epoch"] for p in detail["learning_curve"]] == list(range(1, EPOCHS + 1))
    assert all(t["node_id"] == node_b.node_id for t in items[1:])
    assert "resumes" not in items[1]["user_attrs"]
    # Checkpoints live while their trial runs: none is left once the study is done.
    assert list((server.data_dir / "checkpoints").rglob("*.pt")) == []


def test_a_study_waits_for_a_node_that_fits_its_trials(
    cluster: Any, server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    # A cluster's workers may join after the study arrives: it waits, saying why, then runs.
    server = server_factory(sqlite_url, env={"TUNEFORGE_RAY_ADDRESS": cluster.address})
    spec = {
        "name": "waits-for-a-node",
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"model.width": {"type": "int", "low": 16, "high": 32}},
        "budget": {"max_trials": 2},
        "resources": {"cpu": 1},
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 2}},
    }
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    waiting = wait_for(server.api, study_id, lambda s: bool(s["status_reason"]), timeout=60)
    assert waiting["status"] == "pending"
    assert waiting["status_reason"] == (
        "waiting for a Ray node: no Ray node can run a trial with resources cpu=1, gpu=0 "
        "(largest node: 0 CPU, 0 GPU)"
    )
    node = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    study = wait_for(server.api, study_id, finished)
    assert study["status"] == "completed", study
    items = server.api.get(f"/studies/{study_id}/trials").json()["items"]
    assert [t["node_id"] for t in items] == [node.node_id] * 2
