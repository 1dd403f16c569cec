"""The benchmarks' harness: percentiles, the report's head lines and the rewrite of a script's
own block of RESULTS.md; and every benchmark entry point still starts (``--help``)."""

import datetime as dt
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness
from benchmarks.harness import (
    RESULTS,
    ROOT,
    command_line,
    cpu_used,
    descendants,
    machine_line,
    markers,
    ms,
    noop_study,
    percentile,
    processes,
    publish,
    replace_block,
    report_head,
    ts,
    write_block,
)

BENCHMARKS = ROOT / "benchmarks"
ENTRY_POINTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "__init__.py")
HEADING = "## Trainer throughput"

# A RESULTS.md as the scripts leave it: hand-written prose around two generated blocks.
DOC = """# Benchmarks

## Trainer throughput

Method, written by hand.

<!-- begin: benchmarks/trainer.py -->

- Date: 2026-11-24

| case | ratio |
|---|---:|
| mlp | 1.038 |

<!-- end: benchmarks/trainer.py -->

Reading: written by hand, 1.038.

## Dispatch

<!-- begin: benchmarks/dispatch.py -->

| system | ms |
|---|---:|
| tuneforge | 4.7 |

<!-- end: benchmarks/dispatch.py -->

What changed, by hand.
"""


# -- percentile and formatting -------------------------------------------------------------------


def test_percentile_is_the_nearest_rank() -> None:
    values = [7.0, 1.0, 10.0, 3.0, 2.0, 9.0, 4.0, 6.0, 5.0, 8.0]  # 1..10, unsorted
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 91) == 10.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([0.25], 99) == 0.25
    assert percentile((x / 1000 for x in range(1, 201)), 99) == 0.198  # rank 198 of 200


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_ms_keeps_one_decimal_below_100_ms() -> None:
    assert ms(0.0123) == "12.3"
    assert ms(0.1) == "100"
    assert ms(3.6943) == "3694"
    assert ms(math.nan) == "n/a"


# -- the block rewrite ----------------------------------------------------------------------------


def test_replace_block_changes_only_its_block() -> None:
    new = replace_block(DOC, "benchmarks/trainer.py", "| case | ratio |\n| mlp | 0.990 |", HEADING)
    begin, end = markers("benchmarks/trainer.py")
    assert f"{begin}\n\n| case | ratio |\n| mlp | 0.990 |\n\n{end}" in new
    assert "1.038 |" not in new  # the old table is gone ...
    assert "Reading: written by hand, 1.038." in new  # ... the prose after it is not
    before, after = DOC.split(begin)[0], DOC.split(end)[1]
    assert new.startswith(before) and new.endswith(after)  # everything outside, byte for byte
    assert new.count("<!-- begin:") == 2 and "| tuneforge | 4.7 |" in new  # the other block


def test_replace_block_is_idempotent() -> None:
    body = "- Date: 2026-12-01\n\n| a |\n|---|\n| 1 |"
    once = replace_block(DOC, "benchmarks/dispatch.py", body, "## Dispatch")
    twice = replace_block(once, "benchmarks/dispatch.py", body, "## Dispatch")
    assert twice == once
    # Surrounding blank lines of the body do not pile up either.
    assert replace_block(once, "benchmarks/dispatch.py", f"\n\n{body}\n\n", "## Dispatch") == once


def test_a_missing_block_is_appended_under_its_heading() -> None:
    new = replace_block(DOC, "benchmarks/memory.py", "| MiB |\n|---:|\n| 513 |", "## Memory")
    assert new.startswith(DOC.rstrip())
    assert new.endswith(
        "\n\n## Memory\n\n<!-- begin: benchmarks/memory.py -->\n\n| MiB |\n|---:|\n| 513 |\n\n"
        "<!-- end: benchmarks/memory.py -->\n"
    )
    # Once there, the next write replaces it instead of appending again.
    again = replace_block(new, "benchmarks/memory.py", "| MiB |\n|---:|\n| 520 |", "## Memory")
    assert again.count("## Memory") == 1 and "| 520 |" in again and "| 513 |" not in again


