"""Population-based training (PBT and PB2) on Ray Tune, mirrored into Optuna.

A PBT study trains a *population* of networks side by side. Every ``perturbation_interval``
epochs each member checkpoints; the worst ``quantile_fraction`` of the population clones the
weights and optimizer state of a member of the best fraction (*exploit*) and trains on with
changed hyperparameters (*explore*). PBT resamples each parameter with
``resample_probability`` and otherwise scales a float or int by 0.8 or 1.2 (a categorical
keeps its value); PB2 picks new float and int values with a time-varying GP bandit (Ray Tune
2.60 fits it with scikit-learn; GPy is no longer used). Both run as Ray Tune schedulers: one
Tune driver per study, in the calling thread (design point 4).

Entry points
------------
``run_pbt(spec, study, dataset, storage_dir, settings, stop, *, artifact_dir=None,
started_at=None) -> PBTOutcome``
    Runs one study to its end, blocking: call it from a thread of its own, with Ray connected
    (:func:`search.ray_runtime.connect`). Every constant-hyperparameter *segment* of every
    member becomes one Optuna trial of ``study``, created RUNNING when the segment starts and
    told when it ends, so optuna-dashboard shows the population live. Workers never touch the
    database: every Optuna write happens in the calling thread. The method is
    ``settings["method"]`` if given, else the algorithm's name when it is ``"pb2"``, else
    ``"pbt"``. Raises ``ValueError`` (the :func:`check_pbt` reasons) before starting anything.
``check_pbt(spec, info=None) -> list[str]``
    Every reason ``spec`` cannot run as a PBT / PB2 study (for a 422), empty when it can.
``SETTINGS`` / ``pbt_settings(spec, settings)``
    The settings the methods accept (``search.registry.Setting``s, for ``GET /algorithms``)
    and their check with defaults filled in (``SettingError`` names a bad one).

Settings (``spec.algorithm.settings``)
--------------------------------------
``population_size`` (4), ``perturbation_interval`` (2 epochs), ``quantile_fraction`` (0.25; 0
turns exploitation off), ``resample_probability`` (0.25, PBT only), ``synch`` (True: the whole
population is ranked and perturbed at once, so a seeded study repeats exactly and every step
exploits; the price, in Ray Tune 2.60, is that members pause at every step and restart one
after the other. False: Ray's asynchronous PBT, where a member is compared when it reaches the
interval with whatever the others last reported; faster, not reproducible, and a small
population may exploit rarely), ``checkpoints_to_keep`` (per member; default ``max(8, 2 *
population_size)``), ``method`` (``"pbt"`` or ``"pb2"``).

How a member trains
-------------------
Member ``m`` starts from the task with its initial parameters (sampled from the search space
with ``spec.seed``) and seed ``spec.seed + m``, and trains ``training.epochs`` epochs with
:class:`models.checkpointing.ResumableTrainer`, checkpointing weights, optimizer moments,
schedule and random generators at every multiple of ``perturbation_interval`` only (with a
checkpoint every epoch Ray Tune deletes the ones an exploit wants). Parameters that change the
network's shape (``model.width``, ``model.hidden_layers``, a loss with another output count,
...) are sampled once per member and inherited with the weights, never perturbed: a clone's
weights would not fit. A member that changes optimizer keeps its weights and starts fresh
moments. After an exploit, the member draws its batches from ``seed + m + 1000 * epoch``.

What lands in Optuna (one trial per segment)
--------------------------------------------
params: the segment's hyperparameters (the search space's distributions); intermediate values:
the objective at each of the member's global epochs in the segment; value: the objective at
the segment's last epoch. User attributes: ``pbt_member``, ``pbt_segment`` (0, 1, ... per
member), ``pbt_parent`` (member whose checkpoint the segment started from, or null),
``pbt_parent_trial`` (the Optuna trial number of that parent's segment), ``pbt_exploit_epoch``
(epoch of that checkpoint), ``pbt_perturbation`` (param -> [parent's value, new value], the
values that changed), ``pbt_epochs`` ([first, last] global epoch), ``pbt_method``, ``seed``,
``curve`` (every per-epoch metric). A member's last segment also gets ``final_metrics``,
``grad_norms`` and, with an ``artifact_dir``, ``artifact_uri`` (``weights.pt``, ``model.ts``,
``spec.json`` as in :mod:`search.loop`; ``spec.json`` adds ``pbt_schedule``, the spans of
epochs and hyperparameters, through the ancestors, that trained the weights). A segment cut
short by a stop, the timeout or the target value is told COMPLETE with its last value and
``pbt_cut_short`` (the reason); one that had not finished an epoch is FAIL and
``interrupted``. A member whose training raised (a NaN loss, say) ends its segment FAIL with
``fail_reason`` and leaves the population; the others go on.

Where files go, and what the budget means
-----------------------------------------
``storage_dir/tune``: Ray Tune's experiment (checkpoints, results, its state saved every
second); on a cluster it must be a path every node shares. ``artifact_dir/trial-<n>``: the
trained models, copied there by the driver. A study whose scheduler restarted (a shutdown or
a kill -9) is continued through Ray Tune's restore: the members resume from their newest
checkpoints and the driver rebuilds its segments from the study's trials, so the open
segments continue where they stood. The budget's ``timeout_s``
(counted from ``started_at``) and ``target_value`` apply; ``max_trials`` and ``parallelism``
do not (the population fixes the work, and Ray runs as many members at once as the cluster
fits, time-multiplexing the rest).
"""

