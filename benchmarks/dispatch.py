"""Dispatch overhead: what the service costs per trial when the trial itself costs nothing.

Each system runs ``--trials`` (300) trials of a no-op objective, two at a time, one float
parameter ``x`` in [0, 1] drawn by random search, on this machine, in one run:

- **tuneforge**: the whole service. One ``tuneforge serve`` (its own local Ray with 2 CPUs,
  SQLite in a temporary data directory, started and warmed outside the clock) gets
  ``POST /api/v1/studies`` with ``task: {kind: function, name: noop}``, ``parallelism: 2``;
  its scheduler asks Optuna for each trial, runs it as a Ray task, and writes it to the
  database. Clock: from sending the POST to the last trial's completion time (read back from
  the API afterwards; the study is polled every 0.5 s to know when it ended).
- **optuna**: Optuna alone on the same kind of database URL (a fresh SQLite file):
  ``study.optimize(objective, n_trials, n_jobs=2)``; clock around ``optimize``.
- **raytune**: Ray Tune alone, in its own process with its own ``ray.init(num_cpus=2)``
  (outside the clock): ``tune.Tuner`` with the function trainable, ``num_samples``,
  ``max_concurrent_trials=2``, ``reuse_actors=True``; clock around ``tuner.fit()``.

Per-trial overhead = clock / trials (the objective takes no time, so all of it is overhead;
with two in flight it is the cost per trial of the pipeline, not of one trial's latency).
Each system runs ``--repeats`` (3) times; the table gives the median (min-max).
Goals (the issue): tuneforge <= 1/4 of Ray Tune's per-trial overhead, and <= Optuna's own.

Usage::

    .venv/bin/python benchmarks/dispatch.py --write            # ~4 min on 2 cores (its block)
    .venv/bin/python benchmarks/dispatch.py --trials 60 --repeats 1   # a smoke run
    .venv/bin/python benchmarks/dispatch.py --system tuneforge --profile prof.json
        # tuneforge only, its server sampled by py-spy (speedscope JSON)
"""

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/dispatch.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import optuna

from benchmarks.harness import (
    RESULTS,
    Server,
    all_trials,
    log,
    noop_study,
    publish,
    report_head,
    run_child,
    serve,
    ts,
    wait_study,
)

HEADING = "## Dispatch overhead: no-op trials through the whole service"
BLOCK = "benchmarks/dispatch.py"
PARALLEL = 2
SYSTEMS = ("tuneforge", "optuna", "raytune")
# The service's default poll, not the tests' 0.2 s; workers warmed (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.5"}
Runs = list[dict[str, float]]  # one dict a repeat: wall_s (and span_s)


def run_tuneforge_study(server: Server, name: str, trials: int) -> dict[str, float]:
    """One study through the API; its wall time (POST sent → last trial done) and span
    (first trial started → last trial done)."""
    api = server.api
    t0 = time.time()
    created = api.post("/studies", json=noop_study(name, trials, PARALLEL))
    study_id = created.raise_for_status().json()["id"]
    study = wait_study(api, study_id, poll_s=0.5)
    if study["status"] != "completed" or study["trial_counts"]["COMPLETE"] != trials:
        raise RuntimeError(f"tuneforge study did not complete its trials: {study}")
    items = all_trials(api, study_id)
    end = max(ts(t["datetime_complete"]) or 0.0 for t in items)
    start = min(ts(t["datetime_start"]) or end for t in items)
    return {"wall_s": end - t0, "span_s": end - start}


def run_tuneforge(trials: int, repeats: int, workdir: Path, profile: str | None) -> Runs:
    """The study through a warm server: a 20-trial warm-up, then ``repeats`` studies."""
    with serve(f"sqlite:///{workdir / 'tuneforge.db'}", workdir / "tf", SERVER_ENV) as server:
        return _tuneforge_runs(server, trials, repeats, profile)


def _tuneforge_runs(server: Server, trials: int, repeats: int, profile: str | None) -> Runs:
    spy = None
    try:
        run_tuneforge_study(server, "warm-up", 20)  # first use of every code path
        if profile:  # sample the server (API and scheduler threads) during the measured runs
            pyspy = str(Path(sys.executable).parent / "py-spy")
            pid = str(server.process.pid)
            spy = subprocess.Popen(
                [pyspy, "record", "--pid", pid, "--format", "speedscope", "-o", profile, "--idle"],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        return [run_tuneforge_study(server, f"noop-{i}", trials) for i in range(repeats)]
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)


