"""The ``function`` trial kind: evaluate a synthetic function at the searched point.

Over at once: the trial's one event is its :class:`~search.trials.events.Finished`, which
carries where it ran. Its one metric is ``value``.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from models.data import Dataset, DatasetInfo
from search.algorithm import FieldError, Loc
from search.functions import get_function
from search.spec import FunctionTask, StudySpec
from search.trials.base import Payload, TrialKind
from search.trials.events import Event, Finished, Started


@dataclass(frozen=True)
class FunctionPayload(Payload):
    """Evaluate function ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, float]

    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        value = get_function(self.name)(self.arguments)
        yield Finished(metrics={"value": value}, started=where)


class FunctionKind(TrialKind):
    """A synthetic function's value (no dataset, no epochs, no checkpoints)."""

    name: ClassVar[str] = "function"
    needs_data: ClassVar[bool] = False

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """The ``value`` objective, and numeric arguments the function takes, each searched
        or fixed once."""
        task = spec.task
        assert isinstance(task, FunctionTask)
        fn = get_function(task.name)
        errors: list[FieldError] = []
        for i, objective in enumerate(spec.objectives):
            if objective.metric != "value":
                msg = f"a function task measures value only, not {objective.metric}"
                errors.append(FieldError(("objectives", i, "metric"), msg))
        if spec.architecture is not None:
            errors.append(
                FieldError(("architecture",), "an architecture section needs a train task")
            )
        searched = [p.name for p in spec.search_space]
        for name in fn.unknown_arguments(searched):
            errors.append(
                FieldError(("search_space", name), f"{fn.name} takes no argument {name!r}")
            )
        for name in fn.unknown_arguments(task.options):
            loc: Loc = ("task", "options", name)
            errors.append(FieldError(loc, f"{fn.name} takes no argument {name!r}"))
        for name in task.options:
            if name in searched:
                msg = f"{name} is searched; do not fix it too"
                errors.append(FieldError(("task", "options", name), msg))
        missing = fn.missing_arguments([*searched, *task.options])
        if missing:
            msg = f"{fn.name} needs {', '.join(missing)}: search them or fix them in task.options"
            errors.append(FieldError(("search_space",), msg))
        for param in spec.search_space:
            for i, choice in enumerate(param.choices):
                if isinstance(choice, bool) or not isinstance(choice, int | float):
                    msg = f"a function's arguments are numbers, not {choice!r}"
                    errors.append(FieldError(("search_space", param.name, "choices", i), msg))
        return errors

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> FunctionPayload:
        task = spec.task.with_params(params)
        assert isinstance(task, FunctionTask)
        return FunctionPayload(task.name, dict(task.options))


FUNCTION = FunctionKind()