import json
import logging
import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import torch
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from models.builder import build_model
from models.data import Dataset, DatasetInfo, dataset_info
from models.metrics import METRICS
from models.train import TrainConfig, n_outputs
from search.loop import Outcome, to_distribution
from search.registry import Algorithm, Setting, SettingError, register
from search.spec import ParamSpec, StudySpec

log = logging.getLogger(__name__)

METHODS = ("pbt", "pb2")
PERTURBATION_FACTORS = (0.8, 1.2)

SETTINGS: tuple[Setting, ...] = (
    Setting("method", str, None, "pbt or pb2 (default: the algorithm's name).", None, METHODS),
    Setting("population_size", int, 4, "Members trained side by side.", 2),
    Setting("perturbation_interval", int, 2, "Epochs between two exploit/explore steps.", 1),
    Setting(
        "quantile_fraction",
        float,
        0.25,
        "Fraction of the population that clones the top fraction at each step (at most "
        "0.5; 0 turns exploitation off).",
        0,
    ),
    Setting(
        "resample_probability",
        float,
        0.25,
        "PBT: chance that explore resamples a parameter instead of scaling it by 0.8 or 1.2.",
        0,
    ),
    Setting(
        "synch",
        bool,
        True,
        "Rank and perturb the whole population at once (reproducible with a seed; members "
        "pause at every step) instead of each member as it reaches the interval.",
    ),
    Setting(
        "checkpoints_to_keep",
        int,
        None,
        "Checkpoints kept per member (default: max(8, 2 * population_size)).",
        2,
    ),
)

_LINEAGE = "pbt_lineage"  # result key of the first result after a (re)start: JSON
_MEMBER = "pbt_member"  # config key: the member a trial was created as
_STATE, _META = "state.pt", "meta.json"
_WEIGHTS, _TORCHSCRIPT, _RESULT = "weights.pt", "model.ts", "result.json"


@dataclass(frozen=True)
class PBTOutcome(Outcome):
    """How a PBT study ended, and what it did.

    ``n_segments``: Optuna trials written; ``n_exploits``: segments that started from another
    member's checkpoint; ``best_trial``: the Optuna number of the best segment that reached
    the last epoch (None if none did).
    """

    n_segments: int = 0
    n_exploits: int = 0
    best_trial: int | None = None


# -- settings and checks ----------------------------------------------------------------------


def _method(spec: StudySpec, settings: Mapping[str, Any]) -> str:
    method = settings.get("method")
    if method is None:
        method = spec.algorithm.name if spec.algorithm.name in METHODS else "pbt"
    return str(method)


