"""Use of the hardware: how busy the machine's CPUs (or GPU) are while a study trains.

CPU (the default): one ``tuneforge serve`` (SQLite, local Ray with 2 CPUs, started outside the
clock) runs the quickstart (``examples/digits-mlp.yaml``: TPE over an MLP on digits, 2 trials
at a time, 1 CPU each) with ``--trials`` (40) trials. ``/proc`` is sampled every 0.2 s; over
the window from the first trial's start to the last trial's end it reports

- **busy fraction**: CPU time used on the whole machine / (CPUs x window), the goal's figure
  (goal: at least 0.9 of the ideal, which is every CPU busy);
- the part of it spent in the trials' Ray workers (training) and in the service's process
  (API + scheduler), and the CPU time of processes that are not this benchmark's (another
  job on the machine makes the figure meaningless: it is printed so a run can be discarded).

GPU (``--gpu FRACTION``, on a machine with an NVIDIA GPU): the same study with
``resources: {cpu: 1, gpu: FRACTION}`` and ``parallelism`` 1 / FRACTION, so several small
trials share the one GPU (Ray's fractional GPUs); ``nvidia-smi`` is sampled every 0.2 s and
the mean GPU utilization over the window is reported.

Usage::

    .venv/bin/python benchmarks/hardware.py --write          # CPU, ~2 min on 2 cores
    .venv/bin/python benchmarks/hardware.py --gpu 0.25 --write   # on a GPU machine
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

if not __package__:  # run as `python benchmarks/hardware.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import yaml

from benchmarks.harness import (
    RESULTS,
    ROOT,
    all_trials,
    descendants,
    processes,
    publish,
    report_head,
    serve,
    ts,
    wait_study,
)

CPU_HEADING = "## Use of the hardware: CPU busy fraction during a digits study"
GPU_HEADING = "## Use of the hardware: GPU utilization with fractional GPUs"
CPU_BLOCK = "benchmarks/hardware.py"
GPU_BLOCK = "benchmarks/hardware.py: gpu"
TICK = os.sysconf("SC_CLK_TCK")
# As measured (the test suite's server settings then): the scheduler rereads the studies every
# 0.2 s; workers warmed (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2"}


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / TICK, total / TICK


class Sampler:
    """Samples the machine (and nvidia-smi with ``gpu``) every 0.2 s in a thread."""

    def __init__(self, gpu: bool) -> None:
        self.samples: list[dict[str, Any]] = []
        self._gpu = gpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample: dict[str, Any] = {"t": time.time(), "machine": machine_busy()}
            sample["procs"] = processes()
            if self._gpu:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                sample["gpu"] = float(out.split()[0]) if out.strip() else float("nan")
            self.samples.append(sample)
            self._stop.wait(0.2)

    def window(self, start: float, end: float) -> list[dict[str, Any]]:
        """The samples taken between ``start`` and ``end`` (epoch seconds)."""
        return [s for s in self.samples if start <= s["t"] <= end]


def study_spec(trials: int, gpu: float) -> dict[str, Any]:
    """The quickstart with ``trials`` trials (and ``gpu`` of a GPU per trial)."""
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "digits-mlp.yaml").read_text())
    spec["name"] = "hardware"
    spec["budget"] = {"max_trials": trials}
    if gpu:
        spec["resources"] = {"cpu": 1, "gpu": gpu}
        spec["parallelism"] = round(1 / gpu)
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--gpu", type=float, default=0.0, help="GPU fraction per trial")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    # Ray's CPUs: every CPU of the machine; the local Ray finds the GPUs itself.
    env = {**SERVER_ENV, "TUNEFORGE_RAY_NUM_CPUS": str(cpus)}
    with (
        tempfile.TemporaryDirectory(prefix="tf-hardware-") as tmp,
        serve(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp), env) as server,
    ):
        api = server.api
        with Sampler(gpu=bool(args.gpu)) as sampler:
            created = api.post("/studies", json=study_spec(args.trials, args.gpu))
            study_id = created.raise_for_status().json()["id"]
            study = wait_study(api, study_id, poll_s=1.0)
        trials = all_trials(api, study_id)
        server_pid = server.process.pid
    assert study["status"] == "completed", study
    start = min(ts(t["datetime_start"]) or math.inf for t in trials)
    end = max(ts(t["datetime_complete"]) or 0.0 for t in trials)
    window = sampler.window(start, end)
    first, last = window[0], window[-1]
    span = last["t"] - first["t"]
    busy = (last["machine"][0] - first["machine"][0]) / (
        (last["machine"][1] - first["machine"][1]) or 1.0
    )
    worker_pids = {int(t["user_attrs"]["pid"]) for t in trials if "pid" in t["user_attrs"]}

    def cpu_of(pids: set[int]) -> float:
        return sum(
            last["procs"][p][1] - first["procs"].get(p, last["procs"][p])[1]
            for p in pids
            if p in last["procs"]
        )

    ours = descendants(last["procs"], os.getpid()) | descendants(last["procs"], server_pid)
    foreign = cpu_of(set(last["procs"]) - ours)
    workers = cpu_of(worker_pids)
    service = cpu_of({server_pid})
    if args.gpu:
        util = statistics.mean(s["gpu"] for s in window)
        heading, block = GPU_HEADING, GPU_BLOCK
        result = [
            "| trials | parallelism | GPU per trial | window (s) | mean GPU utilization |",
            "|---:|---:|---:|---:|---:|",
            f"| {len(trials)} | {round(1 / args.gpu)} | {args.gpu} | {span:.1f} | {util:.0f}% |",
        ]
    else:
        heading, block = CPU_HEADING, CPU_BLOCK
        result = [
            "| trials | window (s) | busy fraction | trial workers | service process "
            "| other processes (CPU s) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {len(trials)} | {span:.1f} | {busy:.3f} | {workers / (cpus * span):.3f} "
            f"| {service / (cpus * span):.3f} | {foreign:.1f} |",
            "",
            f"Busy fraction {busy:.3f} of the ideal 1.0 (goal >= 0.9: "
            f"{'met' if busy >= 0.9 else 'missed'}). Trial workers and service process are "
            f"fractions of {cpus} CPUs x the window.",
        ]
    head = report_head(
        "SQLite, local Ray",
        "the quickstart study (examples/digits-mlp.yaml, TPE, MLP on digits) through "
        "the API; the window runs from the first trial's start to the last trial's end "
        "(see the script's docstring).",
    )
    publish("\n".join([head, "", *result]), block, heading, args.write)


if __name__ == "__main__":
    main()
