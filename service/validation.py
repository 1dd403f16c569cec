"""A submitted study checked against the catalog and its dataset, before anything is written.

Field-level rules live in the pydantic schemas; here are the ones that need the catalog or the
data: does the model family fit the data kind, do the group counts divide the widths, does the
loss suit the task, can every search-space bound or choice be used as given, and does the fixed
model actually build and run a forward pass. Each error carries the location of the field.
"""

import math
import typing
from collections.abc import Callable
from typing import Any

import torch

from models.builder import build_model, check_model, get_family
from models.data import DatasetInfo, dataset_info
from models.knobs import FieldErrors, knobs
from models.metrics import METRICS, metric_error
from models.train import TrainConfig, check_training, n_outputs
from search.darts import check_darts
from search.functions import get_function
from search.pbt import check_pbt, pbt_settings
from search.registry import STUDY_KINDS, SettingError, get_algorithm
from search.spec import TaskSpec
from service.schemas import CategoricalParam, DatasetIn, Param, StudyCreate

Loc = tuple[str | int, ...]
Errors = list[tuple[Loc, str]]
UploadInfo = Callable[[str], DatasetInfo | None]
StudyDirections = Callable[[int], list[str] | None]

_MAX_BUILD_ELEMENTS = 50_000_000  # skip the trial build of models too big to build cheaply


def check_study(
    body: StudyCreate, upload_info: UploadInfo, study_directions: StudyDirections
) -> Errors:
    """Every reason ``body`` cannot run, with locations relative to the request body.

    Args:
        body: a study that passed the schema.
        upload_info: looks up an uploaded dataset's metadata by id (None if unknown).
        study_directions: looks up another study's objective directions by id (None if
            unknown), for warm starts.
    """
    errors = _search_errors(body)
    if body.task.kind == "function":
        return errors + _function_errors(body) + _warm_start_errors(body, study_directions)
    assert body.task.dataset is not None  # the schema requires it for a train task
    info = _dataset(body.task.dataset, upload_info, errors)
    if info is None:
        return errors
    settings_ok = not any(loc[:2] == ("algorithm", "settings") for loc, _ in errors)
    if get_algorithm(body.algorithm.name, STUDY_KINDS).kind == "population" and settings_ok:
        errors += [(("algorithm",), m) for m in check_pbt(body.to_spec(), info)]
    objectives = body.objective_list()
    for i, objective in enumerate(objectives):
        problem = metric_error(objective.metric, info.task)
        loc: Loc = ("objectives", i, "metric") if body.objectives else ("objective", "metric")
        if problem:
            errors.append((loc, problem))
    errors += _warm_start_errors(body, study_directions)
    model = {"family": "mlp", **body.task.model}
    training = dict(body.task.training)
    task_errors = _section_errors("model", model, training, info)
    task_errors += _section_errors("training", model, training, info)
    errors += [(("task", *loc), msg) for loc, msg in task_errors]
    if not task_errors:
        errors += _build_errors(model, training, info)
    for name, param in body.search_space.items():
        errors += [
            (("search_space", name, *loc), msg)
            for loc, msg in _param_errors(name, param, model, training, info, bool(task_errors))
        ]
    return errors


def _search_errors(body: StudyCreate) -> Errors:
    """The algorithm, pruner, budget and conditions against each other."""
    errors: Errors = []
    spec = body.to_spec()
    n_objectives = len(spec.objectives)
    algorithm = get_algorithm(body.algorithm.name, STUDY_KINDS)
    try:
        settings = algorithm.check_settings(body.algorithm.settings)
        if algorithm.kind == "population":
            pbt_settings(spec)  # bounds between settings; the rest once the data is known
            errors += _population_errors(body)
        elif algorithm.kind == "oneshot":
            errors += [(("algorithm",), m) for m in check_darts(spec)]
            errors += _population_errors(body)
        else:
            errors += [
                (("algorithm",), m)
                for m in algorithm.problems(settings, spec.search_space, n_objectives)
            ]
    except SettingError as exc:
        errors.append((("algorithm", "settings", exc.setting), str(exc)))
    if body.pruner is not None:
        pruner = get_algorithm(body.pruner.name, "pruner")
        try:
            checked = pruner.check_settings(body.pruner.settings)
            errors += [(("pruner",), m) for m in pruner.problems(checked, spec.search_space, 1)]
        except SettingError as exc:
            errors.append((("pruner", "settings", exc.setting), str(exc)))
        if n_objectives > 1:
            errors.append((("pruner",), "early stopping needs a single objective"))
        elif not METRICS[spec.objective.metric].per_epoch:
            errors.append(
                (
                    ("pruner",),
                    f"early stopping needs an objective measured every epoch; "
                    f"{spec.objective.metric} is measured at the end",
                )
            )
    if n_objectives > 1 and body.budget.target_value is not None:
        errors.append((("budget", "target_value"), "a target value needs a single objective"))
    names = list(body.search_space)
    for name, param in body.search_space.items():
        for i, cond in enumerate(param.when):
            if cond.param not in names[: names.index(name)]:
                errors.append(
                    (
                        ("search_space", name, "when", i, "param"),
                        f"a condition must name an earlier parameter of the search space; "
                        f"{cond.param!r} is not one",
                    )
                )
    return errors


