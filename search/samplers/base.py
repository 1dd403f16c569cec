"""A sampler algorithm: an Optuna sampler with declared settings, run by the sampler loop."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler

from models.data import DatasetInfo
from models.fields import as_dict, declared, setting
from search import registry
from search.algorithm import (
    AlgorithmKind,
    Env,
    FieldError,
    Run,
    StudyAlgorithm,
    StudyRef,
    at,
)
from search.loop import StudyLoop
from search.loop.external import ExternalRun
from search.spec import MAX_SEED, AlgorithmSpec, ExternalTask, ParamSpec, StudySpec
from search.trials import kind_of

Space = tuple[ParamSpec, ...]
Problems = Callable[[Any, Space, int], list[str]]
SEED_DOC = "Random seed (default: the study's seed)."


def seed_setting() -> Any:
    """The ``seed`` setting every sampler has."""
    return setting(None, SEED_DOC, low=0, high=MAX_SEED)


def _none(settings: Any, space: Space, n_objectives: int) -> list[str]:
    return []


@dataclass(frozen=True)
class SamplerAlgorithm(StudyAlgorithm):
    """An Optuna sampler under a name: ``factory(space, **settings)`` builds it.

    ``problems(settings, space, n_objectives)`` says why a study cannot use it (a grid too
    large); ``trial_cap(space)`` bounds the trials it can propose (a grid's size).
    """

    name: str
    description: str
    settings: type
    factory: Callable[..., BaseSampler]
    multi_objective: bool = True
    problems: Problems = _none
    trial_cap: Callable[[Space], int | None] = lambda _space: None
    kind: AlgorithmKind = "sampler"

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        settings, errors = self.read_settings(spec.algorithm.settings)
        if settings is None:
            return errors
        n = len(spec.objectives)
        if n > 1 and not self.multi_objective:
            return at(
                ("algorithm",), [f"{self.name} optimizes a single objective; this study has {n}"]
            )
        return at(("algorithm",), self.problems(settings, spec.search_space, n))

    def sampler(self, given: Mapping[str, Any], space: Space, seed: int) -> BaseSampler:
        """The sampler for checked settings ``given``; ``seed`` stands in for a seed the
        settings leave out.

        Raises:
            ValueError: a setting is invalid (the first problem).
        """
        settings, errors = self.read_settings(given)
        if settings is None:
            raise ValueError(errors[0].msg)
        return self._create(settings, space, seed)

    def _create(self, settings: Any, space: Space, seed: int) -> BaseSampler:
        values = as_dict(settings)
        if "seed" in values and values["seed"] is None:
            values["seed"] = seed
        return self.factory(space=space, **values)

    def study_sampler(self, spec: StudySpec, offset: int) -> BaseSampler:
        """The sampler of a stored study, its seed offset by ``offset`` (a trial count or
        number), so that a new sampler does not replay the proposals of an earlier one."""
        given = dict(spec.algorithm.settings)
        if "seed" in declared(self.settings):
            seed = given.get("seed")
            given["seed"] = (spec.seed if seed is None else seed) + offset
        return self._create(self.stored_settings(given), spec.search_space, spec.seed)

    def open(self, spec: StudySpec, study: StudyRef, env: Env) -> Run:
        """The sampler loop of ``spec`` (an external task's run: its clients ask the trials).
        A study that ran before offsets its sampler's seed by its trial count, so the new
        sampler does not replay the proposals already made."""
        if isinstance(spec.task, ExternalTask):
            loaded = optuna.load_study(study_name=study.name, storage=study.storage)
            return ExternalRun(spec, loaded, env)
        n_existing = len(study.storage.get_all_trials(_study_id(study), deepcopy=False))
        loaded = optuna.load_study(
            study_name=study.name,
            storage=study.storage,
            sampler=self.study_sampler(spec, n_existing),
            pruner=create_pruner(spec.pruner),
        )
        return StudyLoop(spec, loaded, env, kind_of(spec.task), self.trial_cap(spec.search_space))


def _study_id(study: StudyRef) -> int:
    return study.storage.get_study_id_from_name(study.name)


def create_pruner(spec: AlgorithmSpec | None) -> BasePruner:
    """A stored study's pruner, its settings read leniently (no early stopping without one:
    Optuna's default would be a median pruner)."""
    if spec is None:
        return NopPruner()
    algorithm = registry.pruner(spec.name)
    return algorithm.create(algorithm.stored_settings(spec.settings))
