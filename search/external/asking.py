"""Asking for an external trial: the study's sampler proposes it, as the sampler loop's would.

Queued trials (warm-start points, trials enqueued through the API) go first. Each ask builds
the study's sampler afresh, its seed offset by the trial's number: two clients asking at once
get different proposals, and a study asked in any order by any API process stays reproducible
for a given order.
"""

import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage

from search import attrs, optuna_compat, registry
from search.loop.lease import Lease, grant
from search.samplers.base import SamplerAlgorithm, create_pruner
from search.space import suggest_all
from search.spec import ExternalTask, StudySpec


@dataclass(frozen=True)
class Asked:
    """A trial handed to a client: its parameters, its seed (for the client's own randomness)
    and its lease."""

    trial_id: int
    number: int
    params: dict[str, Any]
    seed: int
    lease: Lease


def load(storage: BaseStorage, name: str, spec: StudySpec) -> optuna.Study:
    """The Optuna study of an external study, with its pruner (the sampler is set per ask)."""
    return optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=create_pruner(spec.pruner),
    )


def ask(study: optuna.Study, spec: StudySpec, token: str, queued: bool, number: int) -> Asked:
    """A new trial of ``study`` leased to the holder of ``token`` (the caller checked the
    budget and the parallelism, and counted: ``queued``, whether a trial waits; ``number``,
    the trials taken so far, which offsets the sampler's seed of a queued one)."""
    task = spec.task
    assert isinstance(task, ExternalTask)
    algorithm = registry.study_algorithm(spec.algorithm.name)
    assert isinstance(algorithm, SamplerAlgorithm), "only a sampler proposes external trials"
    storage, study_id = optuna_compat.storage_of(study), optuna_compat.study_id_of(study)
    if queued:  # a queued trial: Optuna hands it out once, however many ask at once
        study.sampler = algorithm.study_sampler(spec, number)
        trial = study.ask()
    else:
        trial_id = storage.create_new_trial(study_id)
        study.sampler = algorithm.study_sampler(spec, storage.get_trial_number_from_id(trial_id))
        trial = optuna.Trial(study, trial_id)
    trial_id = optuna_compat.trial_id_of(trial)
    lease = grant(storage, trial_id, token, task.lease_s)
    suggest_all(trial, spec.search_space)
    seed = spec.seed + trial.number
    attrs.write(trial, {"seed": seed, "asked_at": round(time.time(), 3)})
    return Asked(trial_id, trial.number, dict(trial.params), seed, lease)
