"""A py-spy profile of tuneforge's server during a search-quality study (``--profile``): the
raw stacks (py-spy's collapsed format, one line per stack with its sample count) and where the
server's CPU went, by the scheduler's phases."""

import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Frames whose inclusive share of the samples the summary gives, in the scheduler's order.
PHASES = {
    "submission check (API)": "check_submission",
    "start a trial": "StudyLoop._start_trial",
    "  the sampler (suggest)": "suggest_all",
    "an epoch's event": "StudyLoop._on_epoch",
    "  the pruner": "should_stop",
    "a finished trial": "StudyLoop._on_result",
    "Ray events (waiting, then handling them)": "wait_any",
    "reading a study's trials": "RDBStorage._get_trials",
    "writing through the ORM": "_create_scoped_session",
}


@contextmanager
def sampled(pid: int, out: Path) -> Iterator[None]:
    """Sample process ``pid`` (every thread) with py-spy into ``out`` meanwhile."""
    pyspy = str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--format", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def summary(raw: Path) -> str:
    """The inclusive share of each of PHASES in the samples of ``raw``."""
    total = 0
    hits: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = {re.sub(r" \(.*\)$", "", f) for f in stack.split(";")}
        for label, frame in PHASES.items():
            if frame in frames:
                hits[label] += n
    lines = [f"py-spy: {total} samples of tuneforge's server ({raw})"]
    lines += [f"  {label}: {100 * hits[label] / max(total, 1):.0f}%" for label in PHASES]
    return "\n".join(lines)
