"""The read API's SQL on Optuna's tables (``service.trial_queries``) against the answers of
reading the whole study with Optuna's ``get_all_trials``, as the routes did before: on real
SQLite and PostgreSQL, with every state, ties, infinities, several objectives, and through the
routes of an in-process app."""

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient
from optuna.artifacts import upload_artifact
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from search import attrs
from search.datadir import DataDir
from search.optuna_artifacts import artifact_store
from search.results import best_trial, pareto_front, trial_counts
from search.spec import StudyStatus
from service.api.views import trial_detail, trial_public
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings
from service.store import crud
from service.store import optuna_sql as q
from tests.service.conftest import Db
from tests.service.store.test_conditional_updates import SPEC  # a function study: no data

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits-mlp.yaml"
C, P, F, R, W = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)
# A study as a long search leaves it: every state, ties for the best value in both directions
# (0.9 at numbers 3 and 5, 0.1 at 7 and 9), and pruned trials whose values (which Optuna's tell
# keeps) beat every completed one in both directions.
PATTERN: list[tuple[TrialState, float | None]] = [
    (C, 0.5),
    (F, None),
    (P, 9.0),
    (C, 0.9),
    (R, None),
    (C, 0.9),
    (W, None),
    (C, 0.1),
    (P, -9.0),
    (C, 0.1),
    (C, 0.3),
    (F, None),
]


DISTRIBUTIONS = {
    "x": FloatDistribution(0.0, 10.0),
    "act": CategoricalDistribution(["relu", "gelu", None]),
    "width": IntDistribution(32, 256, log=True),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
}


def trial(state: TrialState, value: float | None = None, **kw: Any) -> FrozenTrial:
    """A trial with parameters, user attributes and, when it ran, intermediate values."""
    given: dict[str, Any] = {
        "params": {"x": 1.5, "act": "gelu", "width": 64, "lr": 3e-3},
        "distributions": DISTRIBUTIONS,
        "user_attrs": {"seed": 3, "curve": [{"epoch": 1, "val_loss": 0.5}]},
        "intermediate_values": {} if state == W else {1: 0.2, 2: 0.4},
    }
    if value is not None:
        given["value"] = value
    return create_trial(state=state, **(given | kw))


def make_study(storage: RDBStorage, name: str, trials: list[FrozenTrial], **kw: Any) -> int:
    study = optuna.create_study(storage=storage, study_name=name, **kw)
    study.add_trials(trials)
    return storage.get_study_id_from_name(name)


def mixed(repeat: int = 3) -> list[FrozenTrial]:
    return [trial(s, v) for _ in range(repeat) for s, v in PATTERN]


def old_page(
    all_trials: list[FrozenTrial], offset: int, limit: int, state: str | None
) -> tuple[list[dict[str, Any]], int]:
    """What ``list_trials`` answered when it read the whole study."""
    chosen = [t for t in all_trials if state is None or t.state.name == state]
    page = chosen[offset : offset + limit]
    return [trial_public(t).model_dump(mode="json") for t in page], len(chosen)


# -- the queries -------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_counts_best_and_pages_are_those_of_the_whole_study(db: Db, direction: str) -> None:
    sid = make_study(db.storage, "mixed", mixed(), direction=direction)
    every = db.storage.get_all_trials(sid, deepcopy=False)

    with db.sessions() as session:
        assert q.optuna_study_id(session, "mixed") == sid
        counts = q.count_by_state(session, sid)
        assert counts == trial_counts(every)
        assert list(counts) == [s.name for s in TrialState]  # the order the API shows
        best = q.best_trial(session, sid, direction)
        old = best_trial(every, direction)
        assert old is not None and best is not None
        assert (best.number, best.value) == (old.number, old.value)
        assert best.number == (3 if direction == "maximize" else 7)  # the lowest of the tie
        assert db.storage.get_trial(best.trial_id).number == best.number

        for state in [None, *q.TRIAL_STATES]:
            for offset in (0, 1, 5, 11, 35, 36, 100):
                for limit in (1, 7, 100):
                    page, total = q.trial_page(session, sid, offset, limit, state)
                    got = [trial_public(t).model_dump(mode="json") for t in page]
                    assert (got, total) == old_page(every, offset, limit, state), (
                        state,
                        offset,
                        limit,
                    )
        # The trials themselves, every field (distributions, system attributes, times) included.
        assert q.trial_page(session, sid, 0, 1000)[0] == every
        for t in every:
            assert q.trial_by_number(session, sid, t.number) == t
            assert q.trial_by_id(session, t._trial_id) == t
        assert q.trial_by_number(session, sid, len(every)) is None
        assert q.trial_by_id(session, 2**31 - 1) is None


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_infinite_values_rank_as_optuna_ranks_them(db: Db, direction: str) -> None:
    inf = math.inf
    trials = [trial(C, v) for v in (1.0, inf, -inf, 2.0, inf, -inf, 0.5)]
    sid = make_study(db.storage, "inf", trials, direction=direction)
    every = db.storage.get_all_trials(sid, deepcopy=False)

    with db.sessions() as session:
        best = q.best_trial(session, sid, direction)
    old = best_trial(every, direction)
    assert old is not None and best is not None
    assert (best.number, best.value) == (old.number, old.value)
    assert (best.number, best.value) == ((1, inf) if direction == "maximize" else (2, -inf))


