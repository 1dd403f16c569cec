"""The contract of ``search/optuna_compat.py`` with the pinned Optuna release.

Every function there reaches into Optuna's private names. Each is exercised here against the
installed Optuna, on an in-memory storage and on an RDB storage (the one the service runs on),
so an Optuna upgrade that moves one of them fails here, by name, and not in a running study.
"""

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search import optuna_compat as compat


def test_the_installed_optuna_is_the_pinned_release() -> None:
    installed = ".".join(optuna.__version__.split(".")[:2])
    assert installed == compat.PINNED, (
        f"Optuna {optuna.__version__} is installed; search/optuna_compat.py is written "
        f"against {compat.PINNED}: check each function, then update PINNED"
    )


@pytest.fixture(params=["memory", "sqlite"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    storage = None if request.param == "memory" else f"sqlite:///{tmp_path / 'o.db'}"
    return optuna.create_study(storage=storage, study_name="compat")


def test_ids_and_handles_name_the_same_trial(study: optuna.Study) -> None:
    trial = study.ask()
    assert compat.study_id_of(study) == study._study_id
    tid = compat.trial_id_of(trial)
    assert compat.trial_id_of(study.trials[0]) == tid
    handle = compat.trial_of(study, tid)
    handle.set_user_attr("via", "handle")
    assert compat.frozen(study, tid).user_attrs == {"via": "handle"}
    assert compat.storage_of(study) is study._storage
    assert compat.storage_key(study) == (id(study._storage), study._study_id)


def test_tell_finishes_the_trial_and_returns_nothing(study: optuna.Study) -> None:
    done, failed = study.ask(), study.ask()
    assert compat.tell(study, done, 0.25) is None
    compat.tell(study, failed, state=TrialState.FAIL)
    states = {t.number: (t.state, t.value) for t in study.trials}
    assert states == {0: (TrialState.COMPLETE, 0.25), 1: (TrialState.FAIL, None)}


def test_ask_new_makes_a_new_trial_and_the_sampler_sees_new_trials(study: optuna.Study) -> None:
    first = study.ask()
    first.suggest_float("x", 0.0, 1.0)
    compat.tell(study, first, 1.0)
    assert len(compat.cached_trials(study)) == 1  # fills Optuna's per-ask cache
    second = compat.ask_new(study)
    assert second.number == 1
    assert [t.number for t in compat.cached_trials(study)] == [0, 1]  # the cache was dropped
    running = compat.cached_trials(study, states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [1]


def test_create_trial_copies_the_template_in_one_write(study: optuna.Study) -> None:
    dist = FloatDistribution(0.0, 1.0)
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params={"x": 0.5},
        distributions={"x": dist},
        user_attrs={"origin": "template"},
    )
    trial = compat.create_trial(study, template)
    stored = compat.frozen(study, compat.trial_id_of(trial))
    assert (stored.state, stored.params, stored.user_attrs) == (
        TrialState.RUNNING,
        {"x": 0.5},
        {"origin": "template"},
    )


def test_set_param_and_system_attr_land_on_the_trial(study: optuna.Study) -> None:
    trial = study.ask()
    dist = CategoricalDistribution(["conv", "pool"])
    compat.set_param(study, trial, "op", "pool", dist)
    compat.set_system_attr(study, compat.trial_id_of(trial), "parent", 7)
    stored = compat.frozen(study, compat.trial_id_of(trial))
    assert stored.params == {"op": "pool"}
    assert stored.distributions == {"op": dist}
    assert stored.system_attrs["parent"] == 7


def test_set_attrs_one_by_one_where_the_storage_has_no_batch(study: optuna.Study) -> None:
    trial = study.ask()
    compat.set_attrs(trial, {"a": 1, "b": [2, 3]}, {"c": "d"})
    stored = compat.frozen(study, compat.trial_id_of(trial))
    assert (stored.user_attrs, stored.system_attrs) == ({"a": 1, "b": [2, 3]}, {"c": "d"})
    assert compat.known_system_attrs(trial) == {"c": "d"}  # the handle saw it written


def test_a_study_system_attr_lands_on_the_study(study: optuna.Study) -> None:
    compat.set_study_system_attr(study, "tuneforge:spec", {"name": "s"})
    stored = study._storage.get_study_system_attrs(study._study_id)  # Study has no reader
    assert stored["tuneforge:spec"] == {"name": "s"}


def test_n_waiting_counts_queued_trials_also_those_another_process_queued(
    study: optuna.Study, tmp_path: Path
) -> None:
    assert compat.n_waiting(study) == 0
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    study.ask()  # pops the first: running, no longer queued
    assert compat.n_waiting(study) == 1
    if isinstance(study._storage, optuna.storages._CachedStorage):
        # The API process enqueues through its own storage; this one's cache has not read it.
        other = optuna.load_study(study_name="compat", storage=f"sqlite:///{tmp_path / 'o.db'}")
        other.enqueue_trial({"x": 3.0})
        assert compat.n_waiting(study) == 2
    study.ask()
    assert compat.n_waiting(study) == len(study.get_trials(states=(TrialState.WAITING,)))
