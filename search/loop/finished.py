"""What the loop records of a trial whose training finished: its final metrics, where it ran,
its training's facts, and its network's artifacts (weights, TorchScript, record) beside the
study's, uploaded to Optuna's artifact store for the dashboard."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.artifacts import FileSystemArtifactStore

from search import optuna_artifacts
from search.artifacts import write_artifacts
from search.loop.inflight import InFlight
from search.spec import StudySpec
from search.trials.events import Finished

WHERE = ("node_id", "pid", "device")  # where a trial ran: from its Started event
_FACTS = ("best_epoch", "stopped_early", "grad_norms")  # a training's result, when it has them


@dataclass
class Artifacts:
    """Where a study's trials' artifacts go: its folder, Optuna's store, and the facts of its
    data that every trial's record repeats."""

    folder: Path
    store: FileSystemArtifactStore
    data_facts: dict[str, Any] = field(default_factory=dict)


def record_finished(
    running: InFlight, event: Finished, spec: StudySpec, artifacts: Artifacts
) -> None:
    """Set the attributes of a trial whose run finished and write its artifacts (the loop
    saves and tells it after)."""
    trial = running.trial
    running.set(final_metrics=event.metrics)
    if event.started is not None:
        running.set(**{key: getattr(event.started, key) for key in WHERE})
    if "param_count" in event.metrics:
        running.set(param_count=int(event.metrics["param_count"]))
    for key in _FACTS:
        if getattr(event, key) is not None:
            running.set(**{key: getattr(event, key)})
    if event.state_dict is None or event.torchscript is None:
        return
    folder = artifacts.folder / f"trial-{trial.number}"
    record = {"trial": trial.number, "params": running.params, "metrics": event.metrics}
    record["seed"] = spec.seed + trial.number
    write_artifacts(folder, event.state_dict, event.torchscript, spec, record, artifacts.data_facts)
    optuna_artifacts.upload_trial(artifacts.store, trial, folder, running.curve)
    running.set(artifact_uri=str(folder))