def test_special_values_attributes_and_queued_trials_read_back_as_optuna_reads_them(
    db: Db,
) -> None:
    inf, nan = math.inf, math.nan
    study = optuna.create_study(storage=db.storage, study_name="special")
    study.add_trial(trial(C, inf, intermediate_values={1: nan, 2: inf, 3: -inf, 4: 0.25}))
    study.add_trial(trial(C, -inf, user_attrs={"nested": {"a": [1, None, "b"]}, "flag": True}))
    study.enqueue_trial({"x": 2.0, "act": None}, user_attrs={"warm_start": "point"})
    sid = db.storage.get_study_id_from_name("special")
    every = db.storage.get_all_trials(sid, deepcopy=False)

    with db.sessions() as session:
        got, total = q.trial_page(session, sid, 0, 100)
    assert total == 3
    assert got[1:] == every[1:]  # the queued trial: its fixed parameters in system attributes
    assert got[2].system_attrs == every[2].system_attrs != {}
    first, old = got[0], every[0]
    assert first.values == old.values == [inf]
    steps = first.intermediate_values
    assert math.isnan(steps[1]) and math.isnan(old.intermediate_values[1])
    assert {k: v for k, v in steps.items() if k != 1} == {2: inf, 3: -inf, 4: 0.25}
    assert first.params == old.params and first.distributions == old.distributions


def test_times_are_local_as_optuna_gives_them(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    # Optuna stores naive UTC and hands out naive local times: in a zone other than UTC too.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        sid = make_study(db.storage, "zone", [trial(C, 1.0), trial(R), trial(W)])
        every = db.storage.get_all_trials(sid, deepcopy=False)
        with db.sessions() as session:
            got = q.trial_page(session, sid, 0, 10)[0]
        assert [(t.datetime_start, t.datetime_complete) for t in got] == [
            (t.datetime_start, t.datetime_complete) for t in every
        ]
        assert got[0].datetime_start is not None
    finally:
        monkeypatch.undo()
        time.tzset()


def test_no_completed_trial_has_no_best(db: Db) -> None:
    sid = make_study(db.storage, "none-done", [trial(s, v) for s, v in PATTERN if s != C])

    with db.sessions() as session:
        assert q.best_trial(session, sid, "maximize") is None
        assert q.count_by_state(session, sid)["COMPLETE"] == 0


def test_several_objectives_page_and_count_like_one(db: Db) -> None:
    trials = [
        trial(s, values=None if v is None else [v, 10 - v]) if s in (C, P) else trial(s)
        for s, v in PATTERN
    ]
    sid = make_study(db.storage, "two", trials, directions=["maximize", "minimize"])
    every = db.storage.get_all_trials(sid, deepcopy=False)

    with db.sessions() as session:
        assert q.count_by_state(session, sid) == trial_counts(every)
        for offset, limit, state in [(0, 100, None), (2, 3, None), (0, 100, "COMPLETE")]:
            page, total = q.trial_page(session, sid, offset, limit, state)
            assert ([trial_public(t).model_dump(mode="json") for t in page], total) == old_page(
                every, offset, limit, state
            )


def test_a_missing_study_has_no_trials(db: Db) -> None:
    with db.sessions() as session:
        sid = q.optuna_study_id(session, "gone")
        assert sid is None
        assert q.count_by_state(session, sid) == dict.fromkeys(q.TRIAL_STATES, 0)
        assert q.best_trial(session, sid, "maximize") is None
        assert q.trial_page(session, sid, 0, 100) == ([], 0)
        assert q.trial_by_number(session, sid, 0) is None


def test_trials_of_other_studies_are_not_counted_or_paged(db: Db) -> None:
    make_study(db.storage, "before", [trial(C, 100.0)] * 3, direction="maximize")
    sid = make_study(db.storage, "this", mixed(1), direction="maximize")
    make_study(db.storage, "after", [trial(F)] * 4, direction="maximize")
    every = db.storage.get_all_trials(sid, deepcopy=False)

    with db.sessions() as session:
        assert q.count_by_state(session, sid) == trial_counts(every)
        best = q.best_trial(session, sid, "maximize")
        assert best is not None and best.value == 0.9
        page, total = q.trial_page(session, sid, 0, 100)
        assert [t.number for t in page] == list(range(len(PATTERN)))
        assert total == len(PATTERN)


# -- the routes ----------------------------------------------------------------------------------


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, run_scheduler=False)
    with TestClient(create_app(settings)) as client:
        key = read_admin_key(tmp_path)
        if key:
            client.headers["Authorization"] = f"Bearer {key}"
        yield client


