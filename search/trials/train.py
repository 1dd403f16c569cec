"""The ``train`` trial kind: train a catalog network on the study's dataset."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal

from models.data import Dataset, DatasetInfo, dataset_info, load_dataset
from models.families import model_genotype
from models.metrics import METRICS
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, NetworkMeasured, TrainCheckpoint, TrainResult
from models.training.trainer import train
from models.training.transfer import InitSpec
from search.algorithm import FieldError
from search.constraints import MEASURED_FIRST, evaluate
from search.spec import Constraint, DatasetRef, StudySpec, Task, TrainTask
from search.trials.base import Payload, TrialKind
from search.trials.events import CheckpointSaved, EpochEnd, Event, Finished, Measured, Started
from search.trials.train_checks import check_train_task, with_defaults

Monitor = tuple[str, Literal["maximize", "minimize"]]
_VAL_LOSS: Monitor = ("val_loss", "minimize")


def load_named(ref: DatasetRef) -> Dataset:
    """A bundled or synthetic dataset, split as the study says.

    Raises:
        ValueError: unknown name or bad options.
    """
    assert ref.name is not None, "an upload is loaded by the service's store"
    return load_dataset(ref.name, ref.val_fraction, ref.split_seed, ref.options)


@lru_cache(maxsize=64)
def _info(name: str, options: tuple[tuple[str, Any], ...]) -> DatasetInfo:
    return dataset_info(name, dict(options))


def named_info(ref: DatasetRef) -> DatasetInfo:
    """A named dataset's metadata (cached), for checking a study before anything runs.

    Raises:
        ValueError: unknown name or bad options.
    """
    assert ref.name is not None
    return _info(ref.name, tuple(sorted(ref.options.items())))


def monitor(spec: StudySpec) -> Monitor:
    """What early stopping watches: the objective when it is measured every epoch."""
    objective = spec.objective
    per_epoch = objective.metric in METRICS and METRICS[objective.metric].per_epoch
    return (objective.metric, objective.direction) if per_epoch else _VAL_LOSS


def limits(spec: StudySpec) -> tuple[Constraint, ...] | None:
    """The constraints a trial checks on its network before training, when the study ranks or
    constrains a metric that needs no training (:data:`MEASURED_FIRST`): the trial then
    measures it first. None: nothing to measure first."""
    named = {o.metric for o in spec.objectives} | {c.metric for c in spec.constraints}
    if not named & MEASURED_FIRST:
        return None
    return tuple(c for c in spec.constraints if c.metric in MEASURED_FIRST)


def train_events(
    data: Dataset,
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
    device: str,
    watch: Monitor,
    checkpoint_every: int = 0,
    resume: bytes | None = None,
    limits: tuple[Constraint, ...] | None = None,
    init: InitSpec | None = None,
) -> Iterator[Event]:
    """Train a network: an :class:`EpochEnd` per epoch, :class:`CheckpointSaved` every
    ``checkpoint_every`` epochs, then :class:`Finished`. With ``limits`` (the constraints on
    :data:`MEASURED_FIRST` metrics; may be empty), first a :class:`Measured`, and nothing more
    when the network breaks one: it never trains."""
    items = train(
        dict(model),
        TrainConfig(**training),
        data,
        seed,
        device,
        watch,
        checkpoint_every=checkpoint_every,
        resume=resume,
        init=init,
        measure_first=limits is not None,
    )
    for event in as_events(items):
        yield event
        if isinstance(event, Measured) and limits and not evaluate(limits, event.metrics)[0]:
            return  # the loop records it PRUNED, with the reason


def as_events(
    items: Iterator[NetworkMeasured | EpochMetrics | TrainCheckpoint | TrainResult],
) -> Iterator[Event]:
    """The trainer's items as a trial's events: :class:`Measured`, :class:`EpochEnd`,
    :class:`CheckpointSaved`, then :class:`Finished`."""
    for item in items:
        if isinstance(item, NetworkMeasured):
            yield Measured(item.metrics)
        elif isinstance(item, EpochMetrics):
            yield EpochEnd(item.epoch, item.metrics)
        elif isinstance(item, TrainCheckpoint):
            yield CheckpointSaved(item.epoch, item.state)
        else:
            yield Finished(
                metrics=item.metrics,
                best_epoch=item.best_epoch,
                stopped_early=item.stopped_early,
                grad_norms=item.grad_norms,
                state_dict=item.state_dict,
                torchscript=item.torchscript,
            )


@dataclass(frozen=True)
class TrainPayload(Payload):
    """Train ``model`` with ``training`` (after the checkpoint ``resume``, if given)."""

    model: dict[str, Any]
    training: dict[str, Any]
    watch: Monitor = _VAL_LOSS
    checkpoint_every: int = 0
    resume: bytes | None = field(default=None, repr=False)
    limits: tuple[Constraint, ...] | None = None  # measure first: see :func:`limits`

    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        assert data is not None, "a training needs its dataset"
        yield where
        yield from train_events(
            data,
            self.model,
            self.training,
            seed,
            where.device,
            self.watch,
            self.checkpoint_every,
            self.resume,
            self.limits,
        )


class TrainKind(TrialKind):
    """Train the task's network; checkpoints every few epochs, so a trial cut short (a lost
    worker, a restart) resumes where its newest checkpoint stands."""

    name: ClassVar[str] = "train"

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        assert isinstance(spec.task, TrainTask)
        if data is None:  # the dataset could not be found: reported where it is named
            return []
        return check_train_task(spec, spec.task, data)

    def complete(self, task: Task) -> Task:
        assert isinstance(task, TrainTask)
        return with_defaults(task)

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> TrainPayload:
        task = spec.task.with_params(params)
        assert isinstance(task, TrainTask)
        return TrainPayload(
            dict(task.model),
            dict(task.training),
            monitor(spec),
            checkpoint_every,
            resume,
            limits(spec),
        )

    def attrs(self, spec: StudySpec, params: Mapping[str, Any]) -> dict[str, Any]:
        task = spec.task.with_params(params)
        assert isinstance(task, TrainTask)
        genotype = model_genotype(task.model)
        return {} if genotype is None else {"genotype": genotype}


TRAIN = TrainKind()