def pbt_settings(spec: StudySpec, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``settings`` (default: the spec's algorithm settings) checked, with defaults filled in.

    Raises:
        SettingError: an unknown setting (naming the valid ones), a value of the wrong type or
            out of its bounds.
    """
    given = dict(spec.algorithm.settings if settings is None else settings)
    known = {s.name: s for s in SETTINGS}
    for key in given:
        if key not in known:
            raise SettingError(key, f"unknown setting {key!r} for PBT; valid: {', '.join(known)}")
    out: dict[str, Any] = {}
    for s in SETTINGS:
        value = given.get(s.name, s.default)
        if value is not None:
            ok = isinstance(value, s.type) and not (isinstance(value, bool) and s.type is not bool)
            if s.type is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok:
                raise SettingError(
                    s.name, f"setting {s.name!r} must be {s.type.__name__}, got {value!r}"
                )
            if s.minimum is not None and value < s.minimum:
                raise SettingError(s.name, f"setting {s.name!r} must be >= {s.minimum:g}")
            if s.choices is not None and value not in s.choices:
                raise SettingError(
                    s.name, f"setting {s.name!r} must be one of {', '.join(s.choices)}"
                )
        out[s.name] = value
    if out["quantile_fraction"] > 0.5:
        raise SettingError("quantile_fraction", "setting 'quantile_fraction' must be <= 0.5")
    if out["resample_probability"] > 1:
        raise SettingError("resample_probability", "setting 'resample_probability' must be <= 1")
    out["method"] = _method(spec, out)
    if out["checkpoints_to_keep"] is None:
        out["checkpoints_to_keep"] = max(8, 2 * out["population_size"])
    return out


def _signature(spec: StudySpec, params: Mapping[str, Any], info: DatasetInfo) -> Any:
    """The shapes of the network's weights for ``params``: what a checkpoint must match."""
    task = spec.task.with_params(params)
    training = {k: v for k, v in task.training.items() if k != "early_stopping_patience"}
    try:
        out = n_outputs(TrainConfig(**training), info)
        # The meta device builds the modules without allocating or initializing weights.
        with torch.device("meta"):
            net = build_model(dict(task.model), info.input_shape, out)
    except Exception:  # a value that cannot build: the caller's validation reports it
        return None
    return sorted((k, tuple(v.shape)) for k, v in net.state_dict().items())


def structural_params(spec: StudySpec, info: DatasetInfo) -> list[str]:
    """The parameters whose value changes the network's shape (width, depth, the loss's output
    units): members inherit them with the weights and never perturb them."""
    found = []
    for p in spec.search_space:
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        if p.kind == "int":
            values = [int(v) for v in values if v is not None]
        shapes = [_signature(spec, {p.name: v}, info) for v in values]
        if any(s is None or s != shapes[0] for s in shapes):
            found.append(p.name)
    return found


def _info(spec: StudySpec) -> DatasetInfo | None:
    ds = spec.task.dataset
    if ds.get("name") is None:
        return None  # an upload: the caller passes its info
    try:
        return dataset_info(ds["name"], ds.get("options") or {})
    except ValueError:
        return None  # reported by the dataset checks


def check_pbt(spec: StudySpec, info: DatasetInfo | None = None) -> list[str]:
    """Every reason ``spec`` cannot run as a PBT or PB2 study; empty when it can.

    Args:
        spec: the study (its algorithm settings included).
        info: the dataset's metadata; without it, named datasets are looked up and the shape
            check of model parameters is skipped for uploads.
    """
    try:
        settings = pbt_settings(spec)
    except SettingError as exc:
        return [str(exc)]
    method = settings["method"]
    problems: list[str] = []
    n_objectives = len(spec.objectives)
    if n_objectives != 1:
        problems.append(f"{method} optimizes a single objective; this study has {n_objectives}")
    metric = spec.objective.metric
    if metric in METRICS and not METRICS[metric].per_epoch:
        problems.append(
            f"{method} compares members on an objective measured every epoch; "
            f"{metric} is measured at the end"
        )
    epochs = int(spec.task.training.get("epochs", TrainConfig.epochs))
    interval = settings["perturbation_interval"]
    if epochs < 2 * interval:
        problems.append(
            f"{method} needs a checkpointable task: members checkpoint every "
            f"perturbation_interval ({interval}) epochs and need two checkpoints, but "
            f"training.epochs is {epochs}"
        )
    if spec.task.training.get("early_stopping_patience"):
        problems.append(f"{method} trains every member all epochs: turn early stopping off")
    names = {p.name for p in spec.search_space}
    for fixed in ("training.epochs", "training.early_stopping_patience"):
        if fixed in names:
            problems.append(f"{fixed} cannot be searched with {method}")
    conditional = [p.name for p in spec.search_space if p.when]
    if conditional:
        problems.append(
            f"{method} keeps every parameter active during training; conditional parameters "
            f"are not supported: {', '.join(conditional)}"
        )
    categorical = [p.name for p in spec.search_space if p.kind == "categorical"]
    if method == "pb2" and categorical:
        problems.append(
            f"pb2 models float and int parameters only; categorical: {', '.join(categorical)}"
        )
    numeric = [p.name for p in spec.search_space if p.kind != "categorical"]
    info = info or _info(spec)
    if info is not None and numeric:
        structural = set(structural_params(spec, info))
        numeric = [n for n in numeric if n not in structural]
        if not numeric:
            shaping = ", ".join(sorted(structural))
            problems.append(
                f"{method} needs a float or int parameter it can perturb; {shaping} "
                f"{'sets' if len(structural) == 1 else 'set'} the network's shape, which a "
                f"clone's weights must keep"
            )
    elif not numeric:
        problems.append(f"{method} needs a float or int parameter to perturb; the space has none")
    return problems


# -- parameter values -------------------------------------------------------------------------


def _snap(p: ParamSpec, value: Any) -> Any:
    """``value`` moved into ``p``'s range and onto its step (Optuna accepts it as is)."""
    if p.kind == "categorical":
        return value
    dist = to_distribution(p)
    assert isinstance(dist, FloatDistribution | IntDistribution)
    v = min(max(float(value), dist.low), dist.high)
    if dist.step is not None:
        v = dist.low + round((v - dist.low) / dist.step) * dist.step
        v = min(max(v, dist.low), dist.high)
    if isinstance(dist, IntDistribution):
        return round(v)
    return v


def _sample(p: ParamSpec, rng: random.Random) -> Any:
    if p.kind == "categorical":
        return rng.choice(p.choices)
    assert p.low is not None and p.high is not None
    if p.log:
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        value = rng.uniform(p.low, p.high)
    return _snap(p, value)


@dataclass(frozen=True)
class _Plan:
    """What every member needs to train, sent once to the workers."""

    spec: StudySpec
    method: str
    epochs: int
    interval: int
    mutable: tuple[str, ...]  # perturbed at explore; the others are inherited
    monitor: str
    cpus: float
    gpus: float

    def param(self, name: str) -> ParamSpec:
        return next(p for p in self.spec.search_space if p.name == name)

    def encoded(self, name: str) -> bool:
        """PB2 fits its GP on the raw config: a log-scaled parameter lives there as log10."""
        return self.method == "pb2" and self.param(name).log

    def encode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: math.log10(v) if self.encoded(k) else v for k, v in params.items()}

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The parameter values of a Tune config."""
        out = {}
        for p in self.spec.search_space:
            value = config[p.name]
            out[p.name] = _snap(p, 10**value if self.encoded(p.name) else value)
        return out


class _Explorer:
    """PBT's explore step (and PB2's tidy-up): Ray hands it the clone's config."""

    def __init__(self, plan: _Plan, resample_probability: float, seed: int) -> None:
        self.plan = plan
        self.resample_probability = resample_probability
        # Seeded: in synchronous mode the explore calls come in a fixed order, so the
        # perturbations repeat run after run.
        self.rng = random.Random(seed)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        if plan.method == "pb2":
            # PB2 chose new values; bring them onto the parameters' ranges and steps.
            return {**config, **plan.encode(plan.decode(config))}
        params = plan.decode(config)
        for name in plan.mutable:
            p = plan.param(name)
            if self.rng.random() < self.resample_probability:
                params[name] = _sample(p, self.rng)
            elif p.kind != "categorical":
                params[name] = _snap(p, params[name] * self.rng.choice(PERTURBATION_FACTORS))
        return {**config, **plan.encode(params)}


