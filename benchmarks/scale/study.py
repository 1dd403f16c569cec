"""The study of ``benchmarks/api_scale.py``: trials written straight into Optuna's tables, as
the scheduler leaves them, and read back through Optuna to check the rows."""

import datetime as dt
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from benchmarks.harness import ROOT

EXAMPLE = ROOT / "examples" / "digits-mlp.yaml"
EPOCHS = 15
# The share of each state: a long study with ASHA prunes many, fails a few, and has a few in
# flight or queued at any moment.
STATES = (
    (TrialState.COMPLETE, 0.70),
    (TrialState.PRUNED, 0.22),
    (TrialState.FAIL, 0.05),
    (TrialState.RUNNING, 0.02),
    (TrialState.WAITING, 0.01),
)
SPACE: dict[str, BaseDistribution] = {
    "model.hidden_layers": IntDistribution(1, 3),
    "model.width": IntDistribution(32, 256, log=True),
    "model.activation": CategoricalDistribution(["relu", "gelu", "tanh"]),
    "model.dropout": FloatDistribution(0.0, 0.4),
    "training.lr": FloatDistribution(3e-4, 3e-2, log=True),
    "training.batch_size": CategoricalDistribution([32, 64, 128]),
}


@dataclass
class Written:
    """What was written into the study, to check the answers against."""

    counts: dict[str, int]
    best_value: float | None
    best_number: int | None
    seconds: float


def _accuracy(rng: random.Random, quality: float, epoch: int) -> float:
    """A validation accuracy after ``epoch`` epochs, in 1/360 steps (360 validation images)."""
    raw = quality * (1 - math.exp(-epoch / 3)) + rng.gauss(0, 0.01)
    return round(min(max(raw, 0.05), 1.0) * 360) / 360


def make_trial(rng: random.Random, number: int, start: dt.datetime) -> FrozenTrial:
    """One trial as the scheduler leaves it, in a state drawn from ``STATES``."""
    state = rng.choices([s for s, _ in STATES], [w for _, w in STATES])[0]
    params = {
        name: (
            rng.choice(d.choices)
            if isinstance(d, CategoricalDistribution)
            else rng.randint(int(d.low), int(d.high))
            if isinstance(d, IntDistribution)
            else rng.uniform(d.low, d.high)
        )
        for name, d in SPACE.items()
        if isinstance(d, CategoricalDistribution | IntDistribution | FloatDistribution)
    }
    epochs = {
        TrialState.COMPLETE: EPOCHS,
        TrialState.PRUNED: rng.choice([1, 3, 9]),
        TrialState.FAIL: rng.randint(0, EPOCHS - 1),
        TrialState.RUNNING: rng.randint(0, EPOCHS - 1),
        TrialState.WAITING: 0,
    }[state]
    quality = rng.uniform(0.80, 0.97)
    curve, steps = [], {}
    for epoch in range(1, epochs + 1):
        acc = _accuracy(rng, quality, epoch)
        steps[epoch] = acc
        curve.append(
            {
                "epoch": epoch,
                "train_loss": round(rng.uniform(0.01, 2.0), 6),
                "val_loss": round(rng.uniform(0.05, 2.0), 6),
                "val_accuracy": acc,
                "lr": params["training.lr"],
                "grad_norm": round(rng.uniform(0.1, 5.0), 6),
                "seconds": round(rng.uniform(0.05, 0.5), 4),
            }
        )
    attrs: dict[str, Any] = {"seed": number}
    value: float | None = None
    if state != TrialState.WAITING:
        attrs |= {"node_id": f"{rng.getrandbits(224):056x}", "pid": rng.randint(1000, 60000)}
        attrs |= {"device": "cpu", "curve": curve}
    if state == TrialState.COMPLETE:
        value = steps[EPOCHS]
        attrs["final_metrics"] = {"val_accuracy": value, "val_loss": curve[-1]["val_loss"]}
    elif state == TrialState.PRUNED:
        value = steps[epochs]  # Optuna's tell keeps a pruned trial's last intermediate value
        attrs["pruned_at_epoch"] = epochs
    elif state == TrialState.FAIL:
        attrs["fail_reason"] = "non-finite loss at epoch 3"
    began = start + dt.timedelta(seconds=2 * number)
    ended = began + dt.timedelta(seconds=0.3 * max(epochs, 1))
    return FrozenTrial(
        number=number,
        state=state,
        value=value,
        values=None,
        datetime_start=None if state == TrialState.WAITING else began,
        datetime_complete=ended if state.is_finished() else None,
        params=params,
        distributions=dict(SPACE),
        user_attrs=attrs,
        system_attrs={},
        intermediate_values=steps,
        trial_id=number,
    )


