"""Ray Tune alone in the search-quality benchmark: ``tune.Tuner`` with ``OptunaSearch`` (the
same TPE), ``ASHAScheduler``, 2 concurrent trials, reused actors, ``time_budget_s``.

The experiments run in their own process (``python -m benchmarks.quality.raytune_alone JOB``)
with its own Ray, so that Ray is always shut down, whatever happens: the measured one (cold:
``ray.init`` done before the clock, the trial actors start and import torch inside it), then,
for the warm row, a second, identical experiment on the same Ray (the driver's imports done,
the files in the page cache; Tune's trial actors are new processes again).
"""

import json
import logging
import re
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import optuna

from benchmarks.harness import log, run_child
from benchmarks.quality.common import (
    METRIC,
    MIN_RESOURCE,
    PARALLEL,
    REDUCTION,
    Run,
    Trial,
    distributions,
    load_data,
    tpe,
    train_params,
)
from benchmarks.quality.tasks import TASKS, Task


def trainable(config: dict[str, Any], task: Task, data: Any, base_seed: int) -> None:
    """One trial: train the configuration, reporting every epoch to Tune."""
    from ray import tune

    # Trial n trains with seed + n, as elsewhere. Tune names a trial's folder
    # "<trainable>_<trial id>_<n + 1>_<params>", counting from 1 in creation order.
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    found = re.search(rf"_{re.escape(trial_id)}_(\d+)_", Path(ctx.get_trial_dir()).name)
    index = int(found.group(1)) - 1 if found else zlib.crc32(trial_id.encode()) % 100_000
    report = lambda epoch, value: tune.report({METRIC: value})  # noqa: E731
    train_params(task, config, data, base_seed + index, report)


def experiment(task: Task, seed: int, budget: float, workdir: Path, out: Path, warm: bool) -> None:
    """The child process: one Ray Tune experiment (two with ``warm``); their events written to
    ``out`` as JSON."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    import ray

    ray.init(
        address="local",  # a Ray of its own, whatever cluster this machine may have
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=PARALLEL,
        logging_level=logging.WARNING,
    )
    try:
        data = load_data(task)
        got = [fit(task, seed, budget, workdir, data, "cold")]
        if warm:
            got.append(fit(task, seed, budget, workdir, data, "warm"))
        out.write_text(json.dumps(got))
    finally:
        ray.shutdown()


def fit(task: Task, seed: int, budget: float, workdir: Path, data: Any, name: str) -> Any:
    """One experiment: its clock start, its duration, the driver's CPU and the trial events."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    events: list[dict[str, Any]] = []

    class Recorder(tune.Callback):
        """Driver-side timestamps: a trial's start, and its end (done or ASHA-stopped)."""

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            events.append({"kind": "start", "id": trial.trial_id, "t": time.time()})

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            events.append(
                {
                    "kind": "end",
                    "id": trial.trial_id,
                    "t": time.time(),
                    "iteration": result.get("training_iteration", 0),
                    "value": result.get(METRIC),
                }
            )

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            events.append({"kind": "error", "id": trial.trial_id, "t": time.time()})

    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(trainable, task=task, data=data, base_seed=seed), {"cpu": 1}
        ),
        tune_config=tune.TuneConfig(
            # metric and mode on each part: TuneConfig's do not reach a searcher that
            # max_concurrent_trials wraps in a ConcurrencyLimiter (Ray 2.60).
            search_alg=OptunaSearch(
                space=distributions(task), metric=METRIC, mode="max", sampler=tpe(seed)
            ),
            scheduler=ASHAScheduler(
                metric=METRIC,
                mode="max",
                time_attr="training_iteration",
                max_t=task.epochs,
                grace_period=MIN_RESOURCE,
                reduction_factor=REDUCTION,
            ),
            num_samples=-1,  # until the time budget
            max_concurrent_trials=PARALLEL,
            time_budget_s=budget,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"search-quality-{task.name}-s{seed}-{name}",
            storage_path=str(workdir / "ray"),
            verbose=0,
            callbacks=[Recorder()],
        ),
    )
    cpu0 = time.process_time()  # the driver: every thread of this process
    t0 = time.time()
    tuner.fit()
    t_fit = time.time() - t0
    cpu = (time.process_time() - cpu0) * min(1.0, budget / t_fit)  # pro rata to the budget
    return {"t0": t0, "fit_s": t_fit, "driver_cpu_s": cpu, "events": events}


def run_raytune(
    task_name: str, seed: int, budget: float, workdir: Path, warm: bool = True
) -> list[Run]:
    """One child process: the cold experiment (the clock starts at ``tuner.fit()``, ``ray.init``
    done) and, with ``warm``, the second one on the same Ray."""
    out = workdir / "raytune.json"
    job = {"task": task_name, "seed": seed, "budget": budget, "warm": warm}
    job |= {"workdir": str(workdir), "out": str(out)}
    log_path = workdir / "raytune.log"
    status = run_child(["-m", __name__, json.dumps(job)], log_path, timeout=2 * budget + 240)
    systems = ["raytune", "raytune-warm"] if warm else ["raytune"]
    runs = [Run(system, seed, budget, task_name) for system in systems]
    if not out.exists():
        log(f"Ray Tune's log (last lines):\n{log_path.read_text(errors='replace')[-3000:]}")
        for run in runs:
            run.note = f"Ray Tune's process ended without a result (exit status {status})"
        return runs
    for run, got in zip(runs, json.loads(out.read_text()), strict=False):
        _read(run, got, TASKS[task_name].epochs)
    return runs


def _read(run: Run, got: dict[str, Any], epochs: int) -> None:
    """A run's trials from one experiment's events."""
    t0 = got["t0"]
    run.orchestrator_cpu_s = got["driver_cpu_s"]
    starts: dict[str, float] = {}
    ended: set[str] = set()
    for e in got["events"]:
        if e["kind"] == "start":
            starts[e["id"]] = e["t"] - t0
            continue
        ended.add(e["id"])
        if e["kind"] == "end":
            final = e["iteration"] >= epochs
            run.trials.append(
                Trial(
                    starts.get(e["id"]),
                    e["t"] - t0,
                    "complete" if final else "pruned",
                    e["value"] if final else None,
                )
            )
        else:
            run.trials.append(Trial(starts.get(e["id"]), e["t"] - t0, "failed", None))
    for tid, start in starts.items():  # stopped by the time budget: no end event
        if tid not in ended:
            run.trials.append(Trial(start, None, "other", None))


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    experiment(
        TASKS[job["task"]],
        job["seed"],
        job["budget"],
        Path(job["workdir"]),
        Path(job["out"]),
        job["warm"],
    )
