"""Every use of Optuna's internals on the search side, in one place.

The loop, the population mirror and the NAS samplers need a few things Optuna's public API
does not offer: telling a trial without reading it back, asking without Optuna's scan for
queued trials, creating a trial from a template, reading the study's cached trials, writing
a trial's user and system attributes in one transaction. Each is one function here, built on
the private names of the Optuna release pinned in ``pyproject.toml`` (5.0); ``tests/search/
test_optuna_compat.py`` pins that release and exercises every function against it, so an
upgrade that moves one of them fails there, not inside a running study.
"""

from collections.abc import Container, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

PINNED = "5.0"  # the Optuna release these functions are written against


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage (Optuna keeps it private)."""
    storage: BaseStorage = study._storage
    return storage


def study_id_of(study: optuna.Study) -> int:
    """The study's id in its storage."""
    return int(study._study_id)


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (``number`` is only unique within the study)."""
    return int(trial._trial_id)


def trial_of(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live ``Trial`` handle of an existing trial (to report, set attributes, tell)."""
    return optuna.Trial(study, trial_id)


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: float | Sequence[float] | None = None,
    state: TrialState | None = None,
) -> None:
    """``study.tell``, without its last step: reading the finished trial back from the
    database and deep-copying it for a return value nobody uses."""
    _tell_with_warning(study, trial, values, state)


def ask_new(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for a study with no queued (WAITING) trial left: a new trial, without
    Optuna's look for queued ones (which rereads every unfinished trial of the study)."""
    study._thread_local.cached_all_trials = None  # as ask does: samplers see new trials
    return optuna.Trial(study, storage_of(study).create_new_trial(study_id_of(study)))


def n_waiting(study: optuna.Study) -> int:
    """How many queued (WAITING) trials the study has: one query of that state alone, past
    Optuna's cache (whose every read first rereads every unfinished trial)."""
    storage = storage_of(study)
    backend: BaseStorage = getattr(storage, "_backend", storage)  # under _CachedStorage
    waiting = backend.get_all_trials(
        study_id_of(study), deepcopy=False, states=(TrialState.WAITING,)
    )
    return len(waiting)


def create_trial(study: optuna.Study, template: FrozenTrial) -> optuna.Trial:
    """A new trial made from ``template`` (state, params, distributions, user attributes) in
    one write: what ``ask`` would do, without popping a queued trial or running the sampler."""
    trial_id = storage_of(study).create_new_trial(study_id_of(study), template)
    return optuna.Trial(study, trial_id)


def cached_trials(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """The study's trials as the sampler sees them (Optuna's per-ask cache, no copies)."""
    return list(study._get_trials(deepcopy=False, states=states, use_cache=True))


def set_param(
    study: optuna.Study, trial: optuna.Trial, name: str, value: Any, dist: BaseDistribution
) -> None:
    """Set a parameter the trial did not suggest (a one-shot search's chosen architecture)."""
    storage_of(study).set_trial_param(trial_id_of(trial), name, dist.to_internal_repr(value), dist)


def set_system_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    """A system attribute of a trial (a sampler's bookkeeping, e.g. a child's parent)."""
    storage_of(study).set_trial_system_attr(trial_id, key, value)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    """A system attribute of a study (Optuna's ``Study`` has no public setter)."""
    storage_of(study).set_study_system_attr(study_id_of(study), key, value)


def set_attrs(
    trial: optuna.Trial,
    user: Mapping[str, Any],
    system: Mapping[str, Any],
    steps: Mapping[int, float] | None = None,
) -> None:
    """Set user and system attributes of a running trial, and intermediate values (``steps``:
    step to value, as ``Trial.report`` would one by one): in one transaction where the storage
    can (``set_trial_attrs``, e.g. the service's ``RetryingStorage``), else one by one. The
    trial handle sees them too."""
    storage = storage_of(trial.study)
    backend = getattr(storage, "_backend", storage)  # under Optuna's cache
    many = getattr(backend, "set_trial_attrs", None)
    trial_id = trial_id_of(trial)
    if many is not None:
        many(trial_id, user, system, steps)
    else:
        for key, value in user.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system.items():
            storage.set_trial_system_attr(trial_id, key, value)
        for step, value in (steps or {}).items():
            storage.set_trial_intermediate_value(trial_id, step, value)
    trial._cached_frozen_trial.user_attrs.update(user)
    trial._cached_frozen_trial.system_attrs.update(system)
    trial._cached_frozen_trial.intermediate_values.update(steps or {})


def known_system_attrs(trial: optuna.Trial) -> Mapping[str, Any]:
    """A trial's system attributes as its handle read them when it was made (plus those
    :func:`set_attrs` wrote through it since), without a read of the database."""
    attrs: Mapping[str, Any] = trial._cached_frozen_trial.system_attrs
    return attrs


def frozen(study: optuna.Study, trial_id: int) -> FrozenTrial:
    """A trial as stored now."""
    return storage_of(study).get_trial(trial_id)


def storage_key(study: optuna.Study) -> tuple[int, int]:
    """What identifies a study across ``Study`` objects (a sampler's cache key)."""
    return id(storage_of(study)), study_id_of(study)
