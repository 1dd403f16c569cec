"""A submitted study checked before anything is written: each problem a field error.

:func:`check_study` asks the study's algorithm, its pruner and its trial kind what they need,
and checks what belongs to no one of them (conditions, a target with several objectives, warm
start points). Only a submission is checked this way; a stored study is read leniently
(:mod:`search.document`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from models.data import DatasetInfo, dataset_plugin
from models.families import family_plugin
from models.plugins import Plugin
from search import registry
from search.algorithm import FieldError, Loc
from search.functions import function_plugin
from search.spec import FunctionTask, StudySpec
from search.trials import kind_of


def check_study(spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
    """Every reason ``spec`` cannot run, each at its path in the study.

    Args:
        spec: the study as submitted.
        data: its dataset's metadata; None for a task without a dataset, or one that could not
            be found (that error is the caller's, where the dataset is named).
    """
    try:
        algorithm = registry.study_algorithm(spec.algorithm.name)
    except ValueError as exc:
        return [FieldError(("algorithm", "name"), str(exc))]
    errors = algorithm.check(spec, data)
    if spec.pruner is not None:
        try:
            errors += registry.pruner(spec.pruner.name).check(spec, data)
        except ValueError as exc:
            errors.append(FieldError(("pruner", "name"), str(exc)))
    if len(spec.objectives) > 1 and spec.budget.target_value is not None:
        errors.append(
            FieldError(("budget", "target_value"), "a target value needs a single objective")
        )
    errors += _condition_errors(spec)
    errors += kind_of(spec.task).check(spec, data)
    errors += _warm_start_errors(spec)
    return errors


def _condition_errors(spec: StudySpec) -> list[FieldError]:
    errors = []
    names = [p.name for p in spec.search_space]
    for position, param in enumerate(spec.search_space):
        for i, cond in enumerate(param.when):
            if cond.param not in names[:position]:
                errors.append(
                    FieldError(
                        ("search_space", param.name, "when", i, "param"),
                        "a condition must name an earlier parameter of the search space; "
                        f"{cond.param!r} is not one",
                    )
                )
    return errors


def _warm_start_errors(spec: StudySpec) -> list[FieldError]:
    errors = []
    for i, point in enumerate(spec.warm_start.points):
        errors += point_errors(spec, point, ("warm_start", "points", i))
    return errors


def point_errors(spec: StudySpec, point: Mapping[str, Any], loc: Loc) -> list[FieldError]:
    """Why ``point`` (some or all of a trial's parameters) is not in the study's search space,
    each problem at ``loc + (parameter,)``: a warm-start point, an enqueued trial."""
    errors = []
    space = {p.name: p for p in spec.search_space}
    for key, value in point.items():
        if key not in space:
            errors.append(
                FieldError((*loc, key), f"{key!r} is not a parameter of the search space")
            )
        elif not space[key].contains(value):
            errors.append(FieldError((*loc, key), f"{value!r} is outside {key}'s range or choices"))
        else:
            # A value for a conditional parameter whose parent the point sets so that it is
            # inactive would be dropped unseen: say so.
            unmet = [c for c in space[key].when if c.param in point and not c.holds(point)]
            if unmet:
                parent = unmet[0].param
                errors.append(
                    FieldError(
                        (*loc, key),
                        f"{key} is not used when {parent} is {point[parent]!r} (its condition "
                        f"on {parent} does not hold): drop it or change {parent}",
                    )
                )
    return errors


def complete(spec: StudySpec) -> StudySpec:
    """The study with every default of its task spelled out (call after :func:`check_study`),
    so the stored study keeps its meaning when a later release changes a default."""
    return replace(spec, task=kind_of(spec.task).complete(spec.task))


def warm_up() -> None:
    """Pay once, at start-up, what a process's first check of a network pays: a forward pass
    on the meta device imports torch's decompositions and ``torch._dynamo`` (some 3 s of CPU
    here) on its first call, which would otherwise fall on the first submission."""
    with torch.device("meta"), torch.no_grad():
        torch.nn.Linear(2, 2)(torch.empty(2, 2))


def _plugins_named(spec: StudySpec) -> list[tuple[Loc, str, str, Plugin]]:
    """The catalog entries of installed packages that ``spec`` names: (path, group, name,
    origin)."""
    task = spec.task
    named: list[tuple[Loc, str, str, Plugin | None]] = []
    if isinstance(task, FunctionTask):
        named.append((("task", "name"), "functions", task.name, function_plugin(task.name)))
    dataset = getattr(task, "dataset", None)
    if dataset is not None and dataset.name is not None:
        origin = dataset_plugin(dataset.name)
        named.append((("task", "dataset", "name"), "datasets", dataset.name, origin))
    model = getattr(task, "model", None)
    if isinstance(model, Mapping) and isinstance(model.get("family"), str):
        family = model["family"]
        named.append((("task", "model", "family"), "families", family, family_plugin(family)))
    return [(loc, g, name, origin) for loc, g, name, origin in named if origin is not None]


def plugin_errors(
    spec: StudySpec, inventories: Sequence[Mapping[str, Mapping[str, str]]]
) -> list[FieldError]:
    """A plugin's entry that ``spec`` names but that no live scheduler's Ray workers have, in
    the same package version (``inventories``: each live replica's, see
    :mod:`service.scheduling.plugins`; none known: nothing to check against)."""
    if not inventories:
        return []
    errors = []
    for loc, group, name, origin in _plugins_named(spec):
        have = {inv.get(group, {}).get(name) for inv in inventories} - {None}
        if str(origin) in have:
            continue
        what = f"{group[:-1].replace('familie', 'family')} {name!r}"
        there = f"they have {', '.join(sorted(map(str, have)))}" if have else "they lack it"
        errors.append(
            FieldError(
                loc,
                f"{what} comes from the plugin package {origin}, which the cluster's Ray workers "
                f"do not have ({there}): install that package in the image of every Ray node",
            )
        )
    return errors
