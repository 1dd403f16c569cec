"""All SQL the service reads Optuna's tables with, in one module (the storage's writes are in
:mod:`service.store.optuna_writes`).

Optuna's ``storage.get_all_trials`` reads a whole study (every trial with its parameters,
values, attributes and intermediate values: about 7 s for 10,000 trials on SQLite). What a
request shows (a count, a best value, a page, an event stream, a metric) reads only that, here,
so its cost does not grow with the study (``benchmarks/api_scale.py``). The tables are Optuna's
own (:mod:`service.store.optuna_compat`); a page's trials are built as Optuna builds them
(:mod:`service.store.optuna_trials`; tests compare the two on SQLite and PostgreSQL).
"""

import json
from collections.abc import Collection, Container, Iterable
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    extract,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from search.loop.outcomes import INTERRUPTED
from service.store.optuna_compat import (
    ValueType,
    studies,
    trial_intermediate_values,
    trial_params,
    trial_system_attributes,
    trial_user_attributes,
    trial_values,
    trials,
)
from service.store.optuna_trials import assemble

# Every Optuna state, in Optuna's order (the order of a study's ``trial_counts``).
TRIAL_STATES: tuple[str, ...] = tuple(s.name for s in TrialState)
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def optuna_study_id(session: Session, optuna_study_name: str) -> int | None:
    """The Optuna study's id (None: it does not exist, e.g. it was deleted)."""
    query = select(studies.c.study_id).where(studies.c.study_name == optuna_study_name)
    return session.scalar(query)


def count_by_state(session: Session, study_id: int | None) -> dict[str, int]:
    """The study's trials counted by state, every state present (one ``GROUP BY``)."""
    counts = dict.fromkeys(TRIAL_STATES, 0)
    if study_id is None:
        return counts
    state = trials.c.state
    query = select(state, func.count()).where(trials.c.study_id == study_id).group_by(state)
    for name, n in session.execute(query).all():
        counts[TrialState(name).name] = int(n)
    return counts


def budget_counts(session: Session, study_id: int) -> tuple[int, int, int]:
    """What a study's budget counts of its trials, as
    :func:`search.loop.outcomes.count_trials` does, in two queries: (started, queued,
    running). Trials cut short by a stop and trials copied in by a warm start are not
    counted."""
    counts = count_by_state(session, study_id)
    attrs = trial_user_attributes
    query = (
        select(attrs.c.trial_id, attrs.c.key, attrs.c.value_json)
        .join(trials, trials.c.trial_id == attrs.c.trial_id)
        .where(
            trials.c.study_id == study_id,
            trials.c.state != TrialState.WAITING,
            attrs.c.key.in_((INTERRUPTED, "warm_start")),
        )
    )
    uncounted = set()
    for trial_id, key, value in session.execute(query).all():
        loaded = json.loads(value)
        if (key == INTERRUPTED and loaded) or str(loaded).startswith("study"):
            uncounted.add(trial_id)
    started = sum(counts.values()) - counts["WAITING"] - len(uncounted)
    return started, counts["WAITING"], counts["RUNNING"]


@dataclass(frozen=True)
class Best:
    """The best completed trial of a single-objective study."""

    trial_id: int
    number: int
    value: float


def best_trial(session: Session, study_id: int | None, direction: str) -> Best | None:
    """The completed trial with the best first objective (one ordered query); ties go to the
    lowest number, as in Optuna.

    Args:
        session: a session on the database of Optuna's tables.
        study_id: the Optuna study's id (None: no study, no best trial).
        direction: ``maximize`` or ``minimize``.

    Returns:
        The best trial's id, number and value, or None when no trial has completed.
    """
    if study_id is None:
        return None
    v = trial_values
    # Optuna stores infinities as a type with a NULL value: order by the type's rank first.
    rank = case(
        (v.c.value_type == ValueType.INF_NEG, -1), (v.c.value_type == ValueType.INF_POS, 1), else_=0
    )
    order = (rank.desc(), v.c.value.desc()) if direction == "maximize" else (rank, v.c.value)
    query = (
        select(trials.c.trial_id, trials.c.number, v.c.value, v.c.value_type)
        .join(v, v.c.trial_id == trials.c.trial_id)
        .where(
            trials.c.study_id == study_id,
            trials.c.state == TrialState.COMPLETE,
            v.c.objective == 0,
            trials.c.trial_id.not_in(_infeasible()),  # search.constraints: the best is feasible
        )
        .order_by(*order, trials.c.number, trials.c.trial_id)
        .limit(1)
    )
    row = session.execute(query).first()
    if row is None:
        return None
    trial_id, number, value, value_type = row
    if value_type != ValueType.FINITE:
        value = float("inf") if value_type == ValueType.INF_POS else float("-inf")
    return Best(int(trial_id), int(number), float(value))


