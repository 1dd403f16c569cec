"""DARTS as a study algorithm: one-shot differentiable search of a cell space, in one trial.

A study with ``algorithm: darts`` and a cell architecture runs exactly one trial of the
``oneshot`` kind (:mod:`search.trials.oneshot`): it trains a supernet whose every edge mixes
the candidate operations with softmax weights (alpha), weights and alpha trained bi-level on
the two halves of the training split; the argmax operation of each edge is the derived cell.
The same trial then trains the derived architecture from scratch with the study's training
settings, like any trial, and its objective is the trial's value. What lands in Optuna: the
trial's params are the derived operation of each edge (set once the search ends), its
intermediate values the derived network's epochs; user attributes ``genotype``,
``darts_search`` (per search epoch: supernet metrics and the cell it would derive) and
``darts_alpha`` (final probabilities, one row an edge).
"""

from dataclasses import dataclass

import optuna
from optuna.pruners import NopPruner

from models.darts import DartsConfig
from models.data import DatasetInfo
from search.algorithm import (
    AlgorithmKind,
    Env,
    FieldError,
    Run,
    StudyAlgorithm,
    StudyRef,
    at,
    proposes_nothing,
    trains_networks,
)
from search.loop import StudyLoop
from search.spec import StudySpec, TrainTask
from search.trials.oneshot import EDGE_PARAMS, OneShotKind


def darts_ops(spec: StudySpec) -> tuple[str, ...]:
    """The candidate operations of every edge (the study's cell space)."""
    first = next(p for p in spec.search_space if p.name in EDGE_PARAMS)
    return tuple(str(c) for c in first.choices)


def check_darts(spec: StudySpec) -> list[str]:
    """Every reason ``spec``'s space cannot be searched by DARTS; empty when it can."""
    problems: list[str] = []
    if spec.task.model.get("family") != "nb201":  # type: ignore[union-attr]
        return [
            "darts relaxes a cell space (architecture kind cell) into a continuous mixture of "
            "operations; this study's choices (a macro architecture or plain parameters) "
            "cannot be relaxed"
        ]
    if len(spec.objectives) != 1:
        n = len(spec.objectives)
        problems.append(f"darts optimizes a single objective; this study has {n}")
    names = {p.name for p in spec.search_space}
    other = sorted(names - set(EDGE_PARAMS))
    if other:
        problems.append(
            f"darts searches the cell in one trial; it cannot also search {', '.join(other)}"
        )
    fixed = [p for p in EDGE_PARAMS if p not in names]
    choices = {tuple(p.choices) for p in spec.search_space if p.name in EDGE_PARAMS}
    if fixed or len(choices) > 1:
        problems.append(
            "darts relaxes every edge over the same operations: give them with "
            "architecture.ops, without per-edge lists"
        )
    elif choices and set(next(iter(choices))) <= {"none"}:
        problems.append("darts needs an operation other than none")
    return problems


@dataclass(frozen=True)
class Darts(StudyAlgorithm):
    name: str = "darts"
    kind: AlgorithmKind = "oneshot"
    description: str = (
        "DARTS (first order): one trial trains a supernet whose edges mix every candidate "
        "operation, weights and architecture bi-level on the two halves of the training "
        "split, derives the argmax cell and trains it. Cell architectures only."
    )
    settings: type = DartsConfig
    multi_objective: bool = False

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        settings, errors = self.read_settings(spec.algorithm.settings)
        if settings is None:
            return errors
        if not isinstance(spec.task, TrainTask):  # a function or an external task
            return trains_networks(self.name, spec) + proposes_nothing(self.name, spec)
        return at(("algorithm",), check_darts(spec)) + proposes_nothing(self.name, spec)

    def open(self, spec: StudySpec, study: StudyRef, env: Env) -> Run:
        config = self.stored_settings(spec.algorithm.settings)
        loaded = optuna.load_study(
            study_name=study.name,
            storage=study.storage,
            sampler=optuna.samplers.RandomSampler(spec.seed),  # asks nothing: the trial searches
            pruner=NopPruner(),
        )
        kind = OneShotKind(config, darts_ops(spec))
        capped = "the one-shot search trained its supernet and derived its architecture"
        return StudyLoop(spec, loaded, env, kind, trial_cap=1, capped=capped)


ALGORITHMS = {"darts": Darts()}
