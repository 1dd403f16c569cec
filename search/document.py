"""The stored study: a versioned JSON document, written and read here.

The database keeps each study's :class:`~search.spec.StudySpec` as a document with a
``spec_version``. Writing is exact (:func:`to_document`); reading is lenient
(:func:`from_document`): a document of any earlier version is upgraded, keys this release does
not know are ignored, and nothing is checked against today's catalog, so a study stored before
a release tightened a field or dropped a dataset still loads (and fails at run time, with its
reason, if it cannot run). Only a submission is checked strictly (:mod:`search.checks`).

Versions:

- 1 (the first release; no ``spec_version`` key): the API request as submitted, with
  ``objective`` (null once ``objectives`` was spelled out), conditions as ``in_``, and tasks
  without ``kind`` in releases before function tasks.
- 2: ``spec_version``; ``objectives`` only; conditions as ``in``.
- 3: a train task's ``init_from`` and a dataset's ``classes`` (absent before: none); the
  ``fewshot`` task kind.
"""

from collections.abc import Mapping
from typing import Any

from search.spec import (
    DEFAULT_ALGORITHM,
    AlgorithmSpec,
    Budget,
    Condition,
    Constraint,
    DatasetRef,
    ExternalTask,
    FewShotTask,
    FunctionTask,
    InitFrom,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    Task,
    TrainTask,
    WarmStart,
)

SPEC_VERSION = 4  # 4: constraints


class DocumentError(ValueError):
    """A stored document that cannot be read as a study (a required part is missing)."""


# -- writing -----------------------------------------------------------------------------------


def to_document(spec: StudySpec) -> dict[str, Any]:
    """The study as the database stores it (JSON, current version)."""
    return {
        "spec_version": SPEC_VERSION,
        "name": spec.name,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in spec.objectives],
        "algorithm": _algorithm(spec.algorithm),
        "pruner": None if spec.pruner is None else _algorithm(spec.pruner),
        "warm_start": {
            "points": [dict(p) for p in spec.warm_start.points],
            "from_study": spec.warm_start.from_study,
        },
        "search_space": {p.name: _param(p) for p in spec.search_space},
        "budget": {
            "max_trials": spec.budget.max_trials,
            "max_failed_trials": spec.budget.max_failed_trials,
            "timeout_s": spec.budget.timeout_s,
            "target_value": spec.budget.target_value,
        },
        "parallelism": spec.parallelism,
        "resources": {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
        "task": task_document(spec.task),
        "architecture": None if spec.architecture is None else dict(spec.architecture),
        "seed": spec.seed,
        "constraints": [{"metric": c.metric, "le": c.le, "ge": c.ge} for c in spec.constraints],
    }


def _algorithm(a: AlgorithmSpec) -> dict[str, Any]:
    return {"name": a.name, "settings": dict(a.settings)}


def _param(p: ParamSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.kind}
    if p.kind == "categorical":
        out["choices"] = list(p.choices)
    elif p.kind == "int":
        assert p.low is not None and p.high is not None
        step = None if p.step is None else int(p.step)
        out.update(low=int(p.low), high=int(p.high), log=p.log, step=step)
    else:
        out.update(low=p.low, high=p.high, log=p.log, step=p.step)
    out["when"] = [_condition(c) for c in p.when]
    return out


def _condition(c: Condition) -> dict[str, Any]:
    out: dict[str, Any] = {"param": c.param}
    if c.values is not None:
        out["in"] = list(c.values)
    for key in ("gt", "ge", "lt", "le"):
        if getattr(c, key) is not None:
            out[key] = getattr(c, key)
    return out


def task_document(task: Task) -> dict[str, Any]:
    """A task as JSON: ``{kind: train, dataset, model, training}`` or
    ``{kind: function, name, options}``."""
    if isinstance(task, FunctionTask):
        return {"kind": task.kind, "name": task.name, "options": dict(task.options)}
    if isinstance(task, ExternalTask):
        return {"kind": task.kind, "metrics": list(task.metrics), "lease_s": task.lease_s}
    ds = task.dataset
    out: dict[str, Any] = {
        "kind": task.kind,
        "dataset": {
            "name": ds.name,
            "upload_id": ds.upload_id,
            "options": dict(ds.options),
            "val_fraction": ds.val_fraction,
            "split_seed": ds.split_seed,
        },
        "model": dict(task.model),
        "training": dict(task.training),
    }
    if ds.classes is not None:
        out["dataset"]["classes"] = list(ds.classes)
    if isinstance(task, FewShotTask):
        del out["training"]
        out["fewshot"] = dict(task.fewshot)
    elif task.init_from is not None:
        init = task.init_from
        out["init_from"] = {
            "study": init.study,
            "trial": init.trial,
            "layers": init.layers,
            "freeze": list(init.freeze),
            "lr_mult": init.lr_mult,
            "source": init.source,
        }
    return out


# -- reading -----------------------------------------------------------------------------------