_TRIAL_ROWS = select(
    trials.c.trial_id,
    trials.c.number,
    trials.c.state,
    trials.c.datetime_start,
    trials.c.datetime_complete,
)


def _infeasible() -> Select[Any]:
    """The ids of trials that broke their study's constraints (user attribute ``feasible``)."""
    attrs = trial_user_attributes
    return select(attrs.c.trial_id).where(attrs.c.key == "feasible", attrs.c.value_json == "false")


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
        where.append(trials.c.state == TrialState[state_name])
    total = session.scalar(select(func.count()).select_from(trials).where(*where)) or 0
    query = _TRIAL_ROWS.where(*where).order_by(trials.c.trial_id).offset(offset).limit(limit)
    rows = session.execute(query).all()
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
    return next(iter(trials_by_id(session, [trial_id])), None)


def trials_by_id(session: Session, trial_ids: list[int]) -> list[FrozenTrial]:
    """The trials of ``trial_ids`` that exist, in ``trial_id`` order, read 500 at a time."""
    found: list[FrozenTrial] = []
    for i in range(0, len(trial_ids), 500):
        chunk = trial_ids[i : i + 500]
        query = _TRIAL_ROWS.where(trials.c.trial_id.in_(chunk)).order_by(trials.c.trial_id)
        found += _frozen(session, session.execute(query))
    return found


def study_trials(
    session: Session | Connection,
    study_id: int,
    states: Container[TrialState] | None,
    included: set[int],
    greater_than: int,
) -> list[FrozenTrial] | None:
    """Optuna's ``RDBStorage._get_trials`` in plain queries (the scheduler's samplers and
    pruners read the trials of its studies several times a second): the study's trials in
    ``states``, in trial_id order, whose id is in ``included`` or above ``greater_than`` (-1:
    every trial); None when there is no such study."""
    included = {i for i in included if i <= greater_than}
    where: list[ColumnElement[bool]] = [trials.c.study_id == study_id]
    if states is not None:
        where.append(trials.c.state.in_(list(states)))  # type: ignore[call-overload]
    if greater_than > -1:
        newer = trials.c.trial_id > greater_than
        where.append(or_(trials.c.trial_id.in_(sorted(included)), newer) if included else newer)
    rows = session.execute(_TRIAL_ROWS.where(*where).order_by(trials.c.trial_id)).all()
    if not rows:
        exists = select(studies.c.study_id).where(studies.c.study_id == study_id)
        return None if session.execute(exists).first() is None else []
    found: list[FrozenTrial] = []
    for i in range(0, len(rows), 500):
        found += _frozen(session, rows[i : i + 500])
    return found


def _frozen(session: Session | Connection, rows: Iterable[Any]) -> list[FrozenTrial]:
    """The trials of ``rows`` (``_TRIAL_ROWS``), each with its details: one query per table."""
    rows = list(rows)
    if not rows:
        return []
    ids = [int(r.trial_id) for r in rows]
    p, v, iv = trial_params, trial_values, trial_intermediate_values
    details = {
        "params": session.execute(
            select(p.c.trial_id, p.c.param_name, p.c.param_value, p.c.distribution_json)
            .where(p.c.trial_id.in_(ids))
            .order_by(p.c.param_id)
        ),
        "values": session.execute(
            select(v.c.trial_id, v.c.objective, v.c.value, v.c.value_type).where(
                v.c.trial_id.in_(ids)
            )
        ),
        "user": _attrs(session, trial_user_attributes, ids),
        "system": _attrs(session, trial_system_attributes, ids),
        "steps": session.execute(
            select(iv.c.trial_id, iv.c.step, iv.c.intermediate_value, iv.c.intermediate_value_type)
            .where(iv.c.trial_id.in_(ids))
            .order_by(iv.c.trial_intermediate_value_id)
        ),
    }
    return assemble(rows, details)


def _attrs(session: Session | Connection, table: Any, ids: list[int]) -> Any:
    return session.execute(
        select(table.c.trial_id, table.c.key, table.c.value_json)
        .where(table.c.trial_id.in_(ids))
        .order_by(table.primary_key.columns[0])
    )


def artifact_ids(session: Session, study_id: int) -> list[str]:
    """The ids of the artifacts uploaded to a study's trials (``artifacts:<id>`` attributes)."""
    ta = trial_system_attributes
    query = select(ta.c.key).join(trials, trials.c.trial_id == ta.c.trial_id)
    query = query.where(trials.c.study_id == study_id, ta.c.key.startswith("artifacts:"))
    return [key.removeprefix("artifacts:") for key in session.scalars(query)]


# -- the event stream ---------------------------------------------------------------------------