# -- the member (runs in a Ray Tune worker) ---------------------------------------------------


def _member_index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _trial_name(trial: Any) -> str:
    # Called as Tune creates a trial, with the initial config: names say which member it is
    # (a trial's config is later replaced by its clone's).
    return f"member-{trial.config[_MEMBER]}"


def _write_checkpoint(folder: Path, trainer: Any, member: int, params: dict[str, Any]) -> None:
    from models.checkpointing import save_state

    (folder / _STATE).write_bytes(save_state(trainer.state()))
    meta = {"member": member, "epoch": trainer.epoch, "params": params}
    (folder / _META).write_text(json.dumps(meta))


def _member(config: dict[str, Any], data: Dataset, plan: _Plan) -> None:
    """Train one member from its checkpoint (if any) to the last epoch, reporting each epoch."""
    from ray import tune

    from models.checkpointing import ResumableTrainer, load_state

    # Tune logs every checkpoint saved and restored at INFO: a PBT study does it constantly.
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(plan.cpus)))
    device = "cuda" if plan.gpus > 0 and torch.cuda.is_available() else "cpu"
    member = _member_index(tune.get_context().get_trial_name())
    seed = plan.spec.seed + member
    params = plan.decode(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_state((Path(folder) / _STATE).read_bytes())
            meta = json.loads((Path(folder) / _META).read_text())
        # The weights fix the network's shape: structural params come with them. (After a
        # restore, Tune can hand an exploited member its config from before the exploit.)
        params.update({k: v for k, v in meta["params"].items() if k not in plan.mutable})
    task = plan.spec.task.with_params(params)
    cfg = TrainConfig(**task.training)
    lineage: dict[str, Any] = {"member": member, "params": params, "parent": None}
    if checkpoint is None:
        trainer = ResumableTrainer(task.model, cfg, data, seed, device)
        lineage["start"] = "fresh"
    else:
        trainer = ResumableTrainer(task.model, cfg, data, seed, device, state=state)
        if meta["member"] == member:
            lineage["start"] = "resume"  # paused, or retried: the same segment goes on
        else:
            lineage.update(
                start="exploit",
                parent=meta["member"],
                exploit_epoch=meta["epoch"],
                perturbation={
                    k: [meta["params"][k], v]
                    for k, v in params.items()
                    if meta["params"].get(k) != v
                },
            )
            trainer.reseed(seed + 1000 * trainer.epoch)
    first = True
    while trainer.epoch < plan.epochs:
        metrics = trainer.run_epoch().metrics
        result: dict[str, Any] = {**metrics, "epoch": trainer.epoch}
        if first:
            result[_LINEAGE] = json.dumps({**lineage, "metrics": sorted(metrics)})
            first = False
        last = trainer.epoch == plan.epochs
        if trainer.epoch % plan.interval and not last:
            tune.report(result)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _write_checkpoint(folder, trainer, member, params)
            if last:
                final = trainer.result()
                (folder / _WEIGHTS).write_bytes(final.state_dict)
                (folder / _TORCHSCRIPT).write_bytes(final.torchscript)
                summary = {"metrics": final.metrics, "grad_norms": final.grad_norms}
                (folder / _RESULT).write_text(json.dumps(summary))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


# -- the driver: Optuna mirror and stop conditions --------------------------------------------


@dataclass
class _Segment:
    member: int
    index: int
    trial: optuna.Trial
    params: dict[str, Any]
    first_epoch: int
    parent: int | None
    origin: "_Segment | None"  # the segment whose weights this one started from
    curve: list[dict[str, Any]] = field(default_factory=list)
    value: float | None = None


class _Run:
    """The driver-side state of one study: segments, the Optuna writes, why it ended."""

    def __init__(
        self,
        plan: _Plan,
        study: optuna.Study,
        stop: threading.Event,
        population: int,
        artifact_dir: Path | None,
        data_info: dict[str, Any],
        deadline: float | None,
    ) -> None:
        self.plan = plan
        self.study = study
        self.stop_event = stop
        self.population = population
        self.artifact_dir = artifact_dir
        self.data_info = data_info
        self.deadline = deadline
        self.distributions = {p.name: to_distribution(p) for p in plan.spec.search_space}
        self.direction = plan.spec.objective.direction
        self.open: dict[int, _Segment] = {}
        self.history: dict[int, list[_Segment]] = {}
        self.metric_keys: dict[int, list[str]] = {}
        self.n_segments = 0
        self.n_exploits = 0
        self.errors: list[str] = []
        self.finished: list[tuple[float, int]] = []  # (value, trial number) at the last epoch
        self.ended: tuple[Literal["completed", "stopped"], str] | None = None
        # Set when the service shuts down: stop mirroring, leave Tune's experiment and the
        # open segments as they are, for a restore to continue them.
        self.suspend = threading.Event()

    @property
    def suspended(self) -> bool:
        return self.suspend.is_set()

    def restore(self) -> None:
        """Rebuild the segments from the study's trials, before Ray Tune restores the
        population: members resumed from their checkpoints continue their open segments."""
        by_number: dict[int, _Segment] = {}
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            attrs = t.user_attrs
            if "pbt_member" not in attrs:
                continue
            member = int(attrs["pbt_member"])
            own = self.history.setdefault(member, [])
            parent = attrs.get("pbt_parent")
            origin = own[-1] if own else None
            if parent is not None:
                origin = by_number.get(attrs.get("pbt_parent_trial", -1))
                self.n_exploits += 1
            first_epoch = int(attrs.get("pbt_epochs", [0, 0])[0])
            trial = optuna.Trial(self.study, t._trial_id)
            seg = _Segment(member, len(own), trial, dict(t.params), first_epoch, parent, origin)
            seg.curve = list(attrs.get("curve", []))
            values = t.intermediate_values
            seg.value = t.value if t.value is not None else values.get(max(values, default=-1))
            own.append(seg)
            by_number[t.number] = seg
            self.n_segments += 1
            if seg.curve:
                self.metric_keys[member] = [k for k in seg.curve[-1] if k != "epoch"]
            if t.state == TrialState.RUNNING:
                self.open[member] = seg
            last = seg.curve[-1]["epoch"] if seg.curve else 0
            if t.state == TrialState.COMPLETE and last >= self.plan.epochs and t.value is not None:
                self.finished.append((t.value, t.number))

    # -- stop conditions (Tune polls them) --

    def should_stop(self) -> bool:
        if self.ended is not None:
            return True
        if self.stop_event.is_set():
            self.ended = ("stopped", "stopped before the population finished training")
        elif self.deadline is not None and time.time() >= self.deadline:
            self.ended = ("completed", "timeout reached")
        return self.ended is not None

    # -- segments --

    def _open_segment(self, member: int, lineage: dict[str, Any], epoch: int) -> _Segment:
        own = self.history.setdefault(member, [])
        parent = lineage.get("parent")
        exploit_epoch = int(lineage.get("exploit_epoch") or 0)
        origin = own[-1] if own else None  # a member that resumed after its segment closed
        if lineage["start"] == "fresh":
            origin = None
        if parent is not None:
            # The parent's segment that was training when it saved the cloned checkpoint.
            covering = [s for s in self.history.get(parent, []) if s.first_epoch <= exploit_epoch]
            origin = covering[-1] if covering else None
            self.n_exploits += 1
        attrs = {
            "pbt_method": self.plan.method,
            "pbt_member": member,
            "pbt_segment": len(own),
            "pbt_parent": parent,
            "pbt_parent_trial": origin.trial.number if parent is not None and origin else None,
            "pbt_exploit_epoch": exploit_epoch if parent is not None else None,
            "pbt_perturbation": lineage.get("perturbation", {}),
            "seed": self.plan.spec.seed + member,
        }
        frozen = optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params=lineage["params"],
            distributions=self.distributions,
            user_attrs=attrs,
        )
        # One write creates the trial with its params and lineage; ask() would pop any
        # WAITING trial of the study and run the sampler for nothing.
        trial_id = self.study._storage.create_new_trial(self.study._study_id, frozen)
        trial = optuna.Trial(self.study, trial_id)
        seg = _Segment(member, len(own), trial, lineage["params"], epoch, parent, origin)
        own.append(seg)
        self.open[member] = seg
        self.n_segments += 1
        return seg

    def on_result(self, member: int, result: Mapping[str, Any]) -> None:
        epoch = int(result["epoch"])
        if _LINEAGE in result:
            lineage = json.loads(result[_LINEAGE])
            self.metric_keys[member] = lineage["metrics"]
            current = self.open.get(member)
            # A member resumes its open segment, unless a restored experiment (saved a
            # little before the crash) resumes it with the hyperparameters of an older one.
            if (
                current is None
                or lineage["start"] != "resume"
                or lineage["params"] != current.params
            ):
                if current is not None:
                    self._close(current)
                self._open_segment(member, lineage, epoch)
        seg = self.open.get(member)
        if seg is None:  # a result of a member whose segment was already closed
            return
        value = float(result[self.plan.monitor])
        point = {"epoch": epoch, **{k: result[k] for k in self.metric_keys.get(member, [])}}
        # A retried member re-runs epochs after its last checkpoint: keep the latest run.
        seg.curve = [c for c in seg.curve if c["epoch"] < epoch] + [point]
        seg.trial.set_user_attr("curve", seg.curve)
        seg.trial.set_user_attr("pbt_epochs", [seg.first_epoch, epoch])
        if math.isfinite(value):
            seg.trial.report(value, step=epoch)
        seg.value = value
        target = self.plan.spec.budget.target_value
        reached = target is not None and (
            value >= target if self.direction == "maximize" else value <= target
        )
        if reached and self.ended is None:
            reason = (
                f"target value {target:g} reached by trial {seg.trial.number} "
                f"(member {member}, epoch {epoch}: {value:g})"
            )
            self.ended = ("completed", reason)

    def _close(self, seg: _Segment, cut_short: str | None = None) -> None:
        del self.open[seg.member]
        if seg.value is None or not math.isfinite(seg.value):
            reason = (
                "the segment ended before its first epoch"
                if seg.value is None
                else f"non-finite objective value {seg.value}"
            )
            seg.trial.set_user_attr("fail_reason", reason)
            self.study.tell(seg.trial, state=TrialState.FAIL)
            return
        if cut_short is not None:
            seg.trial.set_user_attr("pbt_cut_short", cut_short)
        self.study.tell(seg.trial, seg.value)

    def on_complete(self, member: int, checkpoint: Any) -> None:
        seg = self.open.get(member)
        if seg is None or not seg.curve or seg.curve[-1]["epoch"] < self.plan.epochs:
            return  # stopped before its last epoch by the study's end: finish() closes it
        if checkpoint is not None:
            try:
                self._save_final(seg, checkpoint)
            except Exception as exc:  # the segment's value stands without its exports
                log.warning("member %d: cannot read its final checkpoint: %s", member, exc)
        self._close(seg)
        if seg.value is not None and math.isfinite(seg.value):
            self.finished.append((seg.value, seg.trial.number))

    def _save_final(self, seg: _Segment, checkpoint: Any) -> None:
        with checkpoint.as_directory() as folder:
            src = Path(folder)
            summary = json.loads((src / _RESULT).read_text())
            seg.trial.set_user_attr("final_metrics", summary["metrics"])
            seg.trial.set_user_attr("grad_norms", summary["grad_norms"])
            if self.artifact_dir is None:
                return
            dest = self.artifact_dir / f"trial-{seg.trial.number}"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / _WEIGHTS, dest / "weights.pt")
            shutil.copyfile(src / _TORCHSCRIPT, dest / "model.ts")
        task = self.plan.spec.task.with_params(seg.params)
        export = {
            "trial": seg.trial.number,
            "params": seg.params,
            "seed": self.plan.spec.seed + seg.member,
            "model": dict(task.model),
            "training": dict(task.training),
            "dataset": {**dict(task.dataset), **self.data_info},
            "metrics": summary["metrics"],
            "pbt_schedule": self._schedule(seg),
            "usage": (
                "weights.pt is the state_dict of models.train.Exported(pre, net, post): raw "
                "inputs in, logits (classification) or targets in original units (regression) "
                "out; model.ts is the same module as TorchScript: torch.jit.load('model.ts'). "
                "pbt_schedule lists the hyperparameters each span of epochs trained with."
            ),
        }
        (dest / "spec.json").write_text(json.dumps(export, indent=2, default=str))
        seg.trial.set_user_attr("artifact_uri", str(dest))

    def _schedule(self, seg: _Segment) -> list[dict[str, Any]]:
        """The spans of epochs, back through the ancestors, that trained ``seg``'s weights."""
        spans = []
        last = self.plan.epochs
        current: _Segment | None = seg
        while current is not None:
            spans.append(
                {
                    "epochs": [current.first_epoch, last],
                    "member": current.member,
                    "trial": current.trial.number,
                    "params": current.params,
                }
            )
            last = current.first_epoch - 1
            current = current.origin
        return spans[::-1]

    def on_error(self, member: int, reason: str, config: Mapping[str, Any]) -> None:
        self.errors.append(f"member {member}: {reason}")
        seg = self.open.pop(member, None)
        if seg is None:  # it failed before its segment's first epoch: record it all the same
            lineage = {"start": "failed", "params": self.plan.decode(config)}
            seg = self._open_segment(member, lineage, 0)
            del self.open[member]
        seg.trial.set_user_attr("fail_reason", reason)
        self.study.tell(seg.trial, state=TrialState.FAIL)

    def finish(self) -> None:
        """Close what is still open once Tune returns: the study ended before them."""
        if self.suspended:
            return  # the next start restores the population and continues them
        why = self.ended[1] if self.ended else "the population stopped training"
        for seg in list(self.open.values()):
            if seg.value is None:
                del self.open[seg.member]
                seg.trial.set_user_attr("fail_reason", f"interrupted: {why}")
                seg.trial.set_user_attr("interrupted", True)
                self.study.tell(seg.trial, state=TrialState.FAIL)
            else:
                self._close(seg, cut_short=why)

    def outcome(self) -> PBTOutcome:
        finished = sorted(self.finished, reverse=self.direction == "maximize")
        best = finished[0][1] if finished else None
        if self.ended is not None:
            return self._outcome(*self.ended, best)
        if not self.finished and self.errors:
            return self._outcome("failed", f"every member failed; {self.errors[0]}", None)
        reason = (
            f"{len(self.finished)} of {self.population} members trained {self.plan.epochs} "
            f"epochs ({self.n_exploits} exploits)"
        )
        if self.errors:
            reason += f"; {len(self.errors)} failed, first: {self.errors[0]}"
        return self._outcome("completed", reason, best)

    def _outcome(
        self, status: Literal["completed", "failed", "stopped"], reason: str, best: int | None
    ) -> PBTOutcome:
        return PBTOutcome(status, reason[:1000], self.n_segments, self.n_exploits, best)