def submit(client: TestClient, name: str, **changes: Any) -> tuple[int, int]:
    """POST the quickstart study (no scheduler runs it); its id and its Optuna study's id."""
    spec = yaml.safe_load(EXAMPLE.read_text()) | {"name": name} | changes
    made = client.post("/api/v1/studies", json=spec)
    assert made.status_code == 201, made.text
    storage: RDBStorage = client.app.state.storage  # type: ignore[attr-defined]
    return made.json()["id"], storage.get_study_id_from_name(made.json()["optuna_study_name"])


def test_the_routes_answer_as_reading_the_whole_study_did(client: TestClient) -> None:
    storage: RDBStorage = client.app.state.storage  # type: ignore[attr-defined]
    data_dir: Path = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    study_id, sid = submit(client, "routes")
    empty = client.get(f"/api/v1/studies/{study_id}").json()
    assert empty["trial_counts"] == dict.fromkeys(q.TRIAL_STATES, 0)
    assert empty["best_value"] is None
    assert client.get(f"/api/v1/studies/{study_id}/best").status_code == 404
    optuna.load_study(study_name=empty["optuna_study_name"], storage=storage).add_trials(mixed())
    every = storage.get_all_trials(sid, deepcopy=False)
    base = f"/api/v1/studies/{study_id}"

    detail = client.get(base).json()
    old_best = best_trial(every, "maximize")
    assert old_best is not None
    assert detail["trial_counts"] == trial_counts(every)
    assert detail["best_value"] == old_best.value
    listed = client.get("/api/v1/studies").json()["items"]
    assert [s for s in listed if s["id"] == study_id] == [detail]

    for params in [{}, {"offset": 5, "limit": 4}, {"state": "PRUNED"}, {"state": "WAITING"}]:
        page = client.get(f"{base}/trials", params=params).json()
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 100))
        items, total = old_page(every, offset, limit, params.get("state"))
        assert page == {"items": items, "total": total, "offset": offset, "limit": limit}

    for number in (0, 7, len(every) - 1):
        got = client.get(f"{base}/trials/{number}").json()
        assert got == trial_detail(every[number], data_dir).model_dump(mode="json")
    assert client.get(f"{base}/trials/{len(every)}").status_code == 404
    best = client.get(f"{base}/best").json()
    assert best == trial_detail(old_best, data_dir).model_dump(mode="json")


def test_several_objectives_answer_their_front(client: TestClient) -> None:
    storage: RDBStorage = client.app.state.storage  # type: ignore[attr-defined]
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "val_loss", "direction": "minimize"},
    ]
    study_id, sid = submit(client, "front", objective=None, objectives=objectives)
    trials = [
        trial(C, values=[0.9, 0.3]),
        trial(C, values=[0.8, 0.1]),
        trial(P, values=[0.99, 0.01]),  # pruned: never on the front
        trial(C, values=[0.7, 0.5]),  # beaten by both above
        trial(F),
    ]
    name = client.get(f"/api/v1/studies/{study_id}").json()["optuna_study_name"]
    optuna.load_study(study_name=name, storage=storage).add_trials(trials)
    every = storage.get_all_trials(sid, deepcopy=False)

    detail = client.get(f"/api/v1/studies/{study_id}").json()
    assert detail["trial_counts"] == trial_counts(every)
    assert detail["best_value"] is None
    front = client.get(f"/api/v1/studies/{study_id}/best").json()
    old = pareto_front(every, ["maximize", "minimize"])
    assert [t["number"] for t in front["trials"]] == [t.number for t in old] == [0, 1]
    assert front["trials"] == [trial_public(t).model_dump(mode="json") for t in old]


