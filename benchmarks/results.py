"""What every benchmark shares: the machine line and the rewrite of its own RESULTS.md section."""

import contextlib
import datetime as dt
import os
import platform
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def machine_line(extra: str) -> str:
    """``N CPUs (nproc), <model>; Python x.y.z, <extra>``."""
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (`nproc`), {cpu_name()}; "
        f"Python {platform.python_version()}, {extra}"
    )


def write_section(heading: str, text: str) -> None:
    """Replace the section under ``heading`` of RESULTS.md with ``text`` (or append it);
    keep every other section."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new.rstrip("\n") + "\n")


def command_line() -> str:
    """How this benchmark was run, from the repository root."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(RESULTS.parent.parent)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def section_head(heading: str, machine_extra: str, method: str) -> list[str]:
    """A section's first lines: heading, date, machine, the command that ran, the method."""
    return [
        heading,
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {machine_line(machine_extra)}",
        f"- Command: `{command_line()}`",
        f"- Method: {method}",
        "",
    ]
