"""The service's Optuna storage: several user and system attributes in one transaction, on
SQLite and PostgreSQL, with Optuna's own rules (a finished trial cannot change); SQLite
connections in WAL mode with synchronous=NORMAL; the search loop's batched writes through it."""

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import event, text

from search.optuna_compat import set_attrs
from service.store.storage import make_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_user_and_system_attrs_are_written_in_one_transaction(url: str) -> None:
    storage = make_storage(url)
    study = optuna.create_study(storage=storage, study_name="attrs")
    trial = study.ask()
    trial.set_user_attr("seed", 1)
    storage.set_trial_system_attr(trial._trial_id, "tuneforge:curve", [])
    commits: list[int] = []
    event.listen(storage.engine, "commit", lambda conn: commits.append(1))

    storage.set_trial_attrs(  # type: ignore[attr-defined]
        trial._trial_id,
        {"seed": 7, "node_id": "abc"},
        {"tuneforge:curve": [{"epoch": 1, "loss": 0.5}], "tuneforge:resumes": []},
    )
    storage.set_trial_attrs(trial._trial_id, {"epochs": 1}, {})  # type: ignore[attr-defined]

    assert len(commits) == 2
    [stored] = optuna.load_study(study_name="attrs", storage=url).trials
    assert stored.user_attrs == {"seed": 7, "node_id": "abc", "epochs": 1}
    assert stored.system_attrs == {
        "tuneforge:curve": [{"epoch": 1, "loss": 0.5}],
        "tuneforge:resumes": [],
    }
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_attrs(trial._trial_id, {}, {"late": True})  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        storage.set_trial_attrs(10**9, {"x": 1}, {})  # type: ignore[attr-defined]


def test_the_loop_helper_batches_through_the_cache_and_keeps_the_trial_current(
    url: str,
) -> None:
    storage = make_storage(url)
    study = optuna.create_study(storage=storage, study_name="cached")
    # As the scheduler does: load_study wraps the RDB storage in Optuna's cache.
    study = optuna.load_study(study_name="cached", storage=storage)
    trial = study.ask()
    set_attrs(trial, {"a": 1, "b": [1, 2]}, {"tuneforge:c": {"d": 3}})
    assert trial.user_attrs == {"a": 1, "b": [1, 2]}
    assert trial._cached_frozen_trial.system_attrs == {"tuneforge:c": {"d": 3}}
    study.tell(trial, 0.5)
    [done] = optuna.load_study(study_name="cached", storage=url).get_trials(
        states=(TrialState.COMPLETE,)
    )
    assert done.user_attrs == {"a": 1, "b": [1, 2]}
    assert done.system_attrs == {"tuneforge:c": {"d": 3}}


def test_the_loop_helper_falls_back_to_one_write_per_attr_on_other_storages() -> None:
    study = optuna.create_study()  # in memory: no batch call
    trial = study.ask()
    set_attrs(trial, {"a": 1, "b": "x"}, {"tuneforge:c": [1]})
    assert study.trials[0].user_attrs == {"a": 1, "b": "x"}
    assert study.trials[0].system_attrs == {"tuneforge:c": [1]}


def test_sqlite_storage_connections_use_wal_and_synchronous_normal(sqlite_url: str) -> None:
    storage = make_storage(sqlite_url)
    with storage.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_get_trial_reads_exactly_what_optunas_own_reads(url: str) -> None:
    storage = make_storage(url)
    plain = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="mixed")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        trial.suggest_int("n", 1, 9, step=2)
        trial.suggest_categorical("act", ["relu", None, 3])
        trial.set_user_attr("curve", [{"epoch": 1, "loss": 0.25}])
        trial.storage.set_trial_system_attr(trial._trial_id, "sys", {"k": [1, 2]})
        for step, v in enumerate([0.5, float("inf"), float("-inf"), float("nan")]):
            trial.report(v, step)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            return float("inf")  # stored as INF_POS
        return x

    study.optimize(objective, n_trials=4, catch=(Exception,))
    running = study.ask()  # RUNNING, no params
    multi = optuna.create_study(storage=storage, directions=["minimize", "maximize"])
    multi.optimize(lambda t: (t.suggest_float("y", 0, 1), float("-inf")), n_trials=2)

    ids = [t._trial_id for t in study.trials + multi.trials] + [running._trial_id]
    for trial_id in ids:
        ours, theirs = storage.get_trial(trial_id), plain.get_trial(trial_id)
        assert repr(ours) == repr(theirs)  # nan == nan only as text
    with pytest.raises(KeyError):
        storage.get_trial(10**9)


def test_trials_created_here_and_by_optuna_interleave_with_optunas_numbering(url: str) -> None:
    storage = make_storage(url)
    plain = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="numbers")
    sid = study._study_id
    study.enqueue_trial({"x": 0.5})  # a template trial: Optuna's own path
    ids = []
    for i in range(6):
        creator = storage if i % 2 == 0 else plain
        ids.append(creator.create_new_trial(sid))
    trials = [storage.get_trial(t) for t in ids]
    assert [t.number for t in trials] == [1, 2, 3, 4, 5, 6]  # 0 is the enqueued one
    assert all(t.state == TrialState.RUNNING for t in trials)
    ours = storage._create_new_trial(sid)  # type: ignore[attr-defined]
    assert repr(ours) == repr(plain.get_trial(ours._trial_id))
    with pytest.raises(KeyError):
        storage.create_new_trial(10**9)


def test_a_studys_trials_read_exactly_as_optunas_own_read_them(url: str) -> None:
    storage = make_storage(url)
    plain = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="reads")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("u", [trial.number])
        trial.storage.set_trial_system_attr(trial._trial_id, "s", {"n": trial.number})
        trial.report(x, 1)
        if trial.number % 3 == 1:
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=8)
    running = [study.ask(), study.ask()]
    sid = study._study_id
    ids = sorted(t._trial_id for t in study.get_trials(deepcopy=False))
    unfinished = {t._trial_id for t in running}
    cases = [
        (None, set(), -1),  # every trial
        ((TrialState.COMPLETE,), set(), -1),
        ((TrialState.PRUNED, TrialState.RUNNING), set(), -1),
        (None, unfinished, ids[4]),  # Optuna's cache: the unfinished and newer
        (None, {ids[1], ids[2]}, ids[5]),
        (None, {ids[1]}, ids[-1]),  # nothing newer
        ((TrialState.COMPLETE,), {ids[0], ids[3]}, ids[6]),
    ]
    for states, included, greater_than in cases:
        ours = storage._get_trials(sid, states, included, greater_than)  # type: ignore[attr-defined]
        theirs = plain._get_trials(sid, states, included, greater_than)
        assert [repr(t) for t in ours] == [repr(t) for t in theirs]
        assert ours, (states, included, greater_than)  # every case reads some trial
    empty = optuna.create_study(storage=storage, study_name="empty")
    assert storage._get_trials(empty._study_id, None, set(), -1) == []  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        storage._get_trials(10**9, None, set(), -1)  # type: ignore[attr-defined]
