"""Search quality under a wall-clock budget: tuneforge against Optuna alone and Ray Tune alone.

A suite of tasks (``benchmarks/quality/tasks.py``): the digits MLP, the CNN family on the digits
images at a target only good configurations reach, and a generated task where capacity and
regularization must be balanced. On each, every system tunes the same network on the same data
with the same trainer (``models.training.trainer.train``, one torch thread per trial), the same
search space, the same search algorithm (Optuna's multivariate TPE, 5 random start-up trials,
constant liar) and the same early stopping (successive halving / ASHA, min_resource 1 epoch,
reduction factor 3), two trials in parallel on two CPUs. Only the orchestration differs:

- tuneforge: a live ``tuneforge serve`` (its own local Ray, SQLite) gets the study over REST
  (``algorithm: tpe``, ``pruner: asha``, ``parallelism: 2``, ``budget.timeout_s``). The clock
  starts at the POST (server healthy, its Ray up and one worker per CPU warmed, as a running
  service is). Its second row is the same server's second, identical study.
- Optuna alone: two spawned worker processes each run ``study.optimize`` on one shared SQLite
  ``RDBStorage`` with ``TPESampler`` and ``SuccessiveHalvingPruner``. Cold: the clock starts
  before the processes are spawned (no daemon: their start-up and ``import torch`` count).
  Warm (second row): the workers start, import torch and load the data before the clock.
- Ray Tune alone: ``tune.Tuner`` with ``OptunaSearch`` (the same TPE sampler),
  ``ASHAScheduler``, ``max_concurrent_trials=2``, one CPU per trial, ``reuse_actors=True`` and
  ``time_budget_s``. Cold: the clock starts at ``tuner.fit()`` (``ray.init`` done). Second row:
  the same Ray's second, identical experiment.

Per run it records when the first trial whose final value (all its epochs) reaches the task's
target ended, the same for a harder stretch target, the best final validation accuracy within
the budget, the trials finished per minute and the CPU time of the orchestrating process
(tuneforge's server, Ray Tune's driver). Every system starts fresh for every seed.
Goals (issue 18), per task: tuneforge's median time to each target at most 0.8 of the best peer
row's (cold or warm), its throughput at least the best peer's, its server's CPU at most Ray
Tune's driver's.

The runners are in ``benchmarks/quality/`` (one module per system), the report in
``benchmarks/quality/report.py``.

Usage::

    .venv/bin/python benchmarks/search_quality.py                # 3 tasks x 5 seeds (~75 min)
    .venv/bin/python benchmarks/search_quality.py --quick        # 1 seed, 20 s runs (~6 min)
    .venv/bin/python benchmarks/search_quality.py --task mlp --seeds 0 1 2
    .venv/bin/python benchmarks/search_quality.py --write        # also rewrite its RESULTS.md block
    # where tuneforge's server spends its CPU during a digits study (py-spy):
    .venv/bin/python benchmarks/search_quality.py --system tuneforge --task mlp --seeds 0 \
        --no-warm --profile /tmp/server.prof
    # tuneforge's bohb against its tpe + asha, in one run (each on a fresh server per seed):
    .venv/bin/python benchmarks/search_quality.py --system tuneforge --algorithm tpe+asha \
        --algorithm bohb --no-warm
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

if not __package__:  # run as `python benchmarks/search_quality.py`: import from the repository
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.harness import RESULTS, ForeignLoad, log, publish, wait_idle
from benchmarks.quality.common import ALGORITHMS, FOREIGN_RATE, SYSTEMS, Run, Trial
from benchmarks.quality.optuna_alone import run_optuna
from benchmarks.quality.raytune_alone import run_raytune
from benchmarks.quality.report import cold_import_s, fmt_acc, fmt_time, report, summarize
from benchmarks.quality.tasks import TASKS
from benchmarks.quality.tuneforge import run_tuneforge

HEADING = "## Search quality under a wall-clock budget (three tasks)"
BLOCK = "benchmarks/search_quality.py"
# A run that compares tuneforge's algorithms (--algorithm) has a block of its own.
ALGORITHMS_HEADING = "## Search quality: bohb and the curve pruner against tpe + asha (digits MLP)"
QUICK_BUDGET = 20.0


PROFILE: list[Path] = []  # --profile: where tuneforge's fresh server's profile goes


def _run(
    system: str, task: str, seed: int, budget: float, workdir: Path, warm: bool, algorithm: str
) -> list[Run]:
    if system == "tuneforge":
        profile = PROFILE[0].with_suffix(f".{task}-s{seed}.txt") if PROFILE else None
        return run_tuneforge(TASKS[task], seed, budget, workdir, warm, algorithm, profile)
    if system == "optuna":
        return run_optuna(task, seed, budget, workdir)
    if system == "optuna-warm":
        return run_optuna(task, seed, budget, workdir, warm=True)
    return run_raytune(task, seed, budget, workdir, warm=warm)


def measure(
    system: str, task: str, seed: int, budget: float, warm: bool, algorithm: str = "tpe+asha"
) -> tuple[list[Run], bool]:
    """One run of a system on a task (two for tuneforge and Ray Tune with ``warm``: the second
    study or experiment on the same server or Ray), and whether the machine was busy meanwhile
    (other processes above FOREIGN_RATE CPUs on average)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"tf-sq-{system}-{task}-{seed}-"))
    t = time.perf_counter()
    foreign = ForeignLoad()
    try:
        with foreign:
            got = _run(system, task, seed, budget, workdir, warm, algorithm)
    except Exception as exc:  # one broken run must not lose the others
        got = [Run(system, seed, budget, task, note=f"run failed: {type(exc).__name__}: {exc}")]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - t
    for run in got:
        run.foreign_cpu_s = foreign.cpu_s
        log(
            f"  {task} seed {seed} {run.system:14s}: time to {TASKS[task].target} "
            f"{fmt_time(run.time_to_target())} s, best {fmt_acc(run.best())}, "
            f"first done {fmt_time(run.first_done(), 'none')} s, {run.count('complete')} "
            f"complete / {run.count('pruned')} pruned / {run.count('failed')} failed, CPU "
            f"{run.orchestrator_cpu_s if run.orchestrator_cpu_s is not None else '-'}"
            f"{'; ' + run.note if run.note else ''}"
        )
    busy = foreign.cpu_s > FOREIGN_RATE * wall
    for run in got:
        run.skewed = busy
    top = sorted(foreign.top.items(), key=lambda kv: -kv[1])[:3]
    log(
        f"    ({wall:.0f} s; other processes {foreign.cpu_s:.1f} CPU-s"
        + (f": {', '.join(f'{n} {c:.1f}' for n, c in top)}; timings skewed" if busy else "")
        + ")"
    )
    return got, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1 seed, {QUICK_BUDGET:g} s runs")
    parser.add_argument("--budget", type=float, default=None, help="wall budget of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (0 1 2 3 4)")
    parser.add_argument(
        "--task", action="append", choices=sorted(TASKS), help="run only this task (repeatable)"
    )
    parser.add_argument(
        "--system", action="append", choices=SYSTEMS, help="run only this system (repeatable)"
    )
    parser.add_argument(
        "--algorithm",
        action="append",
        choices=sorted(ALGORITHMS),
        help="tuneforge's algorithm (repeatable: each on a server of its own; tpe+asha)",
    )
    parser.add_argument("--no-warm", action="store_true", help="skip every second (warm) row")
    parser.add_argument(
        "--retries", type=int, default=3, help="reruns of a run skewed by other processes (3)"
    )
    parser.add_argument(
        "--wait-idle", type=float, default=300, help="longest wait for a quiet machine (300 s)"
    )
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    parser.add_argument(
        "--json", type=Path, default=None, help="also dump every trial here (after each run)"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="only report the runs a --json file holds"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample tuneforge's server with py-spy during its first study (FILE.<task>-s<seed>"
        ".txt: raw stacks) and print where its CPU went",
    )
    args = parser.parse_args()
    PROFILE.extend([args.profile] if args.profile else [])
    if args.report:
        saved = [
            Run(**{**r, "trials": [Trial(**t) for t in r["trials"]]})
            for r in json.loads(args.report.read_text())
        ]
        seeds = sorted({r.seed for r in saved})
        publish(report(summarize(saved), seeds, 0, None), BLOCK, HEADING, args.write)
        return

    seeds = args.seeds or ([0] if args.quick else [0, 1, 2, 3, 4])
    tasks = [t for t in TASKS if not args.task or t in args.task]
    warm = not args.no_warm
    systems = [s for s in SYSTEMS if not args.system or s in args.system]
    algorithms = args.algorithm or ["tpe+asha"]
    jobs: list[tuple[str, str]] = []
    for system in systems:
        if system == "tuneforge":
            jobs += [(system, algorithm) for algorithm in algorithms]
        elif system == "optuna":
            jobs += [("optuna", "tpe+asha")] + ([("optuna-warm", "tpe+asha")] if warm else [])
        else:
            jobs.append((system, "tpe+asha"))
    runs: list[Run] = []
    discarded = 0
    for task in tasks:  # task by task: an interrupted suite has whole tasks
        budget = args.budget or (QUICK_BUDGET if args.quick else TASKS[task].budget)
        for seed in seeds:
            for system, algorithm in jobs:
                for attempt in range(args.retries + 1):
                    wait_idle(args.wait_idle)
                    got, busy = measure(system, task, seed, budget, warm, algorithm)
                    if not busy or attempt == args.retries:
                        break
                    discarded += 1
                    log("    discarded (the machine was busy); measuring again")
                runs += got
                if args.json:  # after every run: an interrupted suite keeps what it measured
                    args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    import_s = cold_import_s() if "tuneforge" in systems else None
    text = report(summarize(runs), seeds, discarded, import_s)
    if algorithms == ["tpe+asha"]:
        publish(text, BLOCK, HEADING, args.write)
    else:
        publish(text, f"{BLOCK} --algorithm", ALGORITHMS_HEADING, args.write)


if __name__ == "__main__":
    main()
