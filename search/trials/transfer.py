"""Trainings that start from another trial's weights (``task.init_from``) or train on a subset
of a dataset's classes (``task.dataset.classes``): the train kind with these two additions.

At submission the edge looks up the source trial (the caller's studies only) and hands its
exported ``spec.json`` to :func:`source_errors`, which builds both networks on PyTorch's meta
device and compares every tensor's shape outside the head. At run time the scheduler reads
the source's ``weights.pt`` (workers need no shared disk) and sends it with the payload.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import optuna
from optuna.trial import TrialState

from models.data import Dataset, DatasetInfo, classes_error, subset, subset_info
from models.training.config import TrainConfig, n_outputs
from models.training.transfer import (
    MAX_FREEZE,
    InitSpec,
    carried,
    freeze_errors,
    head_names,
    tensor_shapes,
)
from search import attrs
from search.algorithm import FieldError
from search.spec import InitFrom, StudySpec, Task, TrainTask
from search.trials.events import Event, Started
from search.trials.train import TrainKind, TrainPayload, train_events
from search.trials.train_checks import check_train_task, with_defaults

# The algorithms that train their trials themselves (population members, a one-shot
# supernet) rather than through a trial kind's payload: they know neither addition.
OWN_TRAINERS = ("pbt", "pb2", "darts")
MAX_WEIGHTS_BYTES = 1 << 30  # a source trial's weights.pt read into a payload, at most

_INIT = ("task", "init_from")


@dataclass(frozen=True)
class TransferPayload(TrainPayload):
    """A training on a class subset and/or from a source's weights (``init_error``: why they
    could not be read in the scheduler; the trial then fails with it)."""

    classes: tuple[int, ...] | None = None
    init: InitSpec | None = field(default=None, repr=False)
    init_error: str | None = None

    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        assert data is not None, "a training needs its dataset"
        if self.init_error is not None:
            raise ValueError(self.init_error)
        yield where
        yield from train_events(
            subset(data, self.classes),
            self.model,
            self.training,
            seed,
            where.device,
            self.watch,
            self.checkpoint_every,
            self.resume,
            self.limits,
            self.init,
        )


class TransferKind(TrainKind):
    """The train kind, on a class subset and/or from a source trial's weights."""

    name: ClassVar[str] = "train"

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        task = spec.task
        assert isinstance(task, TrainTask)
        if data is None:
            return []
        classes = task.dataset.classes
        if classes is not None:
            problem = classes_error(classes, data)
            if problem:
                return [FieldError(("task", "dataset", "classes"), problem)]
        errors = check_train_task(spec, task, subset_info(data, classes))
        if spec.algorithm.name in OWN_TRAINERS:
            msg = (
                f"{spec.algorithm.name} trains with its own trainer, which supports neither "
                "task.init_from nor task.dataset.classes"
            )
            errors.append(FieldError(("algorithm", "name"), msg))
        init = task.init_from
        if init is not None:
            errors += _init_errors(init)
        return errors

    def complete(self, task: Task) -> Task:
        assert isinstance(task, TrainTask)
        return replace(with_defaults(task), init_from=task.init_from)

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> TransferPayload:
        task = spec.task.with_params(params)
        assert isinstance(task, TrainTask)
        init, init_error = (None, None) if task.init_from is None else read_init(task.init_from)
        base = super().payload(spec, params, checkpoint_every, resume)
        return TransferPayload(
            **{f.name: getattr(base, f.name) for f in fields(TrainPayload)},
            classes=task.dataset.classes,
            init=init,
            init_error=init_error,
        )


def _init_errors(init: InitFrom) -> list[FieldError]:
    errors = []
    if len(init.freeze) > MAX_FREEZE:
        errors.append(FieldError((*_INIT, "freeze"), f"at most {MAX_FREEZE} entries"))
    if "backbone" in init.freeze and "head" in init.freeze:
        errors.append(FieldError((*_INIT, "freeze"), "freezing backbone and head leaves nothing"))
    return errors


def read_init(init: InitFrom) -> tuple[InitSpec | None, str | None]:
    """The source weights as the trainer takes them, or why they cannot be read."""
    if init.source is None:
        return None, f"the source trial of study {init.study} was not resolved at submission"
    path = Path(init.source) / "weights.pt"
    try:
        if path.stat().st_size > MAX_WEIGHTS_BYTES:
            return None, f"the source weights are over {MAX_WEIGHTS_BYTES} bytes"
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"the source trial's weights cannot be read (study {init.study}): {exc}"
    return InitSpec(raw, init.layers, init.freeze, init.lr_mult), None


def source_errors(
    task: TrainTask, info: DatasetInfo, source: Mapping[str, Any]
) -> list[FieldError]:
    """Whether the source trial's network (its exported ``spec.json``) fits this task's, for
    every searched value too: the model is compared as the task fixes it; a searched model
    field that changes shapes is refused at ``task.init_from``."""
    init = task.init_from
    assert init is not None
    try:
        facts = source["dataset"]
        src_shape = tuple(int(d) for d in facts["input_shape"])
        src_info = replace(info, task=facts["task"], n_outputs=int(facts["n_outputs"]))
        if facts.get("classes"):
            src_info = replace(src_info, n_outputs=len(facts["classes"]))
        src_out = n_outputs(TrainConfig(**(source.get("training") or {})), src_info)
        src = tensor_shapes(source["model"], src_shape, src_out)
    except Exception as exc:  # a spec.json of another release, or edited by hand
        return [FieldError(_INIT, f"the source trial's network cannot be rebuilt: {exc}")]
    mine = subset_info(info, task.dataset.classes)
    try:
        out = n_outputs(TrainConfig(**task.training), mine)
        target = tensor_shapes(task.model, mine.input_shape, out)
        head = head_names(task.model, mine.input_shape, out)
    except Exception:  # the model's own errors are reported at task.model
        return []
    _, problems = carried(src, target, head, init.layers)
    errors = [FieldError(_INIT, f"shapes differ: {problems[0]}")] if problems else []
    errors += [
        FieldError((*_INIT, "freeze", i), msg) for i, msg in freeze_errors(init.freeze, [*target])
    ]
    return errors


TRANSFER = TransferKind()


MAX_SPEC_BYTES = 1 << 20  # a source trial's spec.json, at most


def find_source(study: optuna.Study, trial: int | str) -> dict[str, Any] | None:
    """A finished trial's exported ``spec.json`` with its ``folder``: trial number ``trial``
    or the ``"best"`` (None: no such finished trial with weights)."""
    try:
        if trial == "best":
            frozen = study.best_trial  # a single-objective study with a finished trial
        else:
            found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
            frozen = found[0]
    except (IndexError, ValueError, RuntimeError):
        return None
    if frozen.state != TrialState.COMPLETE:
        return None
    folder = attrs.trial_attr(frozen, "artifact_uri")
    if not isinstance(folder, str):
        return None
    path = Path(folder) / "spec.json"
    try:
        if path.stat().st_size > MAX_SPEC_BYTES or not (Path(folder) / "weights.pt").is_file():
            return None
        source = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(source, dict):
        return None
    return {**source, "folder": folder, "trial": frozen.number}
