"""The ``external`` trial kind: a trial evaluated by a client, outside the cluster.

No Ray task ever runs one: the study's run (:mod:`search.external`) hands each trial's
parameters to the client that asks and records what it reports. The kind checks the study at
submission: its objectives and constraints name metrics the client reports, and nothing in it
needs the cluster's data or networks.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from models.data import DatasetInfo
from search.algorithm import FieldError
from search.spec import ExternalTask, StudySpec
from search.trials.base import Payload, TrialKind


class ExternalKind(TrialKind):
    """A trial whose client trains and measures it (see the module docstring)."""

    name: ClassVar[str] = "external"
    needs_data: ClassVar[bool] = False
    resumable: ClassVar[bool] = False  # its client holds its state, not a checkpoint here

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """Objectives and constraints among the task's metrics; no architecture section."""
        task = spec.task
        assert isinstance(task, ExternalTask)
        errors: list[FieldError] = []
        listed = ", ".join(task.metrics)
        if len(set(task.metrics)) != len(task.metrics):
            errors.append(FieldError(("task", "metrics"), "metrics must be distinct"))
        for i, objective in enumerate(spec.objectives):
            if objective.metric not in task.metrics:
                msg = f"{objective.metric!r} is not among task.metrics ({listed})"
                errors.append(FieldError(("objectives", i, "metric"), msg))
        for i, constraint in enumerate(spec.constraints):
            if constraint.metric not in task.metrics:
                msg = f"{constraint.metric!r} is not among task.metrics ({listed})"
                errors.append(FieldError(("constraints", i, "metric"), msg))
        if spec.architecture is not None:
            msg = "an architecture section builds networks on the cluster; an external task's "
            msg += "client builds its own (search its choices in search_space)"
            errors.append(FieldError(("architecture",), msg))
        return errors

    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> Payload:
        raise TypeError("an external trial runs on its client, never on the cluster")


EXTERNAL = ExternalKind()
