"""The API's edge: a request body into the domain's :class:`~search.spec.StudySpec`, a study
back into the JSON a response shows, and a domain path into the request's path."""

from typing import Any

from search.algorithm import Loc
from search.document import task_of, to_document
from search.spec import (
    AlgorithmSpec,
    Budget,
    Condition,
    Constraint,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    WarmStart,
)
from service.api.schemas.search_space import CategoricalParam, ConditionIn, FloatParam, Param
from service.api.schemas.study import StudyCreate


def to_spec(body: StudyCreate) -> StudySpec:
    """The domain form of a submitted study (its architecture section already expanded)."""
    pruner, algorithm, budget = body.pruner, body.algorithm, body.budget
    return StudySpec(
        name=body.name,
        objectives=tuple(Objective(o.metric, o.direction) for o in body.objective_list()),
        pruner=None if pruner is None else AlgorithmSpec(pruner.name, dict(pruner.settings)),
        algorithm=AlgorithmSpec(algorithm.name, dict(algorithm.settings)),
        search_space=tuple(_param_spec(n, p) for n, p in body.search_space.items()),
        budget=Budget(
            budget.max_trials, budget.max_failed_trials, budget.timeout_s, budget.target_value
        ),
        parallelism=body.parallelism,
        resources=Resources(body.resources.cpu, body.resources.gpu),
        task=task_of(body.task.model_dump()),
        seed=body.seed,
        warm_start=WarmStart(
            tuple(dict(p) for p in body.warm_start.points), body.warm_start.from_study
        ),
        architecture=None
        if body.architecture is None
        else body.architecture.model_dump(mode="json"),
        constraints=tuple(Constraint(c.metric, c.le, c.ge) for c in body.constraints),
    )


def _param_spec(name: str, p: Param) -> ParamSpec:
    when = tuple(_condition(c) for c in p.when)
    if isinstance(p, CategoricalParam):
        return ParamSpec(name, "categorical", choices=tuple(p.choices), when=when)
    step = p.step if isinstance(p, FloatParam) else float(p.step)
    return ParamSpec(name, p.type, low=p.low, high=p.high, log=p.log, step=step, when=when)


def _condition(c: ConditionIn) -> Condition:
    values = None if c.in_ is None else tuple(c.in_)
    return Condition(c.param, values, c.gt, c.ge, c.lt, c.le)


def spec_json(spec: StudySpec) -> dict[str, Any]:
    """A study as a response shows it: the JSON a client could submit again (the stored
    document's shape, without its version)."""
    document = to_document(spec)
    del document["spec_version"]
    return document


def request_loc(loc: Loc, body: StudyCreate) -> Loc:
    """A domain path as the request's: a single ``objective`` given as such is
    ``objective``, not ``objectives[0]``."""
    if loc[:2] == ("objectives", 0) and body.objectives is None:
        return ("objective", *loc[2:])
    return loc