def test_a_block_name_may_not_break_its_html_comment() -> None:
    assert markers("benchmarks/hardware.py: gpu") == (
        "<!-- begin: benchmarks/hardware.py: gpu -->",
        "<!-- end: benchmarks/hardware.py: gpu -->",
    )
    with pytest.raises(ValueError, match="without '--'"):
        markers("benchmarks/hardware.py --gpu")
    # A block whose name starts like another's is a different block.
    new = replace_block(DOC, "benchmarks/trainer.py: gpu", "x", "## GPU")
    assert "| mlp | 1.038 |" in new and new.count("<!-- begin: benchmarks/trainer.py") == 2


@pytest.mark.parametrize(
    "broken",
    [
        DOC.replace("<!-- end: benchmarks/trainer.py -->", ""),
        DOC.replace("<!-- begin: benchmarks/trainer.py -->", ""),
        DOC + "\n<!-- begin: benchmarks/trainer.py -->\nx\n<!-- end: benchmarks/trainer.py -->\n",
    ],
    ids=["no end", "no begin", "twice"],
)
def test_a_broken_block_is_refused_not_guessed(broken: str) -> None:
    with pytest.raises(ValueError, match=r"benchmarks/trainer\.py"):
        replace_block(broken, "benchmarks/trainer.py", "new", HEADING)


def test_write_block_and_publish_on_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "RESULTS.md"
    write_block("benchmarks/trainer.py", "| a |\n|---|\n| 1 |", HEADING, results)
    assert results.read_text() == (
        "# Benchmarks\n\n## Trainer throughput\n\n<!-- begin: benchmarks/trainer.py -->\n\n"
        "| a |\n|---|\n| 1 |\n\n<!-- end: benchmarks/trainer.py -->\n"
    )
    results.write_text(results.read_text() + "\nProse by hand.\n")
    publish("| a |\n|---|\n| 2 |\n", "benchmarks/trainer.py", HEADING, write=True, path=results)
    assert capsys.readouterr().out == "| a |\n|---|\n| 2 |\n"  # the report is printed
    text = results.read_text()
    assert "| 2 |" in text and "| 1 |" not in text and text.endswith("\nProse by hand.\n")
    publish("| a |\n|---|\n| 3 |", "benchmarks/trainer.py", HEADING, write=False, path=results)
    assert results.read_text() == text  # without --write, the file is not touched


def test_the_block_rewrite_on_a_copy_of_results_md(tmp_path: Path) -> None:
    """Each script's block is in RESULTS.md exactly once, so ``--write`` replaces it (and
    only it) rather than appending a second copy."""
    copy = tmp_path / "RESULTS.md"
    original = RESULTS.read_text()
    copy.write_text(original)
    blocks = []
    for script in ENTRY_POINTS:
        found = re.findall(r'^\w*BLOCK = "([^"]+)"', (BENCHMARKS / script).read_text(), re.M)
        assert found, f"{script} names no block of RESULTS.md"
        blocks += found
    for block in blocks:
        begin, end = markers(block)
        assert original.count(begin) == original.count(end) == 1, block
        before, rest = original.split(begin)
        after = rest.split(end)[1]
        write_block(block, "| new |\n|---|\n| 1 |", "## unused", copy)
        text = copy.read_text()
        assert text == f"{before}{begin}\n\n| new |\n|---|\n| 1 |\n\n{end}{after}"
        copy.write_text(original)


# -- head lines -----------------------------------------------------------------------------------


def test_machine_line_names_cpus_python_and_the_extra() -> None:
    line = machine_line("optuna 5.0.0")
    cpus = len(os.sched_getaffinity(0))
    assert line.startswith(f"{cpus} CPUs (`nproc`), ")
    assert line.endswith(f"; Python {platform.python_version()}, optuna 5.0.0")