def test_a_trial_answers_the_same_with_its_records_in_system_attributes(
    client: TestClient,
) -> None:
    """A trial recorded as the scheduler records it now (search.attrs) answers as one stored
    with everything in user attributes, as studies before were: one shape for API clients."""
    storage: RDBStorage = client.app.state.storage  # type: ignore[attr-defined]
    study_id, _ = submit(client, "layouts")
    recorded = {
        "seed": 3,
        "curve": [{"epoch": e, "val_loss": 1 / e, "val_accuracy": 0.5} for e in range(1, 30)],
        "final_metrics": {"val_accuracy": 0.5, "val_loss": 0.03},
        "grad_norms": {f"layer{i}.weight": 0.1 * i for i in range(20)},
        "resumes": [{"from_epoch": 5, "reason": "worker lost", "at": 1.0}],
        "fail_reason": "RuntimeError: " + "x" * 500,
    }
    user, system = attrs.split(recorded)
    name = client.get(f"/api/v1/studies/{study_id}").json()["optuna_study_name"]
    optuna.load_study(study_name=name, storage=storage).add_trials(
        [trial(C, 0.5, user_attrs=recorded), trial(C, 0.5, user_attrs=user, system_attrs=system)]
    )
    old, new = (client.get(f"/api/v1/studies/{study_id}/trials/{n}").json() for n in (0, 1))
    compact = set(user) - set(recorded)
    assert compact == {"epochs", "final_val_accuracy", "final_val_loss", "retries"}
    assert {k: v for k, v in new["user_attrs"].items() if k not in compact} == old["user_attrs"]
    own = ("number", "user_attrs", "datetime_start", "datetime_complete")
    assert {k: v for k, v in new.items() if k not in own} == {
        k: v for k, v in old.items() if k not in own
    }
    assert len(new["learning_curve"]) == 29 and new["final_metrics"]["val_loss"] == 0.03
    assert new["fail_reason"] == recorded["fail_reason"]
    assert new["user_attrs"]["grad_norms"] == recorded["grad_norms"]


def test_a_deleted_study_takes_its_optuna_artifacts_and_no_others(db: Db, tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path)
    store = artifact_store(data_dir)
    uploaded: dict[str, set[str]] = {}
    with db.sessions() as session:
        rows = [crud.create_study(session, db.storage, replace(SPEC, name=n)) for n in "ab"]
        for row in rows:
            crud.mark_finished(session, row.id, StudyStatus.COMPLETED, "done")
            study = optuna.load_study(study_name=row.optuna_study_name, storage=db.storage)
            sid = study._study_id
            summary = "function branin; minimize value; random; 10 trials"
            assert study.user_attrs["tuneforge_spec"] == summary
            assert db.storage.get_study_system_attrs(sid)["tuneforge:spec"] == row.spec
            files = tmp_path / row.name
            files.mkdir()
            (files / "weights.pt").write_bytes(b"w")
            (files / "notes.txt").write_bytes(b"n")
            ids = set()
            for _ in range(2):
                t = study.ask()
                weights = str(files / "weights.pt")
                ids.add(upload_artifact(artifact_store=store, file_path=weights, study_or_trial=t))
                study.tell(t, 1.0)
            notes = str(files / "notes.txt")  # the study's own artifact
            own = upload_artifact(artifact_store=store, file_path=notes, study_or_trial=study)
            assert set(q.artifact_ids(session, sid)) == ids
            uploaded[row.name] = ids | {own}
    with db.sessions() as session:
        crud.delete_study(session, db.storage, data_dir, crud.get_study(session, rows[0].id))
    left = {p.name for p in data_dir.optuna_artifacts.iterdir()}
    assert left == uploaded["b"]
