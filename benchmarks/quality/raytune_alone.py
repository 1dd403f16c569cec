"""Ray Tune alone in the search-quality benchmark: ``tune.Tuner`` with ``OptunaSearch`` (the
same TPE), ``ASHAScheduler``, 2 concurrent trials, reused actors, ``time_budget_s``.

The experiment runs in its own process (``python -m benchmarks.quality.raytune_alone JOB``)
with its own Ray, so that Ray is always shut down, whatever happens.
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
    EPOCHS,
    METRIC,
    MIN_RESOURCE,
    PARALLEL,
    REDUCTION,
    Run,
    Trial,
    distributions,
    load_digits,
    tpe,
    train_params,
)


def trainable(config: dict[str, Any], data: Any, base_seed: int) -> None:
    """One trial: train the configuration, reporting every epoch to Tune."""
    from ray import tune

    # Trial n trains with seed + n, as elsewhere. Tune names a trial's folder
    # "<trainable>_<trial id>_<n + 1>_<params>", counting from 1 in creation order.
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    found = re.search(rf"_{re.escape(trial_id)}_(\d+)_", Path(ctx.get_trial_dir()).name)
    index = int(found.group(1)) - 1 if found else zlib.crc32(trial_id.encode()) % 100_000
    train_params(config, data, base_seed + index, lambda epoch, value: tune.report({METRIC: value}))


def experiment(seed: int, budget: float, workdir: Path, out: Path) -> None:
    """The child process: one Ray Tune experiment; its events written to ``out`` as JSON."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=PARALLEL,
        logging_level=logging.WARNING,
    )
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

    try:
        data = load_digits()
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(trainable, data=data, base_seed=seed), {"cpu": 1}
            ),
            tune_config=tune.TuneConfig(
                # metric and mode on each part: TuneConfig's do not reach a searcher that
                # max_concurrent_trials wraps in a ConcurrencyLimiter (Ray 2.60).
                search_alg=OptunaSearch(
                    space=distributions(), metric=METRIC, mode="max", sampler=tpe(seed)
                ),
                scheduler=ASHAScheduler(
                    metric=METRIC,
                    mode="max",
                    time_attr="training_iteration",
                    max_t=EPOCHS,
                    grace_period=MIN_RESOURCE,
                    reduction_factor=REDUCTION,
                ),
                num_samples=-1,  # until the time budget
                max_concurrent_trials=PARALLEL,
                time_budget_s=budget,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"search-quality-s{seed}",
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
        out.write_text(
            json.dumps({"t0": t0, "fit_s": t_fit, "driver_cpu_s": cpu, "events": events})
        )
    finally:
        ray.shutdown()


def run_raytune(seed: int, budget: float, workdir: Path) -> list[Run]:
    """One run in a child process; the clock starts at ``tuner.fit()`` (``ray.init`` done)."""
    out = workdir / "raytune.json"
    job = json.dumps({"seed": seed, "budget": budget, "workdir": str(workdir), "out": str(out)})
    log_path = workdir / "raytune.log"
    status = run_child(["-m", __name__, job], log_path, timeout=budget + 240)
    run = Run("raytune", seed, budget)
    if not out.exists():
        log(f"Ray Tune's log (last lines):\n{log_path.read_text(errors='replace')[-3000:]}")
        run.note = f"Ray Tune's process ended without a result (exit status {status})"
        return [run]
    got = json.loads(out.read_text())
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
            final = e["iteration"] >= EPOCHS
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
    return [run]


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    experiment(job["seed"], job["budget"], Path(job["workdir"]), Path(job["out"]))