def from_document(doc: Mapping[str, Any]) -> StudySpec:
    """The study a stored document describes, whatever its version.

    Raises:
        DocumentError: a part every version has (its name, task or budget) is missing or of
            the wrong shape.
    """
    version = doc.get("spec_version", 1)
    if not isinstance(version, int) or version > SPEC_VERSION:
        reads = f"this release reads 1 to {SPEC_VERSION}"
        raise DocumentError(f"unknown spec_version {version!r}; {reads}")
    try:
        return StudySpec(
            name=str(doc["name"]),
            objectives=_objectives(doc),
            algorithm=_algorithm_of(doc.get("algorithm") or {"name": DEFAULT_ALGORITHM}),
            pruner=_algorithm_of(doc["pruner"]) if doc.get("pruner") else None,
            warm_start=_warm_start(doc.get("warm_start") or {}),
            search_space=tuple(
                _param_of(name, raw) for name, raw in (doc.get("search_space") or {}).items()
            ),
            budget=_budget(doc["budget"]),
            parallelism=int(doc.get("parallelism", 1)),
            resources=Resources(**_known(doc.get("resources") or {}, ("cpu", "gpu"))),
            task=task_of(doc["task"]),
            seed=int(doc.get("seed", 0)),
            architecture=doc.get("architecture"),
            constraints=tuple(
                Constraint(str(c["metric"]), c.get("le"), c.get("ge"))
                for c in doc.get("constraints") or ()
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"a stored study that cannot be read: {exc!r}") from exc


def _known(raw: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: raw[k] for k in keys if k in raw}


def _objectives(doc: Mapping[str, Any]) -> tuple[Objective, ...]:
    given = doc.get("objectives") or ([doc["objective"]] if doc.get("objective") else None)
    if not given:  # version 1 before objectives were spelled out: the request's default
        train = (doc.get("task") or {}).get("kind", "train") == "train"
        given = [
            {"metric": "val_accuracy", "direction": "maximize"}
            if train
            else {"metric": "value", "direction": "minimize"}
        ]
    return tuple(Objective(str(o["metric"]), o["direction"]) for o in given)


def _algorithm_of(raw: Mapping[str, Any]) -> AlgorithmSpec:
    return AlgorithmSpec(str(raw["name"]), dict(raw.get("settings") or {}))


def _warm_start(raw: Mapping[str, Any]) -> WarmStart:
    points = tuple(dict(p) for p in raw.get("points") or ())
    return WarmStart(points, raw.get("from_study"))


def _budget(raw: Mapping[str, Any]) -> Budget:
    keys = ("max_trials", "max_failed_trials", "timeout_s", "target_value")
    return Budget(**_known(raw, keys))


def _param_of(name: str, raw: Mapping[str, Any]) -> ParamSpec:
    when = tuple(_condition_of(c) for c in raw.get("when") or ())
    kind = raw["type"]
    if kind == "categorical":
        return ParamSpec(name, "categorical", choices=tuple(raw["choices"]), when=when)
    step = raw.get("step")
    if kind == "int" and step is not None:
        step = float(step)
    return ParamSpec(
        name, kind, low=raw["low"], high=raw["high"], log=bool(raw.get("log")), step=step, when=when
    )


def _condition_of(raw: Mapping[str, Any]) -> Condition:
    values = raw.get("in", raw.get("in_"))  # version 1 stored the field's Python name
    return Condition(
        str(raw["param"]),
        None if values is None else tuple(values),
        raw.get("gt"),
        raw.get("ge"),
        raw.get("lt"),
        raw.get("le"),
    )


def task_of(raw: Mapping[str, Any]) -> Task:
    """A task from its JSON (``kind`` defaults to train: releases before function tasks)."""
    if raw.get("kind", "train") == "function":
        return FunctionTask(str(raw["name"]), dict(raw.get("options") or {}))
    if raw.get("kind") == ExternalTask.kind:
        return ExternalTask(tuple(raw["metrics"]), float(raw.get("lease_s", 60.0)))
    ds = raw["dataset"]
    dataset = DatasetRef(
        name=ds.get("name"),
        upload_id=ds.get("upload_id"),
        options=dict(ds.get("options") or {}),
        val_fraction=float(ds.get("val_fraction", 0.2)),
        split_seed=int(ds.get("split_seed", 0)),
        classes=None if ds.get("classes") is None else tuple(int(c) for c in ds["classes"]),
    )
    model = {"family": "mlp", **(raw.get("model") or {})}
    if raw.get("kind") == FewShotTask.kind:
        return FewShotTask(dataset, model, fewshot=dict(raw.get("fewshot") or {}))
    init = raw.get("init_from")
    return TrainTask(
        dataset, model, dict(raw.get("training") or {}), None if not init else _init_from(init)
    )


def _init_from(raw: Mapping[str, Any]) -> InitFrom:
    trial = raw.get("trial", "best")
    return InitFrom(
        study=int(raw["study"]),
        trial=trial if trial == "best" else int(trial),
        layers=raw.get("layers", "all"),
        freeze=tuple(str(f) for f in raw.get("freeze") or ()),
        lr_mult=float(raw.get("lr_mult", 1.0)),
        source=raw.get("source"),
    )