def run_optuna(trials: int, repeats: int, workdir: Path) -> Runs:
    """``study.optimize(n_jobs=2)`` on a SQLite URL; a 20-trial warm-up first."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{workdir / 'optuna.db'}"
    runs = []
    for i in range(-1, repeats):  # -1: warm-up
        study = optuna.create_study(
            study_name=f"noop-{i}",
            storage=url,
            sampler=optuna.samplers.RandomSampler(seed=0),
            direction="minimize",
        )
        t0 = time.time()
        study.optimize(
            lambda t: t.suggest_float("x", 0.0, 1.0) * 0.0,
            n_trials=trials if i >= 0 else 20,
            n_jobs=PARALLEL,
        )
        end = time.time()
        done = study.get_trials(deepcopy=False)
        assert len(done) == (trials if i >= 0 else 20)
        assert all(t.datetime_start is not None for t in done)
        start = min(t.datetime_start.timestamp() for t in done if t.datetime_start)
        if i >= 0:
            runs.append({"wall_s": end - t0, "span_s": end - start})
    return runs


def _ray_tune_child(trials: int, repeats: int, workdir: Path, out: Path) -> None:
    """Runs in its own process (so its Ray is always shut down): the Ray Tune runs."""
    import logging

    import ray
    from ray import tune

    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=PARALLEL,
        logging_level=logging.WARNING,
    )

    def noop(config: dict[str, Any]) -> dict[str, float]:
        return {"value": config["x"] * 0.0}

    runs = []
    try:
        for i in range(-1, repeats):  # -1: warm-up
            n = trials if i >= 0 else 20
            tuner = tune.Tuner(
                tune.with_resources(noop, {"cpu": 1}),
                param_space={"x": tune.uniform(0.0, 1.0)},
                tune_config=tune.TuneConfig(
                    num_samples=n,
                    max_concurrent_trials=PARALLEL,
                    reuse_actors=True,
                    metric="value",
                    mode="min",
                ),
                run_config=tune.RunConfig(
                    name=f"noop-{i}", storage_path=str(workdir / "ray"), verbose=0
                ),
            )
            t0 = time.time()
            grid = tuner.fit()
            wall = time.time() - t0
            assert len(grid) == n and not grid.errors, grid.errors
            if i >= 0:
                runs.append({"wall_s": wall})
    finally:
        ray.shutdown()
    out.write_text(json.dumps(runs))


def run_raytune(trials: int, repeats: int, workdir: Path) -> Runs:
    """The Ray Tune runs, in a child process with its own Ray."""
    out = workdir / "raytune.json"
    job = json.dumps({"trials": trials, "repeats": repeats, "workdir": str(workdir)})
    log_path = workdir / "raytune.log"
    run_child(["-m", "benchmarks.dispatch", "--ray-tune-child", job], log_path, timeout=1800)
    if not out.exists():
        raise RuntimeError(f"Ray Tune failed:\n{log_path.read_text(errors='replace')[-3000:]}")
    runs: Runs = json.loads(out.read_text())
    return runs


def _ms(runs: Runs, key: str, trials: int) -> tuple[float, float, float]:
    per = [1000.0 * r[key] / trials for r in runs]
    return statistics.median(per), min(per), max(per)


def _cell(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.1f} ({v[1]:.1f}-{v[2]:.1f})"


def report(results: dict[str, Runs], trials: int, repeats: int) -> str:
    """Head lines, the table, and the goals' ratios."""
    per = {s: _ms(r, "wall_s", trials) for s, r in results.items()}
    rows = []
    for system, runs in results.items():
        span = _cell(_ms(runs, "span_s", trials)) if "span_s" in runs[0] else "-"
        wall = statistics.median(r["wall_s"] for r in runs)
        rows.append(f"| {system} | {wall:.2f} | {_cell(per[system])} | {span} |")
    lines = [
        report_head(
            f"optuna {optuna.__version__}",
            f"{trials} no-op trials, {PARALLEL} at a time, random search over one float, "
            f"{repeats} repeats per system after a 20-trial warm-up; per-trial overhead = wall "
            "time / trials (see the script's docstring for each system's clock); span = first "
            "trial start to last trial end (tuneforge and Optuna, from their trial records).",
        ),
        "",
        "| system | wall (s, median) | per-trial overhead (ms) | per trial over the span (ms) |",
        "|---|---:|---:|---:|",
        *rows,
        "",
    ]
    if "tuneforge" in per:
        tf = per["tuneforge"][0]
        goals = []
        if "raytune" in per:
            ratio = tf / per["raytune"][0]
            met = "met" if ratio <= 0.25 else "missed"
            goals.append(f"tuneforge / Ray Tune = {ratio:.3f} (goal <= 0.25: {met})")
        if "optuna" in per:
            ratio = tf / per["optuna"][0]
            met = "met" if ratio <= 1.0 else "missed"
            goals.append(f"tuneforge / Optuna = {ratio:.3f} (goal <= 1: {met})")
        lines.append("Ratios (medians): " + "; ".join(goals) + ".")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--system", action="append", choices=SYSTEMS)
    parser.add_argument("--profile", help="py-spy profile of tuneforge's server (speedscope)")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    parser.add_argument("--ray-tune-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_tune_child:
        child = json.loads(args.ray_tune_child)
        workdir = Path(child["workdir"])
        _ray_tune_child(child["trials"], child["repeats"], workdir, workdir / "raytune.json")
        return
    warnings.filterwarnings("ignore")
    runners: dict[str, Callable[[Path], Runs]] = {
        "tuneforge": lambda w: run_tuneforge(args.trials, args.repeats, w, args.profile),
        "optuna": lambda w: run_optuna(args.trials, args.repeats, w),
        "raytune": lambda w: run_raytune(args.trials, args.repeats, w),
    }
    results: dict[str, Runs] = {}
    with tempfile.TemporaryDirectory(prefix="tf-dispatch-") as tmp:
        for system in args.system or SYSTEMS:
            workdir = Path(tmp) / system
            workdir.mkdir()
            log(f"running {system} ...")
            results[system] = runners[system](workdir)
            log(f"  {system}: {results[system]}")
    publish(report(results, args.trials, args.repeats), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