def _trial_error(trial: Any) -> str:
    """Why a Tune trial failed, from the error text Tune just wrote next to the driver (its
    pickled twin is never loaded: no file in the data directory is unpickled)."""
    text = trial.error_file
    try:
        if text and Path(text).is_file():
            lines = [line for line in Path(text).read_text().splitlines() if line.strip()]
            if lines:
                # The traceback's last line, "package.module.Error: message": the exception's
                # name as failure_reason gives it.
                kind, sep, message = lines[-1].strip().partition(": ")
                if sep and kind.replace(".", "").replace("_", "").isalnum():
                    kind = kind.rsplit(".", 1)[-1]
                return f"{kind}{sep}{message}"[:1000]
    except Exception as exc:  # the reason is best effort; the failure itself is certain
        log.warning("cannot read why member %s failed: %s", trial, exc)
    return "the member failed"


def _tune_hooks(run: _Run) -> tuple[Any, Any]:
    """The Tune callback that feeds ``run`` and the stopper that reads it.

    Tune pickles both with its config (``tuner.pkl``); the live run (an Optuna storage, an
    event) stays out of the pickle and in this process.
    """
    from ray import tune

    class Mirror(tune.Callback):  # type: ignore[misc]
        def __init__(self, run: _Run) -> None:
            self.run: _Run | None = run

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_result(_member_index(str(trial)), result)

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_complete(_member_index(str(trial)), trial.checkpoint)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_error(_member_index(str(trial)), _trial_error(trial), trial.config)

        def __getstate__(self) -> dict[str, Any]:
            return {"run": None}

    class Stop(tune.Stopper):  # type: ignore[misc]
        def __init__(self, run: _Run) -> None:
            self.epochs = run.plan.epochs
            self.run: _Run | None = run

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return int(result.get("epoch", 0)) >= self.epochs

        def stop_all(self) -> bool:
            if self.run is not None and self.run.suspended:
                # Abandon the driver loop without stopping the members: Tune's experiment
                # state keeps them unfinished, so a restore continues them.
                raise Suspended("the service is shutting down")
            return self.run is not None and self.run.should_stop()

        def __getstate__(self) -> dict[str, Any]:
            return {"epochs": self.epochs, "run": None}

    return Mirror(run), Stop(run)


