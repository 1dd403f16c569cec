"""Ask/tell over Ray for one study, and one wait point for many studies.

``StudyLoop`` keeps ``parallelism`` trials of one Optuna study in flight as Ray streaming
tasks. It owns no thread: the service's scheduler calls :meth:`StudyLoop.fill` and
:func:`wait_any` in its own loop, so one thread drives every running study. Workers never
touch the database: all Optuna writes happen here, in the scheduler's process.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import optuna
import ray
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from models.builder import model_genotype
from models.data import Dataset, load_dataset
from models.metrics import METRICS
from models.train import TrainCheckpoint
from search.spec import Budget, ParamSpec, StudySpec
from search.trial import run_trial

log = logging.getLogger(__name__)

# A lost worker or node is not the trial's fault: the loop resumes the trial (from its last
# checkpoint) on another worker, up to ``max_retries`` times. Exceptions raised by the training
# code, and Ray's out-of-memory kills, are the trial's own outcome and are never retried.
_LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,
)
_INTERRUPTED = "interrupted"
_MAX_REASON = 1000
_CURVE_EVERY_S = 1.0  # longest a running trial's stored curve lags its last epoch
_VAL_LOSS: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize")


def to_distribution(param: ParamSpec) -> BaseDistribution:
    """Optuna's distribution for a parameter spec."""
    if param.kind == "categorical":
        return CategoricalDistribution(param.choices)
    assert param.low is not None and param.high is not None
    if param.kind == "int":
        return IntDistribution(
            int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
        )
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def _suggest(trial: optuna.Trial, p: ParamSpec) -> None:
    if p.kind == "categorical":
        trial.suggest_categorical(p.name, list(p.choices))
        return
    assert p.low is not None and p.high is not None
    if p.kind == "int":
        trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    else:
        trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for a failed trial, naming the original exception."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "out of memory: Ray killed the worker to protect the node"
    text = " / ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:_MAX_REASON]


@dataclass(frozen=True)
class Outcome:
    """How a study ended: ``completed`` (budget spent), ``failed`` or ``stopped``."""

    status: Literal["completed", "failed", "stopped"]
    reason: str


def lost_worker(exc: BaseException) -> bool:
    """Whether a trial's error means its worker or node died (not the trial's own failure)."""
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return False
    return isinstance(exc, _LOST)


