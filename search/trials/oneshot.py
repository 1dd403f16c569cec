"""The ``oneshot`` trial kind: search a cell space inside one trial, then train what it found.

The trial trains a DARTS supernet (:func:`models.darts.darts_search`), derives the argmax
operation of each edge, reports that architecture (it becomes the trial's parameters), then
trains the derived network like a ``train`` trial. The sampler proposes nothing; a trial cut
short cannot resume (the supernet is not checkpointed), so it is failed and replaced.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna
from optuna.distributions import CategoricalDistribution

from models.cells import EDGES, edge_name, parse_genotype
from models.darts import DartsConfig, DartsEpoch, darts_search
from models.data import Dataset, DatasetInfo
from search import optuna_compat
from search.algorithm import FieldError
from search.spec import StudySpec
from search.trials.base import Payload, TrialKind, TrialRecord
from search.trials.events import ArchitectureChosen, Event, SearchEpoch, Started
from search.trials.train import TRAIN, TrainPayload, train_events

EDGE_PARAMS = tuple(f"model.{edge_name(e)}" for e in EDGES)


@dataclass(frozen=True)
class OneShotPayload(Payload):
    """Search with ``config`` over ``ops``, then train the derived cell as ``train`` says."""

    train: TrainPayload
    config: DartsConfig
    ops: tuple[str, ...] = field(default=())

    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        assert data is not None, "a one-shot search needs its dataset"
        yield where
        result = None
        for item in darts_search(data, self.config, seed, where.device, self.ops):
            if isinstance(item, DartsEpoch):
                yield SearchEpoch(item.epoch, item.metrics, item.genotype)
            else:
                result = item
        assert result is not None
        derived = parse_genotype(result.genotype)
        params = {f"model.{edge_name(e)}": op for e, op in derived.edges.items()}
        yield ArchitectureChosen(params, result.genotype, result.alpha, result.search_seconds)
        model = {**self.train.model, **{k.removeprefix("model."): v for k, v in params.items()}}
        train = self.train
        yield from train_events(
            data, model, train.training, seed, where.device, train.watch, 0, None
        )


class OneShotKind(TrialKind):
    """One trial that searches and trains (see the module docstring)."""

    name: ClassVar[str] = "oneshot"
    suggests: ClassVar[bool] = False
    resumable: ClassVar[bool] = False

    def __init__(self, config: DartsConfig, ops: tuple[str, ...]) -> None:
        self.config = config
        self.ops = ops

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        return TRAIN.check(spec, data)

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> OneShotPayload:
        return OneShotPayload(TRAIN.payload(spec, params, 0, None), self.config, self.ops)

    def on_event(self, event: Event, record: TrialRecord, study: optuna.Study) -> None:
        if isinstance(event, SearchEpoch):
            point = {"epoch": event.epoch, **event.metrics, "genotype": event.genotype}
            record.notes.setdefault("search", []).append(point)
        elif isinstance(event, ArchitectureChosen):
            self._chosen(event, record, study)
        else:
            super().on_event(event, record, study)

    def _chosen(self, event: ArchitectureChosen, record: TrialRecord, study: optuna.Study) -> None:
        """The search chose the architecture: it becomes the trial's params."""
        dist = CategoricalDistribution(self.ops)  # every edge takes one of the same ops
        for name, value in event.params.items():
            optuna_compat.set_param(study, record.trial, name, value, dist)
        record.params = dict(event.params)
        record.set(
            genotype=event.genotype,
            darts_search=record.notes.get("search", []),
            darts_alpha=event.alpha,
            search_seconds=event.search_seconds,
        )