# -- the entry point --------------------------------------------------------------------------


def run_pbt(
    spec: StudySpec,
    study: optuna.Study,
    dataset: Dataset,
    storage_dir: Path,
    settings: Mapping[str, Any],
    stop: threading.Event,
    *,
    artifact_dir: Path | None = None,
    started_at: float | None = None,
    suspend: threading.Event | None = None,
) -> PBTOutcome:
    """Run a PBT or PB2 study on Ray Tune to its end, mirroring every segment into ``study``.

    Blocks; call it from a thread of its own with Ray connected (``search.ray_runtime``).

    Args:
        spec: the study; see :func:`check_pbt` for what it must satisfy.
        study: its Optuna study (single objective, the spec's direction).
        dataset: the study's data, put once into Ray's object store.
        storage_dir: Ray Tune's experiment goes to ``storage_dir/tune`` (shared storage on a
            cluster).
        settings: the algorithm settings (see ``SETTINGS``); ``{}`` takes every default.
        stop: set it to stop the population; the call then returns soon with ``stopped``.
        suspend: set it when the process shuts down: the call returns soon (``stopped``,
            "suspended"), leaving the members unfinished in Ray Tune's experiment and their
            segments RUNNING; the next call on the same ``storage_dir`` restores both.
        artifact_dir: where each member's final model is written (``trial-<n>/``); None
            writes none.
        started_at: wall-clock start of the study; ``budget.timeout_s`` counts from it
            (default: now).

    Returns:
        The outcome: ``completed`` (every member trained all epochs, or the timeout or the
        target value was reached), ``stopped`` (``stop`` was set) or ``failed`` (every member
        failed), with a reason and counts.

    Raises:
        ValueError: the spec cannot run as a PBT / PB2 study (the reasons of
            :func:`check_pbt`), or a bad setting.
    """
    checked = pbt_settings(spec, settings)
    method = checked["method"]
    problems = check_pbt(_with_settings(spec, checked), dataset.info)
    if method == "pb2":
        problems += _pb2_unavailable()
    if problems:
        raise ValueError("; ".join(problems))

    # Results go to Optuna. Tune's own result loggers would only warn, on every restore of a
    # paused member, that their files have not reached the storage yet.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    structural = set(structural_params(spec, dataset.info))
    objective = spec.objective
    plan = _Plan(
        spec=spec,
        method=method,
        epochs=int(spec.task.training.get("epochs", TrainConfig.epochs)),
        interval=checked["perturbation_interval"],
        mutable=tuple(p.name for p in spec.search_space if p.name not in structural),
        monitor=objective.metric,
        cpus=spec.resources.cpu,
        gpus=spec.resources.gpu,
    )
    population = checked["population_size"]
    rng = random.Random(spec.seed)
    points = [
        {_MEMBER: m, **plan.encode({p.name: _sample(p, rng) for p in spec.search_space})}
        for m in range(population)
    ]
    explorer = _Explorer(plan, checked["resample_probability"], spec.seed + 1)
    mode = "max" if objective.direction == "maximize" else "min"
    common: dict[str, Any] = {
        "time_attr": "epoch",
        "metric": objective.metric,
        "mode": mode,
        "perturbation_interval": plan.interval,
        "quantile_fraction": checked["quantile_fraction"],
        "custom_explore_fn": explorer,
        "log_config": False,
        "synch": checked["synch"],
    }
    if method == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        bounds = {}
        for name in plan.mutable:
            p = plan.param(name)
            assert p.low is not None and p.high is not None
            low, high = (math.log10(p.low), math.log10(p.high)) if p.log else (p.low, p.high)
            bounds[name] = [low, high]
        scheduler: Any = PB2(hyperparam_bounds=bounds, **common)
    else:
        scheduler = PopulationBasedTraining(
            hyperparam_mutations={},
            resample_probability=0.0,  # the explorer resamples
            **common,
        )

    timeout = spec.budget.timeout_s
    deadline = None if timeout is None else (started_at or time.time()) + timeout
    info = dataset.info
    data_info = {
        "task": info.task,
        "kind": info.kind,
        "input_shape": list(info.input_shape),
        "n_outputs": info.n_outputs,
    }
    run = _Run(plan, study, stop, population, artifact_dir, data_info, deadline)
    if suspend is not None:
        run.suspend = suspend
    mirror, stopper = _tune_hooks(run)
    trainable = tune.with_resources(
        tune.with_parameters(_member, data=dataset, plan=plan),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    # Tune saves its experiment state (members, their checkpoints, the scheduler) at most
    # this often: what a restore after a crash starts from.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    experiment = (storage_dir / "tune").resolve()
    if experiment.is_dir() and tune.Tuner.can_restore(str(experiment)):
        # The study ran before this process (a restart, kill -9 included): the members go on
        # from their newest checkpoints and the open segments continue.
        run.restore()
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True)
        # tuner.pkl holds the hooks without their live run (see _tune_hooks): plug it in.
        internal = tuner._local_tuner
        restored = internal.get_run_config()
        restored.callbacks, restored.stop = [mirror], stopper
        # Ray Tune 2.60's synchronous PBT deadlocks after a restore: it rebuilds each
        # member's state with no perturbation yet, so every member waits at its first result
        # for the others, and no step is ever taken. The restored population goes on
        # asynchronously (a crash has ended exact repeatability anyway).
        internal._tune_config.scheduler._synch = False
        return _fit(tuner, run)
    _fail_orphans(study)  # segments of a run whose experiment never got saved
    shutil.rmtree(experiment, ignore_errors=True)
    storage_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        param_space={p.name: None for p in spec.search_space} | {_MEMBER: None},
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(points_to_evaluate=points),
            num_samples=population,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage_dir.resolve()),
            stop=stopper,
            callbacks=[mirror],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=checked["checkpoints_to_keep"]),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    return _fit(tuner, run)


