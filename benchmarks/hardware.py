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

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks.results import section_head, write_section  # noqa: E402
from tests.conftest import start_server  # noqa: E402

CPU_SECTION = "## Use of the hardware: CPU busy fraction during a digits study"
GPU_SECTION = "## Use of the hardware: GPU utilization with fractional GPUs"
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / TICK, total / TICK


def process_cpu() -> dict[int, tuple[int, float]]:
    """pid → (ppid, CPU seconds) of every process."""
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            rest = stat[stat.rindex(")") + 2 :].split()
            out[int(entry.name)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK)
    return out


def descendants(procs: dict[int, tuple[int, float]], root: int) -> set[int]:
    ours, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if pid not in ours and ppid in ours:
                ours.add(pid)
                changed = True
    return ours


class Sampler:
    """Samples the machine (and nvidia-smi with ``gpu``) every 0.2 s in a thread."""

    def __init__(self, gpu: bool) -> None:
        self.samples: list[dict[str, Any]] = []
        self._gpu = gpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample: dict[str, Any] = {"t": time.time(), "machine": machine_busy()}
            sample["procs"] = process_cpu()
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
        return [s for s in self.samples if start <= s["t"] <= end]


def study_spec(trials: int, gpu: float) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "digits-mlp.yaml").read_text())
    spec["name"] = "hardware"
    spec["budget"] = {"max_trials": trials}
    if gpu:
        spec["resources"] = {"cpu": 1, "gpu": gpu}
        spec["parallelism"] = round(1 / gpu)
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--gpu", type=float, default=0.0, help="GPU fraction per trial")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="tf-hardware-") as tmp:
        env = {"TUNEFORGE_RAY_NUM_CPUS": str(cpus)}  # local Ray finds the GPUs itself
        server = start_server(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp), env=env)
        try:
            api = server.api
            with Sampler(gpu=bool(args.gpu)) as sampler:
                created = api.post("/studies", json=study_spec(args.trials, args.gpu))
                study_id = created.raise_for_status().json()["id"]
                while True:
                    study = api.get(f"/studies/{study_id}").raise_for_status().json()
                    if study["status"] in ("completed", "failed", "stopped"):
                        break
                    time.sleep(1.0)
            items = api.get(
                f"/studies/{study_id}/trials", params={"limit": 1000}
            ).raise_for_status()
            trials = items.json()["items"]
            server_pid = server.process.pid
        finally:
            server.stop(signal.SIGTERM)
    assert study["status"] == "completed", study
    start = min(dt.datetime.fromisoformat(t["datetime_start"]).timestamp() for t in trials)
    end = max(dt.datetime.fromisoformat(t["datetime_complete"]).timestamp() for t in trials)
    window = sampler.window(start, end)
    first, last = window[0], window[-1]
    span = last["t"] - first["t"]
    busy = (last["machine"][0] - first["machine"][0]) / (
        (last["machine"][1] - first["machine"][1]) or 1.0
    )
    worker_pids = {int(t["user_attrs"]["pid"]) for t in trials if "pid" in t["user_attrs"]}

    def cpu_of(pids: set[int]) -> float:
        return sum(
            last["procs"][p][1] - first["procs"].get(p, (0, last["procs"][p][1]))[1]
            for p in pids
            if p in last["procs"]
        )

    ours = descendants(last["procs"], os.getpid()) | descendants(last["procs"], server_pid)
    foreign = cpu_of(set(last["procs"]) - ours)
    workers = cpu_of(worker_pids)
    service = cpu_of({server_pid})
    if args.gpu:
        util = statistics.mean(s["gpu"] for s in window)
        heading = GPU_SECTION
        result = [
            "| trials | parallelism | GPU per trial | window (s) | mean GPU utilization |",
            "|---:|---:|---:|---:|---:|",
            f"| {len(trials)} | {round(1 / args.gpu)} | {args.gpu} | {span:.1f} | {util:.0f}% |",
        ]
    else:
        heading = CPU_SECTION
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
    text = "\n".join(
        [
            *section_head(
                heading,
                "SQLite, local Ray",
                "the quickstart study (examples/digits-mlp.yaml, TPE, MLP on digits) through "
                "the API; the window runs from the first trial's start to the last trial's end "
                "(see the script's docstring).",
            ),
            *result,
            "",
        ]
    )
    print(text)
    if args.write:
        write_section(heading, text)


if __name__ == "__main__":
    main()
