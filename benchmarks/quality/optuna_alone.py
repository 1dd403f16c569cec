"""Optuna alone in the search-quality benchmark: two spawned worker processes, each
``study.optimize`` on one SQLite ``RDBStorage`` with TPE and successive halving.

Cold (``optuna``): the clock starts before the processes are spawned (Optuna has no daemon),
so the workers' start-up and ``import torch`` fall inside it. Warm (``optuna-warm``): the
workers start, import torch and load the data, then wait at a barrier; the clock starts when
all are ready, as for a pool of workers kept running.
"""

import multiprocessing as mp
import time
import warnings
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import optuna

from benchmarks.harness import ts
from benchmarks.quality.common import (
    MIN_RESOURCE,
    PARALLEL,
    REDUCTION,
    STATES,
    Run,
    Trial,
    load_data,
    suggest,
    tpe,
    train_params,
)
from benchmarks.quality.tasks import TASKS


def worker(
    url: str,
    study_name: str,
    task_name: str,
    seed: int,
    index: int,
    clock: Any,
    ready: Barrier,
    go: Event,
) -> None:
    """One of the worker processes: ``study.optimize`` until the clock's deadline."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = TASKS[task_name]
    data = load_data(task)
    ready.wait()  # warm: the clock starts when every worker is here (cold: at once)
    go.wait()  # the clock's deadline is set
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
        params = {name: suggest(trial, name, p) for name, p in task.space.items()}

        def on_epoch(epoch: int, value: float) -> None:
            trial.report(value, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        # As in tuneforge: trial n trains with seed + n.
        return train_params(task, params, data, seed + trial.number, on_epoch)

    remaining = clock.value - time.time()
    if remaining > 0:
        study.optimize(objective, timeout=remaining, catch=(Exception,))


def run_optuna(
    task_name: str, seed: int, budget: float, workdir: Path, warm: bool = False
) -> list[Run]:
    """One run (cold or warm, see the module docstring)."""
    url = f"sqlite:///{workdir / 'optuna.db'}"
    optuna.storages.RDBStorage(url)  # the schema exists before the clock starts
    study_name = f"search-quality-{task_name}-s{seed}"
    ctx = mp.get_context("spawn")
    clock = ctx.Value("d", 0.0)  # the deadline, set when the clock starts
    ready = ctx.Barrier(PARALLEL + 1 if warm else 1)
    go = ctx.Event()
    procs = [
        ctx.Process(target=worker, args=(url, study_name, task_name, seed, w, clock, ready, go))
        for w in range(PARALLEL)
    ]
    if warm:
        optuna.create_study(study_name=study_name, storage=url, direction="maximize")
        for p in procs:
            p.start()
        ready.wait(timeout=300)  # every worker has imported torch and loaded the data
        t0 = time.time()
    else:
        t0 = time.time()
        optuna.create_study(study_name=study_name, storage=url, direction="maximize")
        for p in procs:
            p.start()
    clock.value = t0 + budget
    go.set()
    run = Run("optuna-warm" if warm else "optuna", seed, budget, task_name)
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
