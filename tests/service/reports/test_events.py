"""A study's live events (``GET /studies/{id}/events``): the watcher against a real database,
the SSE wire format, and a client that connects mid-study over a real socket."""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.orm import Session, sessionmaker

from search.checks import complete
from search.datadir import DataDir
from search.spec import StudySpec, StudyStatus
from service.api.convert import to_spec
from service.api.routes.events import event_json
from service.api.schemas.study import StudyCreate
from service.client.api import Client
from service.client.events import Event, parse_events
from service.reports.events import StudyWatcher
from service.store import crud
from service.store.engine import make_engine, migrate
from service.store.storage import make_storage
from tests.conftest import Server, wait_for


def spec(max_trials: int = 4, epochs: int = 3, parallelism: int = 1) -> dict[str, Any]:
    return {
        "name": "events",
        "algorithm": {"name": "random", "settings": {"seed": 1}},
        "search_space": {"model.width": {"type": "int", "low": 8, "high": 32}},
        "budget": {"max_trials": max_trials},
        "parallelism": parallelism,
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": epochs},
        },
    }


# -- the watcher, on a database written the way the scheduler writes it --------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], optuna.storages.RDBStorage]]:
    url = f"sqlite:///{tmp_path / 'tuneforge.db'}"
    engine = make_engine(url)
    migrate(engine)
    storage = make_storage(url)
    yield sessionmaker(engine, expire_on_commit=False), storage
    storage.remove_session()
    engine.dispose()


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


def submitted(body: dict[str, Any]) -> StudySpec:
    """A study as the API stores it."""
    return complete(to_spec(StudyCreate.model_validate(body)))


def shown(watcher: StudyWatcher) -> list[Event]:
    """The watcher's next events as the stream sends them (their JSON)."""
    return [Event(e.kind, event_json(e)) for e in watcher.poll()]


def test_the_watcher_replays_the_study_so_far_then_reports_each_change(
    db: tuple[sessionmaker[Session], optuna.storages.RDBStorage],
) -> None:
    sessions, storage = db
    with sessions() as s:
        row = crud.create_study(s, storage, submitted(spec()))
        crud.mark_running(s, row.id, datetime.now(UTC))
    study = optuna.load_study(study_name=row.optuna_study_name, storage=storage)
    width = optuna.distributions.IntDistribution(8, 32)
    first = study.ask({"model.width": width})
    study.tell(first, 0.5)
    second = study.ask({"model.width": width})
    second.report(0.3, step=1)

    watcher = StudyWatcher(sessions, row.id)
    replay = shown(watcher)  # connected mid-study: the study, then every trial so far
    assert kinds(replay) == ["study", "trial", "trial", "epoch"]
    assert replay[0].data["trial_counts"]["COMPLETE"] == 1
    assert replay[0].data["best_value"] == 0.5
    assert [(e.data["number"], e.data["state"]) for e in replay[1:3]] == [
        (0, "COMPLETE"),
        (1, "RUNNING"),
    ]
    assert replay[3].data == {"number": 1, "epoch": 1, "value": 0.3}
    assert shown(watcher) == []  # nothing changed, nothing sent

    second.report(0.6, step=2)
    assert [(e.kind, e.data) for e in shown(watcher)] == [
        ("epoch", {"number": 1, "epoch": 2, "value": 0.6})
    ]
    study.tell(second, 0.7)
    third = study.ask({"model.width": width})
    study.tell(third, state=TrialState.PRUNED)
    changes = shown(watcher)
    assert kinds(changes) == ["study", "trial", "trial"]
    assert changes[0].data["trial_counts"] == {
        "RUNNING": 0,
        "COMPLETE": 2,
        "PRUNED": 1,
        "FAIL": 0,
        "WAITING": 0,
    }
    assert changes[0].data["best_value"] == 0.7
    assert [(e.data["number"], e.data["state"], e.data["value"]) for e in changes[1:]] == [
        (1, "COMPLETE", 0.7),
        (2, "PRUNED", None),
    ]
    assert not watcher.ended

    with sessions() as s:
        crud.mark_finished(s, row.id, StudyStatus.COMPLETED, "max_trials reached")
    final = shown(watcher)
    assert kinds(final) == ["study", "end"]
    assert final[1].data["status"] == "completed"
    assert final[1].data["status_reason"] == "max_trials reached"
    assert watcher.ended and watcher.poll() == []