def changed_trials(
    session: Session, study_id: int, newest: int, open_ids: list[int]
) -> list[tuple[int, str]]:
    """(trial id, state name) of the study's trials newer than ``newest`` or among
    ``open_ids`` (those a watcher last saw unfinished), in number order."""
    query = (
        select(trials.c.trial_id, trials.c.state)
        .where(
            trials.c.study_id == study_id,
            (trials.c.trial_id > newest) | trials.c.trial_id.in_(open_ids or [-1]),
        )
        .order_by(trials.c.number)
    )
    return [(int(tid), TrialState(state).name) for tid, state in session.execute(query)]


def latest_epochs(session: Session, trial_ids: list[int]) -> list[tuple[int, int, float]]:
    """(trial id, step, value) of each trial's newest intermediate value."""
    iv = trial_intermediate_values
    newest = (
        select(iv.c.trial_id, func.max(iv.c.step).label("step"))
        .where(iv.c.trial_id.in_(trial_ids))
        .group_by(iv.c.trial_id)
        .subquery()
    )
    query = select(iv.c.trial_id, iv.c.step, iv.c.intermediate_value).join(
        newest, and_(newest.c.trial_id == iv.c.trial_id, newest.c.step == iv.c.step)
    )
    return [(int(t), int(s), v) for t, s, v in session.execute(query)]


# -- metrics --------------------------------------------------------------------------------------


def trials_by_state(session: Session) -> dict[str, int]:
    """Every trial of the database counted by state."""
    counts = dict.fromkeys(TRIAL_STATES, 0)
    for state, n in session.execute(select(trials.c.state, func.count()).group_by(trials.c.state)):
        counts[TrialState(state).name] = int(n)
    return counts


def trials_in_state_of(session: Session, study_names: Select[Any], state: TrialState) -> int:
    """Trials in ``state`` (WAITING: queued; RUNNING: in flight) of the studies whose names
    ``study_names`` selects."""
    query = (
        select(func.count())
        .select_from(trials)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(trials.c.state == state, studies.c.study_name.in_(study_names))
    )
    return int(session.scalar(query) or 0)


def running_by_study(session: Session, study_names: Collection[str]) -> dict[str, int]:
    """Trials in flight (RUNNING) of each named study, by name (absent: none)."""
    if not study_names:
        return {}
    query = (
        select(studies.c.study_name, func.count())
        .select_from(trials)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(trials.c.state == TrialState.RUNNING, studies.c.study_name.in_(list(study_names)))
        .group_by(studies.c.study_name)
    )
    return {name: int(n) for name, n in session.execute(query).all()}


def duration_histogram(
    session: Session, buckets: tuple[float, ...]
) -> dict[str, tuple[list[int], float]]:
    """Per finished state: the cumulative count of trials at most each bucket's seconds long
    (and all of them, last), and the total seconds (one query where the database can)."""
    seconds = _seconds_between(session, trials.c.datetime_start, trials.c.datetime_complete)
    finished = and_(
        trials.c.state.in_(_FINISHED),
        trials.c.datetime_start.is_not(None),
        trials.c.datetime_complete.is_not(None),
    )
    counted: dict[str, tuple[list[int], float]] = {}
    if seconds is None:  # a database with no date arithmetic here: read the two columns
        query = select(trials.c.state, trials.c.datetime_start, trials.c.datetime_complete)
        for state, start, end in session.execute(query.where(finished)):
            cumulative, total = counted.get(TrialState(state).name, ([0] * (len(buckets) + 1), 0.0))
            d = (end - start).total_seconds()
            for i, le in enumerate(buckets):
                cumulative[i] += d <= le
            cumulative[-1] += 1
            counted[TrialState(state).name] = (cumulative, total + d)
        return counted
    # Materialized: each trial's duration is computed once, not once per bucket (a plain
    # subquery is flattened and repeats the expression in every SUM: 4x slower).
    d = (
        select(trials.c.state.label("state"), seconds.label("d"))
        .where(finished)
        .cte("finished_trials")
        .prefix_with("MATERIALIZED")
    )
    query = select(
        d.c.state,
        func.count(),
        func.coalesce(func.sum(d.c.d), 0.0),
        *(func.sum(case((d.c.d <= le, 1), else_=0)) for le in buckets),
    ).group_by(d.c.state)
    for row in session.execute(query):
        state, n, total = row[0], row[1], row[2]
        cumulative = [int(row[i]) for i in range(3, len(row))]
        counted[TrialState(state).name] = ([*cumulative, int(n)], float(total))
    return counted


def _seconds_between(
    session: Session, start: ColumnElement[Any], end: ColumnElement[Any]
) -> ColumnElement[Any] | None:
    """``end - start`` in seconds, in the database's own SQL (None: not known for it)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite keeps milliseconds in its date arithmetic: round off the float noise.
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
    if dialect == "postgresql":
        return extract("epoch", end - start)
    return None