def _function_errors(body: StudyCreate) -> Errors:
    """A function task: a sampler, the ``value`` objective, and numeric arguments the function
    takes, each searched or fixed once."""
    assert body.task.name is not None  # the schema requires it for a function task
    fn = get_function(body.task.name)
    errors: Errors = []
    algorithm = get_algorithm(body.algorithm.name, STUDY_KINDS)
    if algorithm.kind in ("population", "oneshot"):
        errors.append(
            (("algorithm", "name"), f"{algorithm.name} trains networks; a function task cannot")
        )
    for i, objective in enumerate(body.objective_list()):
        loc: Loc = ("objectives", i, "metric") if body.objectives else ("objective", "metric")
        if objective.metric != "value":
            errors.append((loc, f"a function task measures value only, not {objective.metric}"))
    if body.architecture is not None:
        errors.append((("architecture",), "an architecture section needs a train task"))
    options = body.task.options
    for name in fn.unknown_arguments(body.search_space):
        errors.append((("search_space", name), f"{fn.name} takes no argument {name!r}"))
    for name in fn.unknown_arguments(options):
        errors.append((("task", "options", name), f"{fn.name} takes no argument {name!r}"))
    for name in options:
        if name in body.search_space:
            errors.append((("task", "options", name), f"{name} is searched; do not fix it too"))
    missing = fn.missing_arguments([*body.search_space, *options])
    if missing:
        errors.append(
            (
                ("search_space",),
                f"{fn.name} needs {', '.join(missing)}: search them or fix them in task.options",
            )
        )
    for name, param in body.search_space.items():
        if isinstance(param, CategoricalParam):
            for i, choice in enumerate(param.choices):
                if isinstance(choice, bool) or not isinstance(choice, int | float):
                    errors.append(
                        (
                            ("search_space", name, "choices", i),
                            f"a function's arguments are numbers, not {choice!r}",
                        )
                    )
    return errors


def _population_errors(body: StudyCreate) -> Errors:
    """What a population (PBT, PB2) or one-shot (DARTS) study cannot combine with: it does
    not ask a sampler for trials nor stops them early."""
    name = body.algorithm.name
    errors: Errors = []
    if body.pruner is not None:
        errors.append((("pruner",), f"{name} does not stop trials early; drop the pruner"))
    if body.warm_start.points or body.warm_start.from_study is not None:
        errors.append((("warm_start",), f"{name} proposes no trials to warm-start"))
    return errors


def _warm_start_errors(body: StudyCreate, study_directions: StudyDirections) -> Errors:
    errors: Errors = []
    space = {p.name: p for p in body.to_spec().search_space}
    for i, point in enumerate(body.warm_start.points):
        for key, value in point.items():
            loc: Loc = ("warm_start", "points", i, key)
            if key not in space:
                errors.append((loc, f"{key!r} is not a parameter of the search space"))
            elif not space[key].contains(value):
                errors.append((loc, f"{value!r} is outside {key}'s range or choices"))
    source = body.warm_start.from_study
    if source is not None:
        directions = study_directions(source)
        wanted = [o.direction for o in body.objective_list()]
        if directions is None:
            errors.append((("warm_start", "from_study"), f"study {source} not found"))
        elif directions != wanted:
            errors.append(
                (
                    ("warm_start", "from_study"),
                    f"study {source} optimizes {directions}; this study {wanted}",
                )
            )
    return errors


def with_defaults(body: StudyCreate) -> StudyCreate:
    """The study with every model and training field spelled out, and its objectives as a
    list, so the stored spec keeps its meaning even if a default changes in a later release
    (call after :func:`check_study`).
    """
    if body.task.kind == "function":
        return body.model_copy(update={"objective": None, "objectives": body.objective_list()})
    model = {"family": "mlp", **body.task.model}
    family = get_family(model["family"])
    defaults = {name: entry[2] for name, entry in knobs(family.config).items()}
    training = {name: entry[2] for name, entry in knobs(TrainConfig).items()}
    task = body.task.model_copy(
        update={
            "model": {**defaults, **family.defaults, **model},
            "training": {**training, **body.task.training},
        }
    )
    objectives = body.objective_list()
    return body.model_copy(update={"task": task, "objective": None, "objectives": objectives})


