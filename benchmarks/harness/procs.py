"""CPU time from /proc: of a process, of a process tree, and of everything else on the machine
(wall-clock benchmarks on a small machine are skewed by any other job)."""

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, float, str]]:
    """pid → (parent pid, CPU seconds so far (user + system), name) of every process."""
    out: dict[int, tuple[int, float, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            # fields[1] is the parent pid; fields[11], fields[12] are utime, stime (in ticks).
            out[int(entry.name)] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / TICK,
                name,
            )
    return out


def descendants(procs: dict[int, tuple[int, float, str]], root: int) -> set[int]:
    """``root`` and every process below it in ``procs``."""
    tree, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, *_) in procs.items():
            if pid not in tree and ppid in tree:
                tree.add(pid)
                changed = True
    return tree


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds so far of process ``root`` and of each live descendant."""
    procs = processes()
    return {pid: procs[pid][1] for pid in descendants(procs, root) if pid in procs}


def cpu_used(before: dict[int, float], after: dict[int, float], root: int) -> tuple[float, float]:
    """CPU seconds used between two :func:`tree_cpu` snapshots by ``root`` and by the rest of
    its tree (a lower bound: processes that ended meanwhile are missed)."""
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}
    own = used.pop(root, 0.0)
    return own, sum(used.values())


class ForeignLoad:
    """CPU seconds used by processes that are not this benchmark's, while it measures.

    A thread samples /proc twice a second and sums the CPU time of every process that does not
    descend from this one (its servers, Ray's processes and workers all do). Processes that
    live less than a sample are missed, so it is a lower bound. ``top``: the same by process
    name.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._seen: dict[int, float] = {}
        self.cpu_s = 0.0
        self.top: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ForeignLoad":
        self._sample(count=False)
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
        self._sample(count=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample(count=True)

    def _sample(self, count: bool) -> None:
        procs = processes()
        ours = descendants(procs, os.getpid())
        for pid, (_, cpu, name) in procs.items():
            if pid in ours:
                continue
            before = self._seen.get(pid)
            self._seen[pid] = cpu
            if count and before is not None and cpu > before:
                self.cpu_s += cpu - before
                self.top[name] = self.top.get(name, 0.0) + cpu - before


def wait_idle(limit_s: float) -> None:
    """Wait (up to ``limit_s``) for 5 quiet seconds: other processes using < 0.25 CPU-s."""
    deadline = time.monotonic() + limit_s
    while True:
        with ForeignLoad() as probe:
            time.sleep(5)
        if probe.cpu_s < 0.25:
            return
        if time.monotonic() >= deadline:
            print(
                f"  the machine is still busy after {limit_s:.0f} s; measuring anyway",
                file=sys.stderr,
            )
            return
