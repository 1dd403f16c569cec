"""The one harness every benchmark uses (and the test suite's live servers).

- ``scheduler``: :func:`start_scheduler` / :class:`SchedulerProcess` (a scheduler replica);
- ``server``: :func:`start_server` / :class:`Server` (a live ``tuneforge serve``), :func:`serve`
  (a benchmark's server, stopped with its Ray), :func:`postgres_schema`, :func:`database`,
  :func:`run_child` (a Ray Tune process in its own session);
- ``results``: the report's head lines, :func:`percentile`, and the rewrite of a script's own
  block of RESULTS.md (:func:`publish`);
- ``procs``: CPU time from /proc (:class:`ForeignLoad`: other processes' load while measuring);
- ``studies``: the no-op study, waiting for a study, reading its trials.
"""

from benchmarks.harness.procs import (
    ForeignLoad,
    cpu_used,
    descendants,
    proc_cpu_s,
    processes,
    tree_cpu,
    wait_idle,
)
from benchmarks.harness.results import (
    RESULTS,
    command_line,
    log,
    machine_line,
    markers,
    ms,
    percentile,
    publish,
    replace_block,
    report_head,
    versions,
    write_block,
)
from benchmarks.harness.scheduler import SchedulerProcess, start_scheduler
from benchmarks.harness.server import (
    LOOPBACK_RAY,
    PG_ADMIN,
    ROOT,
    PostgresUnavailable,
    Server,
    database,
    free_port,
    postgres_schema,
    ray_head,
    run_child,
    serve,
    start_server,
)
from benchmarks.harness.studies import FINISHED, all_trials, noop_study, ts, wait_study

__all__ = [
    "FINISHED",
    "LOOPBACK_RAY",
    "PG_ADMIN",
    "RESULTS",
    "ROOT",
    "ForeignLoad",
    "PostgresUnavailable",
    "SchedulerProcess",
    "Server",
    "all_trials",
    "command_line",
    "cpu_used",
    "database",
    "descendants",
    "free_port",
    "log",
    "machine_line",
    "markers",
    "ms",
    "noop_study",
    "percentile",
    "postgres_schema",
    "proc_cpu_s",
    "processes",
    "publish",
    "ray_head",
    "replace_block",
    "report_head",
    "run_child",
    "serve",
    "start_scheduler",
    "start_server",
    "tree_cpu",
    "ts",
    "versions",
    "wait_idle",
    "wait_study",
    "write_block",
]