def _dataset(ds: DatasetIn, upload_info: UploadInfo, errors: Errors) -> DatasetInfo | None:
    if ds.upload_id is not None:
        info = upload_info(ds.upload_id)
        if info is None:
            errors.append(
                (("task", "dataset", "upload_id"), f"no uploaded dataset {ds.upload_id!r}")
            )
        return info
    assert ds.name is not None
    try:
        return dataset_info(ds.name, ds.options)
    except ValueError as exc:
        errors.append((("task", "dataset", "options"), str(exc)))
        return None


def _section_errors(
    section: str, model: dict[str, Any], training: dict[str, Any], info: DatasetInfo
) -> list[tuple[Loc, str]]:
    found: FieldErrors = (
        check_model(model, info) if section == "model" else check_training(training, info)
    )
    return [((section, field), msg) for field, msg in found]


def _build_errors(model: dict[str, Any], training: dict[str, Any], info: DatasetInfo) -> Errors:
    """Build the fixed model and run one forward pass: what static checks miss shows here."""
    if math.prod(info.input_shape) * 2 > _MAX_BUILD_ELEMENTS:
        return []
    try:
        out_units = n_outputs(TrainConfig(**training), info)
        net = build_model(model, info.input_shape, out_units).train(False)
        with torch.no_grad():
            out = net(torch.zeros(2, *info.input_shape))
        if tuple(out.shape) != (2, out_units):
            return [(("task", "model"), f"the model outputs shape {list(out.shape)}")]
    except Exception as exc:
        return [(("task", "model"), f"the model cannot build for {info.name!r}: {exc}")]
    return []


def _param_errors(
    name: str,
    param: Param,
    model: dict[str, Any],
    training: dict[str, Any],
    info: DatasetInfo,
    task_invalid: bool,
) -> list[tuple[Loc, str]]:
    section, _, rest = name.partition(".")
    field, _, index = rest.partition(".")
    sections = {"model": model, "training": training}
    if section not in sections:
        return [((), f"unknown parameter {name!r}; it must start with model. or training.")]
    table = _knob_table(section, model)
    if table is None:
        return []  # the family itself is invalid: reported at task.model.family
    if field not in table or not table[field][1].searchable:
        valid = ", ".join(f"{section}.{k}" for k, (_, kb, _) in table.items() if kb.searchable)
        return [((), f"unknown parameter {name!r}; searchable in {section}: {valid}")]
    annotation = table[field][0]
    if index:
        current = sections[section].get(field, table[field][2])
        if not index.isdigit() or not isinstance(current, list) or int(index) >= len(current):
            return [((), f"{name} needs {section}.{field} set to a list with element {index}")]
        annotation = typing.get_args(annotation)[0]  # list[int] | None → list[int]
        annotation = typing.get_args(annotation)[0] if typing.get_args(annotation) else int
    kind_error = _kind_error(name, param, annotation)
    if kind_error:
        return [(("type",), kind_error)]
    if task_invalid:
        return []
    candidates: list[tuple[Loc, Any]] = (
        [(("choices", i), c) for i, c in enumerate(param.choices)]
        if isinstance(param, CategoricalParam)
        else [(("low",), param.low), (("high",), param.high)]
    )
    errors: list[tuple[Loc, str]] = []
    fixed = TaskSpec(dataset={}, model=model, training=training)
    for loc, value in candidates:
        trial = fixed.with_params({name: value})  # the task as a trial would get it
        found = _section_errors(section, dict(trial.model), dict(trial.training), info)
        if found:
            errors.append((loc, f"{value!r} is not a valid {name}: {found[0][1]}"))
    return errors


def _knob_table(section: str, model: dict[str, Any]) -> dict[str, Any] | None:
    if section == "training":
        return knobs(TrainConfig)
    try:
        return knobs(get_family(model.get("family", "mlp")).config)
    except ValueError:
        return None


def _kind_error(name: str, param: Param, annotation: Any) -> str | None:
    if param.type == "categorical":
        return None
    base = {a for a in typing.get_args(annotation)} or {annotation}
    if float in base:
        return None
    if int in base:
        return None if param.type == "int" else f"{name} is an integer; use type int or categorical"
    return f"{name} takes names or flags; use type categorical"