def test_command_line_is_relative_to_the_repository() -> None:
    argv = [str(BENCHMARKS / "load.py"), "--database", "both", "--write"]
    assert command_line(argv, module="") == (
        ".venv/bin/python benchmarks/load.py --database both --write"
    )
    assert command_line(argv, module="benchmarks.load") == (
        ".venv/bin/python -m benchmarks.load --database both --write"
    )


def test_command_line_leaves_out_options_that_change_nothing_measured() -> None:
    argv = ["benchmarks/load.py", "--keep-log", "/tmp/x.log", "--seconds", "10", "--keep-log=y"]
    assert command_line(argv, module="", omit=["--keep-log"]) == (
        ".venv/bin/python benchmarks/load.py --seconds 10"
    )


def test_report_head_has_date_machine_command_and_method() -> None:
    lines = report_head("torch 2.13.0", "7 repeats", command="cmd --write").splitlines()
    assert lines == [
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {machine_line('torch 2.13.0')}",
        "- Command: `cmd --write`",
        "- Method: 7 repeats",
    ]
    assert len(report_head("x", command="c").splitlines()) == 3  # no method line


# -- /proc, studies, PostgreSQL -------------------------------------------------------------------


def test_processes_and_descendants_follow_the_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs = processes()
        assert procs[os.getpid()][0] == os.getppid()
        assert procs[child.pid][0] == os.getpid()
        assert {os.getpid(), child.pid} <= descendants(procs, os.getpid())
        assert os.getpid() not in descendants(procs, child.pid)
    finally:
        child.kill()
        child.wait()


def test_cpu_used_splits_the_root_from_its_tree() -> None:
    before = {1: 10.0, 2: 5.0}
    after = {1: 12.5, 2: 6.0, 3: 0.5}  # 3 started meanwhile
    assert cpu_used(before, after, 1) == (2.5, 1.5)


def test_noop_study_and_ts() -> None:
    study = noop_study("n", 300, parallelism=1)
    assert study["task"] == {"kind": "function", "name": "noop"}
    assert study["budget"] == {"max_trials": 300} and study["parallelism"] == 1
    assert (
        ts("2026-11-24T10:00:00+00:00") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC).timestamp()
    )
    assert ts("2026-11-24T10:00:00") == dt.datetime(2026, 11, 24, 10).timestamp()  # local
    assert ts(None) is None


def test_postgres_schema_says_clearly_when_postgres_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(harness.server, "PG_ADMIN", f"postgresql://postgres@127.0.0.1:{port}/t")
    with (
        pytest.raises(harness.PostgresUnavailable, match=r"127\.0\.0\.1:5432 \(database test\)"),
        harness.postgres_schema(),
    ):
        pytest.fail("no schema without PostgreSQL")


# -- every entry point starts ---------------------------------------------------------------------


# Runs every entry point's ``--help`` in one interpreter (torch and Ray imported once, not
# once a script): per script, its exit code, what it printed, and the error it raised, if any.
HELP_PROBE = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for script in sys.argv[1:]:
    out = io.StringIO()
    sys.argv = [f"benchmarks/{script}", "--help"]
    code, error = None, ""
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(f"benchmarks/{script}", run_name="__main__")
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            error = traceback.format_exc()
    results[script] = {"code": code, "stdout": out.getvalue(), "error": error}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, dict[str, Any]]:
    got = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *ENTRY_POINTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    results: dict[str, dict[str, Any]] = json.loads(got.stdout.strip().splitlines()[-1])
    return results


@pytest.mark.slow
@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_benchmark_parses_its_arguments(script: str, helps: dict[str, dict[str, Any]]) -> None:
    """Imports every module the script uses and runs its argument parser: a script broken by
    an API change of the packages it measures fails here, not on the next benchmark run."""
    got = helps[script]
    assert not got["error"], got["error"]
    assert got["code"] == 0
    assert got["stdout"].startswith(f"usage: {script}")
    assert "--write" in got["stdout"]


@pytest.mark.slow
def test_benchmark_runs_as_a_module() -> None:
    got = subprocess.run(
        [sys.executable, "-m", "benchmarks.nas_regret", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    assert "--write" in got.stdout and "--quick" in got.stdout
