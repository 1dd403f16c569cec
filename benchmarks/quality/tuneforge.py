"""tuneforge in the search-quality benchmark: a fresh ``tuneforge serve`` per seed, the study
posted over REST and stopped when the budget is spent."""

import contextlib
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import all_trials, log, proc_cpu_s, serve, ts, wait_study
from benchmarks.quality.common import (
    ALGORITHMS,
    METRIC,
    PARALLEL,
    STATES,
    Run,
    Trial,
    tuneforge_system,
)
from benchmarks.quality.profile import sampled, summary
from benchmarks.quality.tasks import Task

# As measured (the test suite's server settings then): the scheduler rereads the studies every
# 0.2 s; workers warmed before the server reports ready (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2"}


def study_body(task: Task, seed: int, budget: float, algorithm: str = "tpe+asha") -> dict[str, Any]:
    """The study of ``task``: tpe + asha (or another of ALGORITHMS), 2 trials at a time, the
    budget as its timeout."""
    return {
        "name": f"search-quality-{task.name}-s{seed}",
        "objective": {"metric": METRIC, "direction": "maximize"},
        **ALGORITHMS[algorithm](seed),
        "search_space": task.space,
        "budget": {"max_trials": 100_000, "timeout_s": budget},
        "parallelism": PARALLEL,
        "resources": {"cpu": 1, "gpu": 0},
        "task": {
            "dataset": task.dataset,
            "model": task.model,
            "training": {**task.training, "epochs": task.epochs},
        },
        "seed": seed,
    }


def run_study(
    api: httpx.Client,
    task: Task,
    run: Run,
    server_pid: int,
    algorithm: str,
    profile: Path | None = None,
) -> None:
    """Submit one study to a live server, stop it when the budget is spent, read its trials;
    with ``profile``, the server is sampled by py-spy meanwhile."""
    with sampled(server_pid, profile) if profile else contextlib.nullcontext():
        _run_study(api, task, run, server_pid, algorithm)
    if profile:
        log(summary(profile))


def _run_study(api: httpx.Client, task: Task, run: Run, server_pid: int, algorithm: str) -> None:
    seed, budget = run.seed, run.budget
    cpu0 = proc_cpu_s(server_pid)
    t0 = time.time()
    body = study_body(task, seed, budget, algorithm)
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    while time.time() < t0 + budget:
        time.sleep(min(2.0, max(0.0, t0 + budget - time.time())))
        study = api.get(f"/studies/{study_id}").raise_for_status().json()
        if study["status"] in ("failed", "stopped", "completed"):
            run.note = f"study {study['status']} early: {study['status_reason']}"
            break
    run.orchestrator_cpu_s = proc_cpu_s(server_pid) - cpu0
    # The budget is spent: cancel the trials in flight rather than wait for them.
    api.post(f"/studies/{study_id}/stop").raise_for_status()
    with contextlib.suppress(TimeoutError):  # then read what is there
        wait_study(api, study_id, poll_s=0.5, timeout=60)
    for t in all_trials(api, study_id):
        start, end = ts(t["datetime_start"]), ts(t["datetime_complete"])
        interrupted = bool(t["user_attrs"].get("interrupted"))  # cancelled by the stop
        run.trials.append(
            Trial(
                None if start is None else start - t0,
                None if end is None else end - t0,
                "other" if interrupted else STATES.get(t["state"], "other"),
                t["value"],
            )
        )


def run_tuneforge(
    task: Task,
    seed: int,
    budget: float,
    workdir: Path,
    warm: bool = True,
    algorithm: str = "tpe+asha",
    profile: Path | None = None,
) -> list[Run]:
    """A fresh server's first study (the measurement), then a second study on the same,
    now warm, server (for reference: its Ray workers have imported torch already)."""
    # `tuneforge serve` on a free loopback port with 2 CPUs for its local Ray; it is ready once
    # the scheduler has started Ray and warmed one worker per CPU (GET /healthz: running).
    with serve(f"sqlite:///{workdir / 'tuneforge.db'}", workdir / "data", SERVER_ENV) as server:
        system = tuneforge_system(algorithm)
        runs = [Run(system, seed, budget, task.name, startup_s=server.startup_s)]
        if warm:
            runs.append(Run(tuneforge_system(algorithm, warm=True), seed, budget, task.name))
        with server.api as api:
            for i, run in enumerate(runs):
                try:
                    sample = profile if i == 0 else None  # the fresh server's study
                    run_study(api, task, run, server.process.pid, algorithm, sample)
                except Exception as exc:
                    run.note = f"run failed: {type(exc).__name__}: {exc}"
    return runs