def test_a_deleted_study_ends_its_stream(
    db: tuple[sessionmaker[Session], optuna.storages.RDBStorage], tmp_path: Path
) -> None:
    sessions, storage = db
    with sessions() as s:
        row = crud.create_study(s, storage, submitted(spec()))
    watcher = StudyWatcher(sessions, row.id)
    assert kinds(shown(watcher)) == ["study"]
    with sessions() as s:
        crud.mark_finished(s, row.id, StudyStatus.STOPPED, "stopped by user")
        crud.delete_study(s, storage, DataDir(tmp_path), crud.get_study(s, row.id))
    assert [(e.kind, e.data["status"]) for e in shown(watcher)] == [("end", "deleted")]


def test_server_sent_events_are_parsed_as_the_wire_sends_them() -> None:
    wire = [
        ": keep-alive",
        "",
        "event: trial",
        'data: {"number": 1,',
        'data: "state": "COMPLETE"}',
        "",
        'data: {"x": 1}',
        "",
        "event: end",
        'data: {"status": "completed"}',
    ]
    assert list(parse_events(iter(wire))) == [
        Event("trial", {"number": 1, "state": "COMPLETE"}),
        Event("message", {"x": 1}),
        Event("end", {"status": "completed"}),
    ]


# -- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_client_connecting_mid_study_gets_every_trials_completion(
    shared_server: Server,
) -> None:
    server = shared_server
    budget = 6
    # Trials long enough (about a second each) that every poll finds one running mid-training.
    study_id = server.api.post("/studies", json=spec(budget, epochs=40)).json()["id"]
    wait_for(server.api, study_id, lambda s: s["trial_counts"]["COMPLETE"] >= 2)

    connected_at = datetime.now(UTC)
    received: list[Event] = []
    with Client(server.url, server.key) as client:
        for event in client.events(study_id):
            received.append(event)
            if event.kind == "end":
                break
    completions = {
        e.data["number"]: datetime.fromisoformat(e.data["datetime_complete"])
        for e in received
        if e.kind == "trial" and e.data["state"] in ("COMPLETE", "PRUNED", "FAIL")
    }
    assert sorted(completions) == list(range(budget))  # each trial's completion, once
    # Both those that finished before the client connected and those after it.
    assert any(done < connected_at for done in completions.values())
    assert any(done > connected_at for done in completions.values())
    assert received[0].kind == "study"
    end = received[-1]
    assert end.kind == "end" and end.data["status"] == "completed"
    assert end.data["trial_counts"]["COMPLETE"] == budget
    assert any(e.kind == "epoch" for e in received)  # running trials' epochs streamed
    # What the stream said matches what the API says.
    trials = server.api.get(f"/studies/{study_id}/trials").json()["items"]
    last = {e.data["number"]: e.data for e in received if e.kind == "trial"}
    assert {t["number"]: t["value"] for t in trials} == {n: t["value"] for n, t in last.items()}


@pytest.mark.slow
def test_the_event_stream_is_tenant_scoped_bounded_and_holds_no_request_slot(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    # One request slot: a stream that held it would leave every other request waiting.
    server = server_factory(
        sqlite_url,
        env={"TUNEFORGE_MAX_CONCURRENT_REQUESTS": "1", "TUNEFORGE_EVENT_STREAM_MAX_S": "4"},
    )
    study_id = server.api.post("/studies", json=spec(2, epochs=200)).json()["id"]
    other = server.api.post("/keys", json={"tenant": "someone-else"}).json()["key"]
    with server.client(other) as stranger:
        assert stranger.get(f"/studies/{study_id}/events").status_code == 404
    with server.client(None) as anonymous:
        assert anonymous.get(f"/studies/{study_id}/events").status_code == 401

    received: list[Event] = []
    closed = threading.Event()

    def listen() -> None:
        with Client(server.url, server.key) as client:
            for event in client.events(study_id):
                received.append(event)
        closed.set()

    threading.Thread(target=listen, daemon=True).start()
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert received and not closed.is_set()
    # The stream is open; ordinary requests still go through.
    assert server.api.get(f"/studies/{study_id}").json()["status"] == "running"
    # It closes after TUNEFORGE_EVENT_STREAM_MAX_S, while the study still runs.
    assert closed.wait(30)
    assert "end" not in kinds(received)
    assert server.api.post(f"/studies/{study_id}/stop").status_code == 202
