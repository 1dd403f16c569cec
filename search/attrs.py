"""What tuneforge records on Optuna's trials and studies, and where: short user attributes
for optuna-dashboard to show, long records in system attributes that it does not show.

optuna-dashboard 0.21 prints every user attribute of a trial and of a study on its pages, one
line of text each (``optuna_dashboard/_serializer.py``: ``serialize_attrs``); of a trial's
system attributes it reads only its artifacts, constraints and fixed parameters. A learning
curve there made a trial's page thousands of pixels tall. So every user attribute value
tuneforge writes is at most :data:`MAX_ATTR_JSON` characters of JSON (as Optuna stores it):

- the records in :data:`RECORDS` (the per-epoch ``curve``, ``final_metrics``, ``grad_norms``,
  ``resumes``, a one-shot search's ``darts_search`` and ``darts_alpha``, the trial's
  ``artifact_uri`` folder) are system attributes ``tuneforge:<name>``, each with compact user
  attributes beside it where they help: ``epochs`` (the curve's last epoch), ``final_<metric>``
  (each final metric), ``retries`` (how often the trial resumed);
- any other value too long (a long failure reason) is written whole to ``tuneforge:<name>``
  and, cut short with an ellipsis, to the user attribute.

Readers take a value through :func:`trial_attr` (or :func:`trial_curve`, :func:`full_attrs`),
which finds it where it is; trials stored before this layout, with their records in user
attributes, read the same. A study's full spec is its system attribute ``tuneforge:spec``; its
user attribute ``tuneforge_spec`` says in one line what the study searches.
"""

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search import optuna_compat
from search.spec import ExternalTask, FunctionTask, StudySpec

MAX_ATTR_JSON = 200  # the longest user attribute value, in characters of its JSON
PREFIX = "tuneforge:"  # of the system attributes that hold records and whole values
RECORDS = frozenset(
    {"curve", "final_metrics", "grad_norms", "resumes", "darts_search", "darts_alpha"}
    | {"artifact_uri"}
)
SPEC_SUMMARY = "tuneforge_spec"  # the study's user attribute: its spec in one line
SPEC = PREFIX + "spec"  # the study's system attribute: its whole stored document
_ELLIPSIS = "\u2026"
_MISSING: Any = object()


def fits(value: Any) -> bool:
    """Whether ``value`` may be a user attribute as it is."""
    return len(json.dumps(value)) <= MAX_ATTR_JSON


def shorten(value: Any) -> Any:
    """``value`` if it fits; else its text (a string's own, another value's JSON), cut to fit
    and ending in an ellipsis."""
    if fits(value):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    room = MAX_ATTR_JSON - len(json.dumps(_ELLIPSIS))  # less the quotes and the ellipsis
    kept = []
    for char in text:  # a character takes 1 to 12 characters of JSON (escaped)
        room -= len(json.dumps(char)) - 2
        if room < 0:
            break
        kept.append(char)
    return "".join(kept) + _ELLIPSIS


def split(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user and the system attributes that record ``attrs`` (see the module docstring)."""
    user: dict[str, Any] = {}
    system: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in RECORDS:
            system[PREFIX + key] = value
            user.update(_compact(key, value))
        elif fits(value):
            user[key] = value
        else:
            system[PREFIX + key] = value
            user[key] = shorten(value)
    return user, system


def _compact(key: str, value: Any) -> dict[str, Any]:
    """The short user attributes that summarize a record."""
    if key == "curve" and value:
        return {"epochs": value[-1]["epoch"]}
    if key == "final_metrics":
        return {f"final_{k}": v for k, v in value.items() if fits(v)}
    if key == "resumes":
        return {"retries": len(value)}
    return {}


def write(
    trial: optuna.Trial, attrs: Mapping[str, Any], steps: Mapping[int, float] | None = None
) -> None:
    """Record ``attrs`` of a running trial, each where :func:`split` puts it, and its
    intermediate values ``steps`` (epoch to value), in one transaction where the storage can."""
    user, system = split(attrs)
    optuna_compat.set_attrs(trial, user, system, steps)


def trial_attr(trial: FrozenTrial, key: str, default: Any = None) -> Any:
    """A trial's ``key``, whole, wherever it is kept (``default`` where it has none)."""
    whole = trial.system_attrs.get(PREFIX + key, _MISSING)
    shown = trial.user_attrs.get(key, _MISSING)
    if key in RECORDS:
        found = shown if whole is _MISSING else whole  # in a user attribute: stored before
    elif whole is not _MISSING and shown == shorten(whole):
        found = whole  # the user attribute is this value cut short
    else:
        found = shown
    return default if found is _MISSING else found


def trial_curve(trial: FrozenTrial) -> list[dict[str, Any]]:
    """A trial's learning curve: one point (``epoch`` and each metric) per epoch."""
    curve = trial_attr(trial, "curve", [])
    return list(curve) if isinstance(curve, list) else []


def full_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """Everything tuneforge recorded of a trial, each value whole: its user attributes and
    its records, by name."""
    names = list(trial.user_attrs)
    names += [k.removeprefix(PREFIX) for k in trial.system_attrs if k.startswith(PREFIX)]
    return {name: trial_attr(trial, name) for name in dict.fromkeys(names)}


def spec_summary(spec: StudySpec) -> str:
    """A study in one line: what it trains, for which objectives, with which algorithm and
    budget (``mlp on digits; maximize val_accuracy; tpe; 20 trials``)."""
    task = spec.task
    if isinstance(task, FunctionTask):
        what = f"function {task.name}"
    elif isinstance(task, ExternalTask):
        what = "evaluated by clients"
    else:
        data = task.dataset.name or f"upload {task.dataset.upload_id}"
        what = f"{task.model.get('family', 'model')} on {data}"
    goals = ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives)
    line = f"{what}; {goals}; {spec.algorithm.name}; {spec.budget.max_trials} trials"
    return str(shorten(line))


def record_spec(study: optuna.Study, spec: StudySpec, document: Mapping[str, Any]) -> None:
    """Record a new study's spec: the one line as its user attribute, the stored document
    whole as its system attribute."""
    study.set_user_attr(SPEC_SUMMARY, spec_summary(spec))
    optuna_compat.set_study_system_attr(study, SPEC, dict(document))
