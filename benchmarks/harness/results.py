"""What a benchmark prints and records: its head lines (date, machine, command, method), its
figures, and the rewrite of its own generated block of RESULTS.md.

A script prints its report (head lines, then markdown tables and goal lines) to stdout;
``--write`` replaces only the script's block in RESULTS.md, between
``<!-- begin: benchmarks/<script>.py -->`` and ``<!-- end: benchmarks/<script>.py -->``. The
headings, the method in words and the reading around the blocks are written by hand and never
touched.
"""

import contextlib
import datetime as dt
import importlib.metadata as md
import math
import os
import platform
import re
import sys
from collections.abc import Iterable
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
ROOT = RESULTS.parent.parent


def log(*parts: object) -> None:
    """Progress for the terminal (stderr): stdout carries only the report."""
    print(*parts, file=sys.stderr, flush=True)


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..100) of ``values``; nan when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds: whole from 100 ms up, one decimal below, n/a for nan."""
    if math.isnan(seconds):
        return "n/a"
    return f"{1000 * seconds:.0f}" if seconds >= 0.1 else f"{1000 * seconds:.1f}"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return cpu


def versions(*packages: str) -> str:
    """``ray 2.60.0, optuna 5.0.0``: the installed versions of ``packages``."""
    return ", ".join(f"{p} {md.version(p)}" for p in packages)


def machine_line(extra: str) -> str:
    """``N CPUs (`nproc`), <model>; Python x.y.z, <extra>``."""
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (`nproc`), {cpu_name()}; "
        f"Python {platform.python_version()}, {extra}"
    )


def command_line(
    argv: list[str] | None = None, module: str | None = None, omit: Iterable[str] = ()
) -> str:
    """How this benchmark was run, from the repository root: ``.venv/bin/python
    benchmarks/x.py ARGS`` (``-m benchmarks.x`` when run as a module).

    ``argv`` defaults to ``sys.argv``; ``module`` to the ``-m`` name of ``__main__``, if any.
    Options named in ``omit`` are left out with their value (``--opt V`` or ``--opt=V``): the
    ones that change nothing measured, such as where a log is copied.
    """
    argv = sys.argv if argv is None else argv
    if module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else None
    if module:
        head = f"-m {module}"
    else:
        script = Path(argv[0]).resolve()
        with contextlib.suppress(ValueError):
            script = script.relative_to(ROOT)
        head = str(script)
    omitted = set(omit)
    args, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in omitted:
            skip = True
        elif arg.split("=", 1)[0] not in omitted:
            args.append(arg)
    return " ".join([".venv/bin/python", head, *args])


def report_head(machine_extra: str, method: str | None = None, command: str | None = None) -> str:
    """A report's first lines: date, machine, the command that ran, the method (short: the
    method in words lives in RESULTS.md beside the block)."""
    lines = [
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {machine_line(machine_extra)}",
        f"- Command: `{command or command_line()}`",
    ]
    if method:
        lines.append(f"- Method: {method}")
    return "\n".join(lines)


def markers(block: str) -> tuple[str, str]:
    """The HTML comments that delimit ``block`` in RESULTS.md."""
    if "--" in block or not block.strip():
        raise ValueError(f"a block name must be non-empty, without '--': {block!r}")
    return f"<!-- begin: {block} -->", f"<!-- end: {block} -->"


def replace_block(text: str, block: str, body: str, heading: str) -> str:
    """``text`` with the generated block ``block`` holding ``body``; everything outside the
    block stays as it is. A missing block is appended at the end under ``heading``.

    Raises:
        ValueError: the block is there more than once, or its begin or end marker is missing.
    """
    begin, end = markers(block)
    new = f"{begin}\n\n{body.strip()}\n\n{end}"
    starts, ends = text.count(begin), text.count(end)
    if starts == ends == 0:
        return (
            f"{text.rstrip()}\n\n{heading}\n\n{new}\n" if text.strip() else f"{heading}\n\n{new}\n"
        )
    if starts != 1 or ends != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"block {block!r}: not one begin marker followed by one end marker")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: new, text, count=1)


def write_block(block: str, body: str, heading: str, path: Path = RESULTS) -> None:
    """Replace the block ``block`` of ``path`` (RESULTS.md) with ``body``; see
    :func:`replace_block`."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_block(old, block, body, heading))


def publish(report: str, block: str, heading: str, write: bool, path: Path = RESULTS) -> None:
    """Print the report; with ``write``, also make it the block ``block`` of ``path``
    (RESULTS.md)."""
    print(report.strip())
    if write:
        write_block(block, report, heading, path)
        log(f"wrote block {block!r} of {path}")
