"""Optuna alone in the search-quality benchmark: two spawned worker processes, each
``study.optimize`` on one SQLite ``RDBStorage`` with TPE and successive halving."""

import multiprocessing as mp
import time
import warnings
from pathlib import Path

import optuna

from benchmarks.harness import ts
from benchmarks.quality.common import (
    MIN_RESOURCE,
    PARALLEL,
    REDUCTION,
    SPACE,
    STATES,
    Run,
    Trial,
    load_digits,
    suggest,
    tpe,
    train_params,
)


def worker(url: str, study_name: str, seed: int, index: int, deadline: float) -> None:
    """One of the worker processes: ``study.optimize`` until the deadline."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_digits()
    # Each process has its own sampler; equal seeds would draw the same start-up points.
    study = optuna.load_study(
        study_name=study_name,
        storage=optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}),
        sampler=tpe(seed + 10_000 * index),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=MIN_RESOURCE, reduction_factor=REDUCTION
        ),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, p) for name, p in SPACE.items()}

        def on_epoch(epoch: int, value: float) -> None:
            trial.report(value, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        # As in tuneforge: trial n trains with seed + n.
        return train_params(params, data, seed + trial.number, on_epoch)

    remaining = deadline - time.time()
    if remaining > 0:
        study.optimize(objective, timeout=remaining, catch=(Exception,))


def run_optuna(seed: int, budget: float, workdir: Path) -> list[Run]:
    """One run: the clock starts before the worker processes are spawned (no daemon)."""
    url = f"sqlite:///{workdir / 'optuna.db'}"
    optuna.storages.RDBStorage(url)  # the schema exists before the clock starts
    study_name = f"search-quality-s{seed}"
    t0 = time.time()
    optuna.create_study(study_name=study_name, storage=url, direction="maximize")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=worker, args=(url, study_name, seed, w, t0 + budget))
        for w in range(PARALLEL)
    ]
    for p in procs:
        p.start()
    run = Run("optuna", seed, budget)
    try:
        for p in procs:
            p.join(max(1.0, t0 + budget + 60 - time.time()))
    finally:
        for p in procs:
            if p.is_alive():
                run.note = "a worker outlived the budget by 60 s and was killed"
                p.kill()
                p.join()
    for t in optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False):
        start, end = ts(t.datetime_start), ts(t.datetime_complete)
        run.trials.append(
            Trial(
                None if start is None else start - t0,
                None if end is None else end - t0,
                STATES.get(t.state.name, "other"),
                t.value,
            )
        )
    return [run]