class Suspended(Exception):
    """Raised inside Tune's driver loop to leave it without finishing the members."""


def _fit(tuner: Any, run: _Run) -> PBTOutcome:
    try:
        tuner.fit()
    except Exception:
        if not run.suspended:
            raise
    finally:
        run.finish()
    if run.suspended:
        return run._outcome("stopped", "suspended: the service shut down", None)
    return run.outcome()


def _fail_orphans(study: optuna.Study) -> None:
    # Segments left RUNNING belong to a driver that died with its scheduler: their members
    # are gone. Fail them with a reason, marked interrupted like the loop's orphans.
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna.Trial(study, t._trial_id)
        trial.set_user_attr("fail_reason", "interrupted: the scheduler restarted while it ran")
        trial.set_user_attr("interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)


def _with_settings(spec: StudySpec, settings: Mapping[str, Any]) -> StudySpec:
    from dataclasses import replace

    from search.spec import AlgorithmSpec

    given = {k: v for k, v in settings.items() if v is not None}
    return replace(spec, algorithm=AlgorithmSpec(spec.algorithm.name, given))


def _pb2_unavailable() -> list[str]:
    try:
        from ray.tune.schedulers.pb2 import PB2  # noqa: F401
        from ray.tune.schedulers.pb2_utils import UCB  # noqa: F401
    except ImportError as exc:
        return [f"pb2 needs scikit-learn for its GP bandit (Ray Tune 2.60), which fails: {exc}"]
    return []


def _register() -> None:
    descriptions = {
        "pbt": "Population-based training on Ray Tune: a population trains side by side; "
        "every perturbation_interval epochs the worst fraction clones the best members' "
        "weights and perturbs their hyperparameters. Each constant-hyperparameter segment is "
        "an Optuna trial with its lineage.",
        "pb2": "Population-based bandits (PB2) on Ray Tune: PBT whose new hyperparameters come "
        "from a time-varying GP bandit instead of random perturbation; float and int "
        "parameters only.",
    }
    for method in METHODS:
        register(
            Algorithm(
                name=method,
                kind="population",
                description=descriptions[method],
                settings=tuple(
                    s
                    for s in SETTINGS
                    if s.name != "method"
                    and not (method == "pb2" and s.name == "resample_probability")
                ),
                factory=run_pbt,
                multi_objective=False,
            )
        )


_register()

__all__ = [
    "METHODS",
    "SETTINGS",
    "PBTOutcome",
    "check_pbt",
    "pbt_settings",
    "run_pbt",
    "structural_params",
]
