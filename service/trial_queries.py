"""SQL on Optuna's tables for what the API shows of a study: its trials counted by state, its
best value, one page of its trials, one trial by number.

Optuna's ``storage.get_all_trials`` reads a whole study (every trial with its parameters,
values, attributes and intermediate values: about 7 s for 10,000 trials on SQLite); a request
that shows a count, a best value or a page reads only that here, so its cost does not grow with
the study (``benchmarks/api_scale.py``). A page's trials are built here from the rows of those
trials only, as Optuna's storage builds them (the tests compare the two on SQLite and
PostgreSQL).

The tables are named here rather than imported from Optuna's private models module: only the
columns these queries read. :mod:`service.metrics` reads the same tables.
"""

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import DateTime, Row, String, case, cast, column, func, select, table
from sqlalchemy.orm import Session

# Every Optuna state, in Optuna's order (the order of a study's ``trial_counts``).
TRIAL_STATES: tuple[str, ...] = tuple(s.name for s in TrialState)

trials = table(
    "trials",
    column("trial_id"),
    column("number"),
    column("study_id"),
    column("state"),
    column("datetime_start", DateTime),
    column("datetime_complete", DateTime),
)
trial_values = table(
    "trial_values",
    column("trial_id"),
    column("objective"),
    column("value"),
    column("value_type"),
)
studies = table("studies", column("study_id"), column("study_name"))
# A trial's state (and a value's type) as text: PostgreSQL stores them as enums, which no string
# parameter (cast to VARCHAR by the psycopg dialect) compares with.
state = cast(trials.c.state, String)
_value_type = cast(trial_values.c.value_type, String)


def optuna_study_id(session: Session, optuna_study_name: str) -> int | None:
    """The Optuna study's id (None: it does not exist, e.g. it was deleted)."""
    return session.scalar(
        select(studies.c.study_id).where(studies.c.study_name == optuna_study_name)
    )


def count_by_state(session: Session, study_id: int | None) -> dict[str, int]:
    """The study's trials counted by state, every state present (one ``GROUP BY``)."""
    counts = dict.fromkeys(TRIAL_STATES, 0)
    if study_id is None:
        return counts
    query = select(state, func.count()).where(trials.c.study_id == study_id).group_by(state)
    for name, n in session.execute(query).all():
        counts[str(name)] = int(n)
    return counts


@dataclass(frozen=True)
class Best:
    """The best completed trial of a single-objective study."""

    trial_id: int
    number: int
    value: float


def best_trial(session: Session, study_id: int | None, direction: str) -> Best | None:
    """The completed trial with the best first objective (one ordered query); ties go to the
    lowest number, as in Optuna (and :func:`service.views.best_trial`).

    Args:
        session: a session on the database of Optuna's tables.
        study_id: the Optuna study's id (None: no study, no best trial).
        direction: ``maximize`` or ``minimize`` (the stored spec's).

    Returns:
        The best trial's id, number and value, or None when no trial has completed.
    """
    if study_id is None:
        return None
    v = trial_values
    # Optuna stores infinities as a type with a NULL value: order by the type's rank first.
    rank = case((_value_type == "INF_NEG", -1), (_value_type == "INF_POS", 1), else_=0)
    order = (rank.desc(), v.c.value.desc()) if direction == "maximize" else (rank, v.c.value)
    query = (
        select(trials.c.trial_id, trials.c.number, v.c.value, _value_type)
        .join(v, v.c.trial_id == trials.c.trial_id)
        .where(trials.c.study_id == study_id, state == "COMPLETE", v.c.objective == 0)
        .order_by(*order, trials.c.number, trials.c.trial_id)
        .limit(1)
    )
    row = session.execute(query).first()
    if row is None:
        return None
    trial_id, number, value, value_type = row
    if value_type != "FINITE":
        value = float("inf") if value_type == "INF_POS" else float("-inf")
    return Best(int(trial_id), int(number), float(value))


def trial_page(
    session: Session,
    study_id: int | None,
    offset: int,
    limit: int,
    state_name: str | None = None,
) -> tuple[list[FrozenTrial], int]:
    """One page of a study's trials in trial order (Optuna's ``get_all_trials`` order),
    optionally of one state, and how many there are in all: one query counts, one reads the
    page's trials, and one per kind of detail reads theirs."""
    if study_id is None:
        return [], 0
    where = [trials.c.study_id == study_id]
    if state_name is not None:
        where.append(state == state_name)
    total = session.scalar(select(func.count()).select_from(trials).where(*where)) or 0
    rows = session.execute(
        _TRIAL_ROWS.where(*where).order_by(trials.c.trial_id).offset(offset).limit(limit)
    ).all()
    return _frozen(session, rows), int(total)


def trial_by_number(session: Session, study_id: int | None, number: int) -> FrozenTrial | None:
    """The study's trial ``number`` (None: there is none)."""
    if study_id is None:
        return None
    query = _TRIAL_ROWS.where(trials.c.study_id == study_id, trials.c.number == number)
    found = _frozen(session, session.execute(query.order_by(trials.c.trial_id).limit(1)).all())
    return found[0] if found else None


