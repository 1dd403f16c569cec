"""The ``fewshot`` trial kind: meta-learn an embedding on N-way K-shot episodes.

The task names a classification dataset, the embedding network (any catalog family; its head
gives ``fewshot.embedding_dim`` units) and ``fewshot`` (:class:`models.fewshot.FewShotConfig`).
Meta-training and meta-validation classes are disjoint (``fewshot.val_classes``). Each epoch
yields ``val_episode_accuracy`` (learning curves, pruning); the result adds
``val_episode_ci95``.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch

from models.data import Dataset, DatasetInfo, load_dataset
from models.families import check_model, get_family
from models.fewshot import FewShotConfig, FewShotResult, meta_train, parse_fewshot, split_classes
from models.fewshot.train import build_meta_model
from models.fields import declared
from models.training.results import EpochMetrics
from search.algorithm import FieldError, Loc
from search.spec import DatasetRef, FewShotTask, StudySpec, Task
from search.trials.base import Payload, TrialKind
from search.trials.events import EpochEnd, Event, Finished, Started
from search.trials.train_checks import MAX_PARAMETERS, _kind_error
from search.trials.transfer import OWN_TRAINERS

METRICS = {"val_episode_accuracy": "maximize", "val_episode_ci95": "minimize"}
METRICS_ALL = {**METRICS, "train_loss": "minimize", "param_count": "minimize"}


@dataclass(frozen=True)
class FewShotPayload(Payload):
    """Meta-train ``model`` (the embedding) as ``fewshot`` says."""

    model: dict[str, Any]
    fewshot: dict[str, Any]

    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        assert data is not None, "episodes need the dataset"
        yield where
        cfg = FewShotConfig(**self.fewshot)
        for item in meta_train(self.model, cfg, data, seed, where.device):
            if isinstance(item, EpochMetrics):
                yield EpochEnd(item.epoch, item.metrics)
            else:
                assert isinstance(item, FewShotResult)
                yield Finished(metrics=item.metrics, best_epoch=item.best_epoch)


@lru_cache(maxsize=32)
def _class_counts(name: str, options: tuple[tuple[str, Any], ...]) -> tuple[int, ...]:
    data = load_dataset(name, options=dict(options))
    y = np.concatenate([data.y_train, data.y_val])
    return tuple(int(c) for c in np.bincount(y, minlength=data.n_classes))


def class_counts(ref: DatasetRef) -> tuple[int, ...] | None:
    """Samples per class of a named dataset (None for an upload: checked when it runs)."""
    if ref.name is None:
        return None
    return _class_counts(ref.name, tuple(sorted(ref.options.items())))


class FewShotKind(TrialKind):
    """Episodes, an embedding and a meta-learner; no checkpoints (a trial cut short starts
    over), no exported weights."""

    name: ClassVar[str] = "fewshot"
    resumable: ClassVar[bool] = False

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        task = spec.task
        assert isinstance(task, FewShotTask)
        errors = [
            FieldError(
                ("objectives", i, "metric"), f"a few-shot task measures {', '.join(METRICS_ALL)}"
            )
            for i, o in enumerate(spec.objectives)
            if o.metric not in METRICS_ALL
        ]
        if spec.algorithm.name in OWN_TRAINERS:
            msg = f"{spec.algorithm.name} trains networks its own way, not on episodes"
            errors.append(FieldError(("algorithm", "name"), msg))
        if spec.architecture is not None:
            errors.append(
                FieldError(("architecture",), "an architecture section needs a train task")
            )
        if data is None:
            return errors
        if data.task == "regression":
            loc: Loc = ("task", "dataset")
            return [
                *errors,
                FieldError(loc, f"episodes need class labels; {data.name!r} is regression"),
            ]
        if task.dataset.classes is not None:
            errors.append(
                FieldError(
                    ("task", "dataset", "classes"),
                    "a few-shot task splits classes with fewshot.val_classes",
                )
            )
        errors += [FieldError(("task", *loc), msg) for loc, msg in _task_errors(task, data)]
        for param in spec.search_space:
            errors += [
                FieldError(("search_space", param.name, *loc), m)
                for loc, m in _param_errors(task, param, data)
            ]
        return errors

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> FewShotPayload:
        task = spec.task.with_params(params)
        assert isinstance(task, FewShotTask)
        return FewShotPayload(dict(task.model), dict(task.fewshot))

    def complete(self, task: Task) -> Task:
        assert isinstance(task, FewShotTask)
        family = get_family(task.model.get("family", "mlp"))
        defaults = {n: d.default for n, d in declared(family.config).items()}
        fewshot = {n: d.default for n, d in declared(FewShotConfig).items()}
        return FewShotTask(
            task.dataset,
            {**defaults, **family.defaults, **task.model},
            fewshot={**fewshot, **task.fewshot},
        )


def _task_errors(task: FewShotTask, info: DatasetInfo) -> list[tuple[Loc, str]]:
    """The embedding, the few-shot fields, and the episodes against the data."""
    errors: list[tuple[Loc, str]] = [(("model", f), m) for f, m in check_model(task.model, info)]
    cfg, found = parse_fewshot(task.fewshot)
    errors += [(("fewshot", f), m) for f, m in found]
    if cfg is None:
        return errors
    errors += _episode_errors(cfg, info, class_counts(task.dataset))
    if not errors:
        errors += _build_errors(task, info, cfg)
    return errors


def _build_errors(
    task: FewShotTask, info: DatasetInfo, cfg: FewShotConfig
) -> list[tuple[Loc, str]]:
    """Build the embedding on the meta device (no memory) and run a forward pass."""
    try:
        with torch.device("meta"):
            net = build_meta_model(task.model, info.input_shape, cfg)
            count = sum(p.numel() for p in net.parameters())
            if count > MAX_PARAMETERS:
                return [
                    (("model",), f"the model has {count:,} parameters; at most {MAX_PARAMETERS:,}")
                ]
            with torch.no_grad():
                out = net.train(False).embedding(torch.empty(2, *info.input_shape))
    except Exception as exc:
        return [(("model",), f"the embedding cannot build for {info.name!r}: {exc}")]
    if tuple(out.shape) != (2, cfg.embedding_dim):
        return [(("model",), f"the embedding outputs shape {list(out.shape)}")]
    return []


def _episode_errors(
    cfg: FewShotConfig, info: DatasetInfo, counts: tuple[int, ...] | None
) -> list[tuple[Loc, str]]:
    n = info.n_outputs
    held = cfg.val_classes or []
    bad = [c for c in held if c >= n]
    if bad:
        return [
            (("fewshot", "val_classes"), f"class {bad[0]} is not one of {info.name!r}'s 0..{n - 1}")
        ]
    if len(set(held)) != len(held):
        return [(("fewshot", "val_classes"), "each class may be named once")]
    train_classes, val_classes = split_classes(cfg, n)
    errors: list[tuple[Loc, str]] = []
    fewest = min(len(train_classes), len(val_classes))
    if cfg.ways > fewest:
        msg = (
            f"{cfg.ways}-way episodes need {cfg.ways} classes on each side; {info.name!r} has "
            f"{len(train_classes)} meta-training and {len(val_classes)} meta-validation classes"
        )
        errors.append((("fewshot", "ways"), msg))
    if counts is not None:
        smallest = min(counts[c] for c in range(n))
        if cfg.shots + cfg.queries > smallest:
            msg = (
                f"{cfg.shots} shots + {cfg.queries} queries need {cfg.shots + cfg.queries} samples "
                f"of each class; the smallest class of {info.name!r} has {smallest}"
            )
            errors.append((("fewshot", "shots"), msg))
    return errors


def _param_errors(task: FewShotTask, param: Any, info: DatasetInfo) -> list[tuple[Loc, str]]:
    section, _, field = param.name.partition(".")
    if section == "model":
        table = (
            declared(get_family(task.model.get("family", "mlp")).config)
            if _family_ok(task)
            else None
        )
    elif section == "fewshot":
        table = declared(FewShotConfig)
    else:
        return [((), f"unknown parameter {param.name!r}; it must start with model. or fewshot.")]
    if table is None:
        return []
    if field not in table or not table[field].rules.searchable:
        valid = ", ".join(f"{section}.{k}" for k, d in table.items() if d.rules.searchable)
        return [((), f"unknown parameter {param.name!r}; searchable in {section}: {valid}")]
    kind_error = _kind_error(param, table[field].annotation)
    if kind_error:
        return [(("type",), kind_error)]
    candidates = (
        [(("choices", i), c) for i, c in enumerate(param.choices)]
        if param.kind == "categorical"
        else [(("low",), param.low), (("high",), param.high)]
    )
    errors: list[tuple[Loc, str]] = []
    for loc, value in candidates:
        trial = task.with_params({param.name: value})
        found = _task_errors(trial, info)
        if found:
            errors.append((loc, f"{value!r} is not a valid {param.name}: {found[0][1]}"))
    return errors


def _family_ok(task: FewShotTask) -> bool:
    try:
        get_family(task.model.get("family", "mlp"))
    except ValueError:
        return False
    return True


FEWSHOT = FewShotKind()
