"""A training task checked against the catalog and its dataset, before anything is written.

Does the model family fit the data kind, do the group counts divide the widths, does the loss
suit the task, can every search-space bound or choice be used as given, and does the fixed
model actually build and run a forward pass (on PyTorch's meta device: no memory, whatever its
size), with at most :data:`MAX_PARAMETERS` parameters. Each error carries its path in the study.
"""

import typing
from typing import Any

import torch

from models.data import DatasetInfo
from models.families import build_model, check_model, get_family
from models.fields import Declared, declared
from models.metrics import metric_error
from models.training.config import TrainConfig, check_training, n_outputs
from search.algorithm import FieldError, Loc
from search.spec import ParamSpec, StudySpec, TrainTask

# The largest fixed model a study may train: counted on PyTorch's meta device (shapes, no
# memory), so checking any spec costs the API process neither time nor memory.
MAX_PARAMETERS = 100_000_000


def check_train_task(spec: StudySpec, task: TrainTask, info: DatasetInfo) -> list[FieldError]:
    """Objectives, model, training and search space of a training on ``info``'s data."""
    errors = [
        FieldError(("objectives", i, "metric"), problem)
        for i, objective in enumerate(spec.objectives)
        if (problem := metric_error(objective.metric, info.task))
    ]
    model, training = dict(task.model), dict(task.training)
    task_errors = section_errors("model", model, training, info)
    task_errors += section_errors("training", model, training, info)
    errors += [FieldError(("task", *loc), msg) for loc, msg in task_errors]
    if not task_errors:
        errors += _build_errors(model, training, info)
    for param in spec.search_space:
        errors += [
            FieldError(("search_space", param.name, *loc), msg)
            for loc, msg in _param_errors(param, task, info, bool(task_errors))
        ]
    return errors


def section_errors(
    section: str, model: dict[str, Any], training: dict[str, Any], info: DatasetInfo
) -> list[tuple[Loc, str]]:
    """The errors of the task's ``model`` or ``training`` section, at their fields."""
    found = check_model(model, info) if section == "model" else check_training(training, info)
    return [((section, field), msg) for field, msg in found]


def _build_errors(
    model: dict[str, Any], training: dict[str, Any], info: DatasetInfo
) -> list[FieldError]:
    """Build the fixed model and run one forward pass on the meta device (shapes only, no
    memory allocated): what static checks miss shows here, and its parameters are counted."""
    try:
        out_units = n_outputs(TrainConfig(**training), info)
        with torch.device("meta"):
            net = build_model(model, info.input_shape, out_units).train(False)
            count = sum(p.numel() for p in net.parameters())
            if count > MAX_PARAMETERS:
                msg = f"the model has {count:,} parameters; at most {MAX_PARAMETERS:,} are allowed"
                return [FieldError(("task", "model"), msg)]
            with torch.no_grad():
                out = net(torch.empty(2, *info.input_shape))
        if tuple(out.shape) != (2, out_units):
            return [FieldError(("task", "model"), f"the model outputs shape {list(out.shape)}")]
    except Exception as exc:
        return [FieldError(("task", "model"), f"the model cannot build for {info.name!r}: {exc}")]
    return []


def _param_errors(
    param: ParamSpec, task: TrainTask, info: DatasetInfo, task_invalid: bool
) -> list[tuple[Loc, str]]:
    name = param.name
    section, _, rest = name.partition(".")
    field, _, index = rest.partition(".")
    if section not in ("model", "training"):
        return [((), f"unknown parameter {name!r}; it must start with model. or training.")]
    table = _settings_of(section, task)
    if table is None:
        return []  # the family itself is invalid: reported at task.model.family
    if field not in table or not table[field].rules.searchable:
        valid = ", ".join(f"{section}.{k}" for k, d in table.items() if d.rules.searchable)
        return [((), f"unknown parameter {name!r}; searchable in {section}: {valid}")]
    annotation = table[field].annotation
    if index:
        values = task.model if section == "model" else task.training
        current = values.get(field, table[field].default)
        if not index.isdigit() or not isinstance(current, list) or int(index) >= len(current):
            return [((), f"{name} needs {section}.{field} set to a list with element {index}")]
        annotation = typing.get_args(annotation)[0]  # list[int] | None → list[int]
        annotation = typing.get_args(annotation)[0] if typing.get_args(annotation) else int
    kind_error = _kind_error(param, annotation)
    if kind_error:
        return [(("type",), kind_error)]
    if task_invalid:
        return []
    candidates: list[tuple[Loc, Any]] = (
        [(("choices", i), c) for i, c in enumerate(param.choices)]
        if param.kind == "categorical"
        else [(("low",), param.low), (("high",), param.high)]
    )
    errors: list[tuple[Loc, str]] = []
    for loc, value in candidates:
        trial = task.with_params({name: value})  # the task as a trial would get it
        found = section_errors(section, dict(trial.model), dict(trial.training), info)
        if found:
            errors.append((loc, f"{value!r} is not a valid {name}: {found[0][1]}"))
    return errors


def _settings_of(section: str, task: TrainTask) -> dict[str, Declared] | None:
    if section == "training":
        return declared(TrainConfig)
    try:
        return declared(get_family(task.model.get("family", "mlp")).config)
    except ValueError:
        return None


def _kind_error(param: ParamSpec, annotation: Any) -> str | None:
    if param.kind == "categorical":
        return None
    base = set(typing.get_args(annotation)) or {annotation}
    if float in base:
        return None
    if int in base:
        if param.kind == "int":
            return None
        return f"{param.name} is an integer; use type int or categorical"
    return f"{param.name} takes names or flags; use type categorical"


def with_defaults(task: TrainTask) -> TrainTask:
    """The task with every model and training field spelled out."""
    family = get_family(task.model.get("family", "mlp"))
    model = {**_defaults(family.config), **family.defaults, **task.model}
    return TrainTask(task.dataset, model, {**_defaults(TrainConfig), **task.training})


def _defaults(cls: type) -> dict[str, Any]:
    return {name: d.default for name, d in declared(cls).items()}