def populate(url: str, optuna_name: str, n: int, seed: int = 0) -> Written:
    """Write ``n`` trials into the (empty) study; return what an answer must say.

    The rows are the ones Optuna's ``Study.add_trials`` writes (its own tables, its own
    conversions of parameters, values and datetimes), inserted in one transaction with
    ``executemany``: ``add_trials`` takes about 21 ms a trial here (four statements for each
    parameter, value and attribute), 3.5 min for 10,000. A few trials are read back through
    Optuna's storage and compared with what was meant.
    """
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from sqlalchemy import create_engine, func, insert, select, text

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    rng = random.Random(seed)
    t0 = dt.datetime.now() - dt.timedelta(seconds=2 * n + 60)
    trials = [make_trial(rng, i, t0) for i in range(n)]

    def utc(t: dt.datetime | None) -> dt.datetime | None:
        # Optuna stores naive UTC and hands back naive local time (models.TrialModel).
        return None if t is None else t.astimezone(dt.UTC).replace(tzinfo=None)

    tables = {
        m: m.__table__  # type: ignore[attr-defined]
        for m in (
            models.TrialModel,
            models.TrialParamModel,
            models.TrialValueModel,
            models.TrialUserAttributeModel,
            models.TrialIntermediateValueModel,
        )
    }
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            trial_t = tables[models.TrialModel]
            sid = conn.scalar(
                select(models.StudyModel.study_id).where(
                    models.StudyModel.study_name == optuna_name
                )
            )
            there = conn.scalar(
                select(func.count()).select_from(trial_t).where(trial_t.c.study_id == sid)
            )
            if sid is None or there:
                raise RuntimeError(f"study {optuna_name}: missing or not empty ({there})")
            conn.execute(
                insert(trial_t),
                [
                    {
                        "study_id": sid,
                        "number": t.number,
                        "state": t.state,
                        "datetime_start": utc(t.datetime_start),
                        "datetime_complete": utc(t.datetime_complete),
                    }
                    for t in trials
                ],
            )
            ids: dict[int, int] = dict(
                conn.execute(
                    select(trial_t.c.number, trial_t.c.trial_id).where(trial_t.c.study_id == sid)
                ).all()
            )
            value_of = models.TrialValueModel.value_to_stored_repr
            step_of = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
            rows: dict[Any, list[dict[str, Any]]] = {m: [] for m in tables}
            for t in trials:
                tid = ids[t.number]
                for name, v in t.params.items():
                    d = t.distributions[name]
                    rows[models.TrialParamModel].append(
                        {
                            "trial_id": tid,
                            "param_name": name,
                            "param_value": d.to_internal_repr(v),
                            "distribution_json": distribution_to_json(d),
                        }
                    )
                if t.values is not None:
                    for objective, v in enumerate(t.values):
                        stored, value_type = value_of(v)
                        rows[models.TrialValueModel].append(
                            {"trial_id": tid, "objective": objective, "value": stored}
                            | {"value_type": value_type}
                        )
                for key, v in t.user_attrs.items():
                    rows[models.TrialUserAttributeModel].append(
                        {"trial_id": tid, "key": key, "value_json": json.dumps(v)}
                    )
                for step, v in t.intermediate_values.items():
                    stored, kind = step_of(v)
                    rows[models.TrialIntermediateValueModel].append(
                        {"trial_id": tid, "step": step, "intermediate_value": stored}
                        | {"intermediate_value_type": kind}
                    )
            for model, batch in rows.items():
                if batch:
                    conn.execute(insert(tables[model]), batch)
            if url.startswith("postgresql"):
                # The statistics autovacuum keeps (PostgreSQL's default) of tables that grew over
                # hours; this machine's server runs without autovacuum (see RESULTS.md).
                conn.execute(text(f"ANALYZE {', '.join(str(t) for t in tables.values())}"))
    finally:
        engine.dispose()
    _read_back(url, trials, [ids[i] for i in (0, n // 3, n // 2, n - 1)])
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    done = [(t.value, t.number) for t in trials if t.state == TrialState.COMPLETE]
    best = max(done, key=lambda vn: (vn[0], -vn[1]), default=None)
    return Written(
        counts,
        best[0] if best else None,
        best[1] if best else None,
        time.perf_counter() - started,
    )


def _read_back(url: str, trials: list[FrozenTrial], trial_ids: list[int]) -> None:
    """Optuna reads the trials back as they were meant (else the rows are wrong)."""
    storage = optuna.storages.RDBStorage(url)
    try:
        for tid in trial_ids:
            got = storage.get_trial(tid)
            want = trials[got.number]
            for name in (
                "state",
                "params",
                "values",
                "user_attrs",
                "intermediate_values",
                "datetime_start",
                "datetime_complete",
            ):
                if getattr(got, name) != getattr(want, name):
                    raise RuntimeError(f"trial {got.number}: {name} read back differs")
    finally:
        storage.remove_session()
        storage.engine.dispose()


def study_body(trials: int) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    body["name"] = "api-scale"
    body["budget"] = {"max_trials": trials}
    return body