def trial_by_id(session: Session, trial_id: int) -> FrozenTrial | None:
    """The trial ``trial_id`` (None: there is none)."""
    found = trials_by_id(session, [trial_id])
    return found[0] if found else None


def trials_by_id(session: Session, trial_ids: list[int]) -> list[FrozenTrial]:
    """The trials of ``trial_ids`` that exist, in ``trial_id`` order, read 500 at a time."""
    found: list[FrozenTrial] = []
    for i in range(0, len(trial_ids), 500):
        chunk = trial_ids[i : i + 500]
        query = _TRIAL_ROWS.where(trials.c.trial_id.in_(chunk)).order_by(trials.c.trial_id)
        found += _frozen(session, session.execute(query))
    return found


# -- FrozenTrials from rows, as Optuna's RDBStorage builds them -----------------------------------

_TRIAL_ROWS = select(
    trials.c.trial_id,
    trials.c.number,
    state,
    trials.c.datetime_start,
    trials.c.datetime_complete,
)
params = table(
    "trial_params",
    column("param_id"),
    column("trial_id"),
    column("param_name"),
    column("param_value"),
    column("distribution_json"),
)
user_attrs = table(
    "trial_user_attributes",
    column("trial_user_attribute_id"),
    column("trial_id"),
    column("key"),
    column("value_json"),
)
system_attrs = table(
    "trial_system_attributes",
    column("trial_system_attribute_id"),
    column("trial_id"),
    column("key"),
    column("value_json"),
)
intermediate_values = table(
    "trial_intermediate_values",
    column("trial_intermediate_value_id"),
    column("trial_id"),
    column("step"),
    column("intermediate_value"),
    column("intermediate_value_type"),
)
# Infinities (and NaN among intermediate values) are stored as a type with a NULL value.
_SPECIAL = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


@functools.lru_cache(maxsize=1024)
def _distribution(distribution_json: str) -> BaseDistribution:
    # Every trial of a study repeats the same few distributions: parse each once.
    return json_to_distribution(distribution_json)


def _number(value: float | None, value_type: str) -> float:
    if value_type != "FINITE":
        return _SPECIAL[value_type]
    # SQLite keeps a NaN as NULL (Optuna never stores one as a finite value).
    return math.nan if value is None else float(value)


def local_time(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and hands out naive local time (``models.TrialModel``)."""
    return None if utc is None else utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def _frozen(session: Session, rows: Iterable[Row[Any]]) -> list[FrozenTrial]:
    """The trials of ``rows`` (``_TRIAL_ROWS``), each with its parameters, values, attributes
    and intermediate values: what ``RDBStorage.get_all_trials`` builds, from Core rows rather
    than ORM objects (a page of 100 trials is some 5,000 rows; as ORM objects they cost more
    than the whole request may)."""
    rows = list(rows)
    if not rows:
        return []
    ids = [int(r.trial_id) for r in rows]
    by_id: dict[int, dict[str, Any]] = {
        i: {"params": {}, "dists": {}, "values": {}, "user": {}, "system": {}, "steps": {}}
        for i in ids
    }
    for tid, name, value, dist_json in session.execute(
        select(
            params.c.trial_id, params.c.param_name, params.c.param_value, params.c.distribution_json
        )
        .where(params.c.trial_id.in_(ids))
        .order_by(params.c.param_id)
    ):
        dist = _distribution(dist_json)
        by_id[tid]["dists"][name] = dist
        by_id[tid]["params"][name] = dist.to_external_repr(value)
    for tid, objective, value, kind in session.execute(
        select(
            trial_values.c.trial_id, trial_values.c.objective, trial_values.c.value, _value_type
        ).where(trial_values.c.trial_id.in_(ids))
    ):
        by_id[tid]["values"][int(objective)] = _number(value, kind)
    for attrs, key in ((user_attrs, "user"), (system_attrs, "system")):
        for tid, name, value_json in session.execute(
            select(attrs.c.trial_id, attrs.c.key, attrs.c.value_json)
            .where(attrs.c.trial_id.in_(ids))
            .order_by(attrs.c[f"trial_{key}_attribute_id"])
        ):
            by_id[tid][key][name] = json.loads(value_json)
    iv = intermediate_values
    for tid, step, value, kind in session.execute(
        select(
            iv.c.trial_id,
            iv.c.step,
            iv.c.intermediate_value,
            cast(iv.c.intermediate_value_type, String),
        )
        .where(iv.c.trial_id.in_(ids))
        .order_by(iv.c.trial_intermediate_value_id)
    ):
        by_id[tid]["steps"][int(step)] = _number(value, kind)
    out = []
    for r in rows:
        got = by_id[int(r.trial_id)]
        values = got["values"]
        out.append(
            FrozenTrial(
                number=int(r.number),
                state=TrialState[r.state],
                value=None,
                values=[values[i] for i in range(len(values))] if values else None,
                datetime_start=local_time(r.datetime_start),
                datetime_complete=local_time(r.datetime_complete),
                params=got["params"],
                distributions=got["dists"],
                user_attrs=got["user"],
                system_attrs=got["system"],
                intermediate_values=got["steps"],
                trial_id=int(r.trial_id),
            )
        )
    return out