@dataclass
class _InFlight:
    trial: optuna.Trial
    curve: list[dict[str, Any]] = field(default_factory=list)
    reported: int = 0  # the last epoch whose value Optuna already holds (a resumed trial's)
    curve_saved: int = 0  # epochs of the curve written to the database
    saved_at: float = field(default_factory=time.monotonic)  # of the last write
    search: list[dict[str, Any]] = field(default_factory=list)  # a one-shot search's epochs
    params: dict[str, Any] = field(default_factory=dict)  # the params a one-shot search chose
    pending: dict[str, Any] = field(default_factory=dict)  # user attributes not yet written

    def set(self, **attrs: Any) -> None:
        """User attributes of the trial, written with its next :meth:`save`."""
        self.pending.update(attrs)

    def save(self, force: bool = True) -> None:
        """Write the pending user attributes and the learning curve (rewritten whole) in one
        transaction: at the trial's end, and while it runs at most every ``_CURVE_EVERY_S``,
        so a short trial's attributes and short epochs do not turn into one write each."""
        now = time.monotonic()
        if not force and now - self.saved_at < _CURVE_EVERY_S:
            return
        attrs = dict(self.pending)
        if len(self.curve) != self.curve_saved:
            attrs["curve"] = self.curve
        if attrs:
            set_user_attrs(self.trial, attrs)
        self.pending.clear()
        self.curve_saved, self.saved_at = len(self.curve), now


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: float | Sequence[float] | None = None,
    state: TrialState | None = None,
) -> None:
    """``study.tell``, without its last step: reading the finished trial back from the
    database and deep-copying it for a return value the loop never uses."""
    _tell_with_warning(study, trial, values, state)


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a trial: in one transaction where the storage can
    (``service.db.RetryingStorage.set_trial_user_attrs``), else one by one."""
    storage = trial.study._storage
    backend = getattr(storage, "_backend", storage)  # under Optuna's cache
    many = getattr(backend, "set_trial_user_attrs", None)
    if many is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    many(trial._trial_id, attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


class StudyLoop:
    """Keeps one study's trials in flight until its budget is spent.

    Args:
        spec: the study.
        study: the Optuna study, loaded with the spec's sampler.
        started_at: wall-clock start of the study (epoch seconds); the timeout counts from it,
            across scheduler restarts.
        trial_fn: the generator each Ray task runs (tests substitute failing ones).
        dataset: the study's data when the caller loaded it (an upload); otherwise the loop
            loads the named dataset of ``spec.task.dataset``.
        artifact_dir: where each completed trial's weights, TorchScript and spec are written.
        trial_cap: the most trials the sampler can propose (a grid's size).
        oneshot: the trial searches the space itself (DARTS): nothing is suggested, the trial
            reports its params in an ``architecture`` event.
        trial_task: keys added to every trial's task (a one-shot algorithm's settings).
        checkpoint_dir: where each running trial's newest checkpoint is kept
            (``trial-<n>.pt``, removed when the trial ends); None keeps none.
        checkpoint_every: epochs between a trial's checkpoints (0: none).
        max_retries: how many times a trial cut short by a lost worker or a restart is resumed
            (from its checkpoint, else from its start) before it fails.
    """

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        started_at: float,
        trial_fn: Callable[..., Any] = run_trial,
        dataset: Dataset | None = None,
        artifact_dir: Path | None = None,
        trial_cap: int | None = None,
        oneshot: bool = False,
        trial_task: Mapping[str, Any] | None = None,
        checkpoint_dir: Path | None = None,
        checkpoint_every: int = 0,
        max_retries: int = 3,
    ) -> None:
        self.spec = spec
        self.study = study
        self.budget = spec.budget
        self.started_at = started_at
        self.outcome: Outcome | None = None
        self._in_flight: dict[Any, _InFlight] = {}
        self._remote = ray.remote(trial_fn).options(
            num_returns="streaming",
            num_cpus=spec.resources.cpu,
            num_gpus=spec.resources.gpu,
            max_retries=0,  # the loop retries lost trials itself, from their checkpoints
        )
        self.artifact_dir = artifact_dir
        self.trial_cap = trial_cap
        self._oneshot = oneshot
        self._trial_task = dict(trial_task or {})
        self._checkpoint_dir = checkpoint_dir
        self._checkpoint_every = checkpoint_every if checkpoint_dir is not None else 0
        self._max_retries = max_retries
        self._draining = False
        objective = spec.objective
        per_epoch = METRICS[objective.metric].per_epoch
        # Early stopping watches the objective when it is measured every epoch.
        self._monitor = (objective.metric, objective.direction) if per_epoch else _VAL_LOSS
        self._function = spec.task.kind == "function"
        self._data_info: dict[str, Any] = {}
        self.data_ref: Any = None  # a function task has no data
        if not self._function:
            if dataset is None:
                ds = spec.task.dataset
                dataset = load_dataset(
                    ds["name"], ds["val_fraction"], ds["split_seed"], ds["options"]
                )
            info = dataset.info
            self._data_info = {
                "task": info.task,
                "kind": info.kind,
                "input_shape": list(info.input_shape),
                "n_outputs": info.n_outputs,
            }
            # Put once, read by every trial: workers get the arrays from the object store.
            self.data_ref = ray.put(dataset)
        self._resume_orphans()
        # Trials cut short by a stop were not the study's fault: they neither use up the
        # budget nor count as failures. Trials copied from another study (warm start) were not
        # run here and do not count either. Queued warm-start points (WAITING) count when they
        # run, not before. Resumed trials count once, as themselves.
        every = study.get_trials(deepcopy=False)
        trials = [
            t
            for t in every
            if t.state != TrialState.WAITING
            and not t.user_attrs.get(_INTERRUPTED)
            and not str(t.user_attrs.get("warm_start", "")).startswith("study")
        ]
        self._n_trials = len(trials)
        self._n_waiting = sum(t.state == TrialState.WAITING for t in every)
        self._n_failed = sum(t.state == TrialState.FAIL for t in trials)

    # -- public -------------------------------------------------------------------------

    @property
    def n_in_flight(self) -> int:
        return len(self._in_flight)

    def generators(self) -> list[Any]:
        """The Ray streams of the trials in flight."""
        return list(self._in_flight)

    def update_budget(self, budget: Budget, parallelism: int) -> None:
        """Apply a budget extended (or cut) while the study runs."""
        self.budget = budget
        self.spec = replace(self.spec, parallelism=parallelism)

    def fill(self) -> None:
        """Start trials until ``parallelism`` are in flight or the budget says stop; write the
        attributes of running trials that have waited ``_CURVE_EVERY_S``."""
        for running in self._in_flight.values():
            running.save(force=False)
        while (
            self.outcome is None
            and len(self._in_flight) < self.spec.parallelism
            and self._may_start()
        ):
            self._start_trial()
        self._check_end()

    def on_ready(self, gen: Any) -> None:
        """Consume the next event of a trial's stream (call only when it is ready)."""
        running = self._in_flight.get(gen)
        if running is None:  # cancelled since it became ready (the study ended meanwhile)
            return
        try:
            event = ray.get(next(gen))
        except StopIteration:
            self._complete(gen, running)
            return
        except Exception as exc:  # the trial's own failure, or its worker's
            if lost_worker(exc):
                self._retry(gen, running, failure_reason(exc))
            else:
                self._fail(gen, running, failure_reason(exc))
            return
        if event["event"] == "start":
            running.set(**{key: event[key] for key in ("node_id", "pid", "device")})
        elif event["event"] == "epoch":
            self._on_epoch(gen, running, event)
            self._check_end()
        elif event["event"] == "checkpoint":
            self._on_checkpoint(running, event)
        elif event["event"] == "search":
            running.search.append(
                {"epoch": event["epoch"], **event["metrics"], "genotype": event["genotype"]}
            )
        elif event["event"] == "architecture":
            self._on_architecture(running, event)
        else:
            self._on_result(gen, running, event)

    def stop(self, reason: str) -> None:
        """Cancel every trial in flight (each FAIL with ``reason``) and end the study."""
        self.interrupt(reason)
        self.outcome = Outcome("stopped", reason)

    def interrupt(self, reason: str) -> None:
        """Cancel every trial in flight, each FAIL with ``reason``.

        The trials are marked interrupted: they were cut short by a stop or a shutdown, not
        by their own fault, so a resumed study neither counts them nor their failure.
        """
        for gen, running in list(self._in_flight.items()):
            ray.cancel(gen)
            running.set(fail_reason=reason, **{_INTERRUPTED: True})
            running.save()
            tell(self.study, running.trial, state=TrialState.FAIL)
            self._drop_checkpoint(running.trial.number)
        self._in_flight.clear()

    def suspend(self) -> None:
        """Cancel every trial in flight but leave it RUNNING, its curve and checkpoint saved:
        the next scheduler to open the study resumes it (the service is shutting down)."""
        for gen, running in list(self._in_flight.items()):
            ray.cancel(gen)
            running.save()
        self._in_flight.clear()

    # -- internals ----------------------------------------------------------------------

    def drain(self) -> None:
        """Stop starting trials; the study ends (stopped) when those in flight finish."""
        self._draining = True

    def _may_start(self) -> bool:
        if self._draining:
            return False
        cap = self.budget.max_trials
        if self.trial_cap is not None:
            cap = min(cap, self.trial_cap)
        if self._n_trials >= cap:
            return False
        return not self._timed_out()

    def _timed_out(self) -> bool:
        timeout = self.budget.timeout_s
        return timeout is not None and time.time() - self.started_at >= timeout

    def _check_end(self) -> None:
        if self.outcome is not None:
            return
        limit = self.budget.max_failed_trials
        if limit is not None and self._n_failed >= limit:
            reason = f"max_failed_trials reached: {self._n_failed} trials failed"
            self.interrupt(f"study failed: {reason}")
            self.outcome = Outcome("failed", reason)
        elif not self._in_flight and not self._may_start():
            if self._draining:
                self.outcome = Outcome("stopped", "stopped by user after its trials finished")
            elif self._timed_out():
                self.outcome = Outcome("completed", "timeout reached")
            elif self.trial_cap is not None and self._n_trials >= self.trial_cap:
                self.outcome = Outcome("completed", "search space exhausted")
            else:
                self.outcome = Outcome("completed", "max_trials reached")

    def _ask(self) -> optuna.Trial:
        """``study.ask()``, without its look for queued (WAITING) trials once none is left:
        points are queued only when a study is created (warm start), and the look rereads every
        unfinished trial of the study on each ask."""
        if self._n_waiting > 0:
            self._n_waiting -= 1
            return self.study.ask()
        study = self.study
        study._thread_local.cached_all_trials = None  # as ask does: samplers see new trials
        return optuna.Trial(study, study._storage.create_new_trial(study._study_id))

    def _start_trial(self) -> None:
        trial = self._ask()
        # Define-by-run: a parameter is sampled only when its conditions hold on the ones
        # sampled before it, so inactive parameters never reach the sampler or the task.
        for p in self.spec.search_space:
            if not self._oneshot and all(c.holds(trial.params) for c in p.when):
                _suggest(trial, p)
        running = _InFlight(trial)
        running.set(seed=self.spec.seed + trial.number)
        genotype = None
        if not self._oneshot and not self._function:
            genotype = model_genotype(dict(self.spec.task.with_params(trial.params).model))
        if genotype is not None:  # an architecture search: the architecture, compactly
            running.set(genotype=genotype)
        self._launch(running)
        self._n_trials += 1

    def _launch(self, running: _InFlight, resume: bytes | None = None) -> None:
        """Start a trial's Ray task: from its start, or after the checkpoint ``resume``."""
        trial = running.trial
        task = self.spec.task.with_params(trial.params)
        body: dict[str, Any]
        if self._function:
            body = {"function": task.function, "options": dict(task.options)}
        else:
            body = {"model": dict(task.model), "training": dict(task.training), **self._trial_task}
        if not self._oneshot and not self._function:
            body["checkpoint_every"] = self._checkpoint_every
            if resume is not None:
                body["resume"] = resume
        gen = self._remote.remote(
            self.data_ref,
            body,
            self.spec.seed + trial.number,
            self.spec.resources.cpu,
            self.spec.resources.gpu,
            self._monitor,
        )
        self._in_flight[gen] = running

    # -- checkpoints and resumption -----------------------------------------------------

    def _checkpoint_path(self, number: int) -> Path | None:
        if self._checkpoint_dir is None:
            return None
        return self._checkpoint_dir / f"trial-{number}.pt"

    def _on_checkpoint(self, running: _InFlight, event: dict[str, Any]) -> None:
        path = self._checkpoint_path(running.trial.number)
        if path is None:
            return
        # The curve up to the checkpoint is what a resume keeps: it reaches the database
        # before the file does, so a crash between the two never leaves a checkpoint whose
        # epochs are missing from the curve.
        running.save()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(event["state"])
        os.replace(partial, path)  # a crash mid-write leaves the previous checkpoint whole
        running.set(checkpoint_epoch=int(event["epoch"]))

    def _drop_checkpoint(self, number: int) -> None:
        path = self._checkpoint_path(number)
        if path is not None:
            path.unlink(missing_ok=True)

    def _resume(self, frozen: FrozenTrial, reason: str) -> bool:
        """Start a trial again that was cut short (``reason``), after its newest checkpoint.

        Returns False, and leaves the trial alone, when it may not be retried any more.
        """
        resumes = list(frozen.user_attrs.get("resumes", []))
        if len(resumes) >= self._max_retries:
            return False
        path = self._checkpoint_path(frozen.number)
        state, checkpoint_epoch = None, 0
        if path is not None and path.is_file():
            # The file's own epoch, not the ``checkpoint_epoch`` attribute: a crash between
            # writing the file and the attribute leaves the attribute one checkpoint behind.
            state = path.read_bytes()
            checkpoint_epoch = TrainCheckpoint.read(state).epoch
        trial = optuna.Trial(self.study, frozen._trial_id)
        curve = [c for c in frozen.user_attrs.get("curve", []) if c["epoch"] <= checkpoint_epoch]
        resumes.append({"from_epoch": checkpoint_epoch, "reason": reason[:_MAX_REASON]})
        set_user_attrs(trial, {"resumes": resumes, "curve": curve})
        running = _InFlight(trial, curve=curve, curve_saved=len(curve))
        running.reported = max(frozen.intermediate_values, default=0)
        log.info(
            "study %s trial %d resumed after epoch %d: %s",
            self.spec.name,
            frozen.number,
            checkpoint_epoch,
            reason,
        )
        self._launch(running, state)
        return True

    def _retry(self, gen: Any, running: _InFlight, reason: str) -> None:
        """A trial's worker or node died: resume the trial elsewhere, or fail it."""
        del self._in_flight[gen]
        running.save()
        frozen = self.study._storage.get_trial(running.trial._trial_id)
        if self._oneshot or not self._resume(frozen, f"worker lost: {reason}"):
            tries = len(frozen.user_attrs.get("resumes", []))
            self._record_failure(running, f"worker lost after {tries} retries: {reason}")
        self._check_end()

    def _resume_orphans(self) -> None:
        # Trials left RUNNING belong to a scheduler that stopped or died: their Ray tasks went
        # with its driver. Each is resumed from its checkpoint (or its start) and counts once;
        # one that used up its retries fails. A one-shot trial (DARTS) cannot resume: it is
        # failed as interrupted, not counted, and the loop runs a replacement.
        reason = "interrupted: the scheduler restarted while the trial ran"
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not self._oneshot and self._resume(frozen, reason):
                continue
            trial = optuna.Trial(self.study, frozen._trial_id)
            if self._oneshot:
                trial.set_user_attr("fail_reason", reason)
                trial.set_user_attr(_INTERRUPTED, True)
            else:  # it used up its retries: a failure of the study's budget
                tries = len(frozen.user_attrs.get("resumes", []))
                trial.set_user_attr("fail_reason", f"{reason} (after {tries} retries)")
            self.study.tell(frozen.number, state=TrialState.FAIL)
            self._drop_checkpoint(frozen.number)

    def _on_epoch(self, gen: Any, running: _InFlight, event: dict[str, Any]) -> None:
        epoch = int(event["epoch"])
        running.curve.append({"epoch": epoch, **event["metrics"]})
        running.save(force=False)
        metric = self.spec.objective.metric
        if len(self.spec.objectives) > 1 or metric not in event["metrics"]:
            return  # Optuna reports one objective; final-only metrics have no curve
        if epoch > running.reported:  # a resumed trial's epochs before the cut are in Optuna
            running.trial.report(event["metrics"][metric], step=epoch)
        if running.trial.should_prune():
            ray.cancel(gen)
            running.set(pruned_at_epoch=epoch)
            running.save()
            tell(self.study, running.trial, state=TrialState.PRUNED)
            del self._in_flight[gen]
            self._drop_checkpoint(running.trial.number)

    def _on_architecture(self, running: _InFlight, event: dict[str, Any]) -> None:
        """A one-shot search chose the architecture: it becomes the trial's params."""
        trial = running.trial
        space = {p.name: p for p in self.spec.search_space}
        for name, value in event["params"].items():
            dist = to_distribution(space[name])
            self.study._storage.set_trial_param(
                trial._trial_id, name, dist.to_internal_repr(value), dist
            )
        running.params = dict(event["params"])
        running.set(
            genotype=event["genotype"],
            darts_search=running.search,
            darts_alpha=event["alpha"],
            search_seconds=event["search_seconds"],
        )

    def _on_result(self, gen: Any, running: _InFlight, event: dict[str, Any]) -> None:
        del self._in_flight[gen]  # the stream ends after its result; nothing more to read
        trial = running.trial
        values = [float(event["metrics"][o.metric]) for o in self.spec.objectives]
        running.set(final_metrics=event["metrics"])
        running.set(**{k: event[k] for k in ("node_id", "pid", "device") if k in event})
        if "param_count" in event["metrics"]:
            running.set(param_count=int(event["metrics"]["param_count"]))
        for key in ("best_epoch", "stopped_early", "grad_norms"):  # a training's result
            if key in event:
                running.set(**{key: event[key]})
        if self.artifact_dir is not None and "state_dict" in event:
            folder = self._save_artifacts(trial, running.params or trial.params, event)
            running.set(artifact_uri=str(folder))
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            self._record_failure(running, f"non-finite objective value {bad[0]}")
            return
        running.save()
        tell(self.study, trial, values[0] if len(values) == 1 else values)
        self._drop_checkpoint(trial.number)
        target = self.budget.target_value
        if target is not None and self._reaches(values[0], target):
            reason = f"target value {target:g} reached by trial {trial.number} ({values[0]:g})"
            self.interrupt(f"study ended: {reason}")
            self.outcome = Outcome("completed", reason)
        self._check_end()

    def _reaches(self, value: float, target: float) -> bool:
        return value >= target if self.spec.objective.direction == "maximize" else value <= target

    def _save_artifacts(
        self, trial: optuna.Trial, params: dict[str, Any], event: dict[str, Any]
    ) -> Path:
        """Write the trained model where users download it: weights, TorchScript, and the
        exact spec that rebuilds it. The scheduler writes them, so workers need no shared disk.
        """
        assert self.artifact_dir is not None
        folder = self.artifact_dir / f"trial-{trial.number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights.pt").write_bytes(event["state_dict"])
        (folder / "model.ts").write_bytes(event["torchscript"])
        task = self.spec.task.with_params(params)
        export = {
            "trial": trial.number,
            "params": params,
            "seed": self.spec.seed + trial.number,
            "model": dict(task.model),
            "training": dict(task.training),
            "dataset": {**dict(task.dataset), **self._data_info},
            "metrics": event["metrics"],
            "usage": (
                "weights.pt is the state_dict of models.train.Exported(pre, net, post): raw "
                "inputs in, logits (classification) or targets in original units (regression) "
                "out; model.ts is the same module as TorchScript: torch.jit.load('model.ts')."
            ),
        }
        (folder / "spec.json").write_text(json.dumps(export, indent=2, default=str))
        return folder

    def _complete(self, gen: Any, running: _InFlight) -> None:
        del self._in_flight[gen]
        self._record_failure(running, "the trial ended without a result")
        self._check_end()

    def _fail(self, gen: Any, running: _InFlight, reason: str) -> None:
        del self._in_flight[gen]
        self._record_failure(running, reason)
        self._check_end()

    def _record_failure(self, running: _InFlight, reason: str) -> None:
        log.info("study %s trial %d failed: %s", self.spec.name, running.trial.number, reason)
        running.set(fail_reason=reason)
        running.save()
        tell(self.study, running.trial, state=TrialState.FAIL)
        self._n_failed += 1
        self._drop_checkpoint(running.trial.number)


def fail_running_trials(study: optuna.Study, reason: str) -> None:
    """Fail the trials a study left RUNNING (it ended while no scheduler ran it)."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        optuna.Trial(study, frozen._trial_id).set_user_attr("fail_reason", reason)
        study.tell(frozen.number, state=TrialState.FAIL)


def wait_any(
    loops: Iterable[StudyLoop],
    timeout: float,
    on_error: Callable[[StudyLoop, Exception], None] | None = None,
) -> int:
    """Wait until any trial of any loop has an event, then hand every ready event to its loop.

    Args:
        loops: the running studies.
        timeout: longest wait, in seconds, when nothing is ready.
        on_error: called when a loop fails to handle its event (say, its database write
            fails), so one study's failure does not stop the others; without it, it raises.

    Returns:
        How many events were handled (0 after a timeout with nothing ready).
    """
    owners = {gen: loop for loop in loops for gen in loop.generators()}
    if not owners:
        time.sleep(timeout)
        return 0
    gens = list(owners)
    ready, _ = ray.wait(gens, num_returns=1, timeout=timeout)
    if not ready:
        return 0
    ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0)
    for gen in ready:
        loop = owners[gen]
        try:
            loop.on_ready(gen)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(loop, exc)
    return len(ready)
