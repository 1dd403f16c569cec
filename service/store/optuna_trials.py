"""Optuna's ``FrozenTrial`` built from the rows of its tables, as its RDB storage builds it.

From Core rows rather than ORM objects: a page of 100 trials is some 5,000 rows, which as ORM
objects cost more than the whole request may.
"""

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from service.store.optuna_compat import stored_intermediate, stored_value


@functools.lru_cache(maxsize=1024)
def distribution(distribution_json: str) -> BaseDistribution:
    # Every trial of a study repeats the same few distributions: parse each once.
    return json_to_distribution(distribution_json)


def local_time(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and hands out naive local time (its ``TrialModel``)."""
    return None if utc is None else utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def assemble(rows: Iterable[Any], details: Mapping[str, Iterable[Any]]) -> list[FrozenTrial]:
    """The trials of ``rows`` (trial_id, number, state, datetime_start, datetime_complete)
    with their details: ``params`` (trial_id, name, value, distribution JSON), ``values``
    (trial_id, objective, value, type), ``user`` and ``system`` attributes (trial_id, key,
    value JSON), ``steps`` (trial_id, step, value, type)."""
    rows = list(rows)
    by_id: dict[int, dict[str, Any]] = {
        int(r.trial_id): {"params": {}, "dists": {}, "values": {}, "user": {}, "system": {}}
        | {"steps": {}}
        for r in rows
    }
    for tid, name, value, dist_json in details["params"]:
        dist = distribution(dist_json)
        by_id[tid]["dists"][name] = dist
        by_id[tid]["params"][name] = dist.to_external_repr(value)
    for tid, objective, value, kind in details["values"]:
        by_id[tid]["values"][int(objective)] = stored_value(value, kind)
    for key in ("user", "system"):
        for tid, name, value_json in details[key]:
            by_id[tid][key][name] = json.loads(value_json)
    for tid, step, value, kind in details["steps"]:
        by_id[tid]["steps"][int(step)] = stored_intermediate(value, kind)
    return [frozen_trial(r, by_id[int(r.trial_id)]) for r in rows]


def frozen_trial(row: Any, got: Mapping[str, Any]) -> FrozenTrial:
    """One trial from its row and its details (as :func:`assemble` gathers them)."""
    values = got["values"]
    return FrozenTrial(
        number=int(row.number),
        state=TrialState(row.state),
        value=None,
        values=[values[i] for i in range(len(values))] if values else None,
        datetime_start=local_time(row.datetime_start),
        datetime_complete=local_time(row.datetime_complete),
        params=got["params"],
        distributions=got["dists"],
        user_attrs=got["user"],
        system_attrs=got["system"],
        intermediate_values=got["steps"],
        trial_id=int(row.trial_id),
    )
