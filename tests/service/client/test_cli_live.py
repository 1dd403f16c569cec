"""The CLI's live view and read commands against a real server: on a terminal (a pty, read as a
person sees it) and through a pipe (every line in order, the final line last), ``watch`` left
and joined again, ``resume``, ``--json``, the trials table, the best trial's summary, a 401."""

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, digits_study, finished, wait_for
from tests.service.client.test_cli import ROOT, tuneforge

pytestmark = pytest.mark.slow

COLUMNS = 160
_CSI = r"\x1b\[[?\d;]*[A-Za-z]"
# A control sequence (CSI: ESC [ parameters letter), or a run of plain text.
_TOKEN = re.compile(r"\x1b\[(?P<params>[?\d;]*)(?P<final>[A-Za-z])|\x1b.|\r|\n|[^\x1b\r\n]+")


def screen(raw: str) -> list[str]:
    """The terminal's lines as a person sees them once ``raw`` is written to it: carriage
    returns, cursor moves and erasures applied (what rich's live display sends), colours
    and cursor visibility dropped, trailing blanks trimmed."""
    rows: list[list[str]] = [[]]
    row = col = 0
    for token in _TOKEN.finditer(raw):
        text, final = token.group(0), token.group("final")
        count = int(token.group("params") or 1) if final in ("A", "B", "C", "D") else 0
        if text == "\r":
            col = 0
        elif text == "\n":
            row += 1
        elif final == "A":
            row = max(0, row - count)
        elif final == "B":
            row += count
        elif final == "C":
            col += count
        elif final == "D":
            col = max(0, col - count)
        elif final == "K":  # erase in line: 0 to its end, 1 from its start, 2 all of it
            while len(rows) <= row:
                rows.append([])
            how = token.group("params") or "0"
            line = rows[row]
            rows[row] = [] if how == "2" else line[:col] if how == "0" else [" "] * col + line[col:]
        elif final is None and not text.startswith("\x1b"):
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col + len(text) - len(line)))
            line[col : col + len(text)] = text
            col += len(text)
    return ["".join(line).rstrip() for line in rows]


def in_terminal(
    server: Server,
    *args: str,
    interrupt_when: Callable[[list[str]], bool] | None = None,
    timeout: float = 240,
) -> tuple[int, list[str], str]:
    """Run ``tuneforge ARGS`` with a terminal (a pty of COLUMNS columns) as its output and
    read it to the end; ``interrupt_when(screen)``: press Ctrl-C (SIGINT) then. Returns the exit
    status, the screen's lines that are not blank, and everything written."""
    master, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    env = {
        **os.environ,
        "TUNEFORGE_URL": server.url,
        "TUNEFORGE_DATA_DIR": str(server.data_dir),
        "TERM": "xterm-256color",
        "COLUMNS": str(COLUMNS),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=ROOT,
    )
    os.close(child)
    raw = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                raw += data
                shown = screen(raw.decode(errors="replace"))
                if interrupt_when is not None and interrupt_when(shown):
                    proc.send_signal(signal.SIGINT)
                    interrupt_when = None
        else:
            pytest.fail(f"tuneforge {' '.join(args)} still runs after {timeout} s")
        status = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = raw.decode(errors="replace")
    return status, [line for line in screen(text) if line.strip()], text


def spec_file(tmp_path: Path, name: str, max_trials: int, epochs: int) -> Path:
    path = tmp_path / f"{name}.json"  # JSON is YAML: submit reads either
    path.write_text(json.dumps(digits_study(name, max_trials=max_trials, epochs=epochs, lr=0.05)))
    return path


FINAL_LIVE = (
    r"^completed +━+ {n}/{n} done · {n} complete · 0 pruned · 0 failed · best 0\.\d{{4}}"
    r" · elapsed 0:\d\d:\d\d$"
)


def test_submit_wait_on_a_terminal_redraws_one_line_then_prints_the_final_lines(
    shared_server: Server, tmp_path: Path
) -> None:
    status, lines, raw = in_terminal(
        shared_server, "submit", str(spec_file(tmp_path, "pty-submit", 3, epochs=2)), "--wait"
    )
    assert status == 0, raw
    study_id = re.match(r"study (\d+) submitted \(pty-submit-", lines[0]).group(1)  # type: ignore[union-attr]
    # What stays on the screen: the submission, the live line in its last state (drawn in
    # place, never printed again), the study's status and its best trial.
    assert len(lines) == 4, lines
    assert re.match(FINAL_LIVE.format(n=3), lines[1]), lines[1]
    assert lines[2] == f"study {study_id} completed: max_trials reached"
    assert re.fullmatch(r"best trial [0-2]: val_accuracy=0\.\d{4}  model\.width=\d+", lines[3])
    # The line as first drawn, before any trial ended.
    assert "0/3 done · 0 complete" in re.sub(_CSI, "", raw)


def test_watch_can_be_left_with_ctrl_c_and_joined_again(
    shared_server: Server, tmp_path: Path
) -> None:
    server = shared_server
    # One trial at a time, long enough (several seconds a trial) that it still runs when
    # watch joins it again a moment after Ctrl-C.
    spec = {**digits_study("pty-watch", max_trials=3, epochs=100, lr=0.05), "parallelism": 1}
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]

    def running(shown: list[str]) -> bool:
        return any(line.startswith("running ") and " running · " in line for line in shown)

    status, lines, raw = in_terminal(server, "watch", str(study_id), interrupt_when=running)
    assert status == 130, raw
    assert lines[-1] == (
        f"stopped watching; study {study_id} goes on (tuneforge watch {study_id} shows it again)"
    )
    assert server.api.get(f"/studies/{study_id}").json()["status"] != "stopped"

    status, lines, raw = in_terminal(server, "watch", str(study_id))
    assert status == 0, raw
    # It joined the study running: the live line was drawn with a trial in flight.
    assert re.search(r"running +[━╸╺]+ +\d/3 done · 1 running · ", re.sub(_CSI, "", raw))
    assert len(lines) == 3, lines
    assert re.match(FINAL_LIVE.format(n=3), lines[0]), lines[0]
    assert lines[1] == f"study {study_id} completed: max_trials reached"
    assert re.fullmatch(r"best trial [0-2]: val_accuracy=0\.\d{4}  model\.width=\d+", lines[2])

    # Once it ended, watch shows the final lines at once, through a pipe as well.
    again = tuneforge(server, "watch", str(study_id), timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:] == lines[1:]
    assert again.stdout.startswith("[completed] 3/3 done · 3 complete · ")


def test_through_a_pipe_each_line_comes_in_order_at_once_and_the_final_line_last(
    shared_server: Server, tmp_path: Path
) -> None:
    server = shared_server
    spec = spec_file(tmp_path, "piped", 4, epochs=40)  # several seconds a trial
    env = {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_DATA_DIR": str(server.data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "submit", str(spec), "--wait"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    first_trial_read: datetime | None = None
    for line in proc.stdout:  # read as they come
        lines.append(line.rstrip("\n"))
        if line.startswith("trial ") and first_trial_read is None:
            first_trial_read = datetime.now(UTC)
    assert proc.wait(240) == 0, lines
    study_id = lines[0].split()[1]
    # Flushed at once: the first trial's line arrived before the last trial had ended (a
    # buffered pipe would hand every line over at exit). Compared with the trial's own end
    # time rather than the study's status, so a loaded machine's slow reader cannot fail it.
    items = server.api.get(f"/studies/{study_id}/trials").json()["items"]
    ends = [t["datetime_complete"] for t in items]
    last_end = max(datetime.fromisoformat(end) for end in ends)
    assert first_trial_read is not None and first_trial_read < last_end, (first_trial_read, ends)
    final = next(i for i, line in enumerate(lines) if line.startswith("[completed]"))
    told = [int(line.split()[1]) for line in lines if line.startswith("trial ")]
    assert sorted(told) == [0, 1, 2, 3]  # each trial once
    assert all(line.startswith(("trial ", "[pending]", "[running]")) for line in lines[1:final])
    assert lines[final].startswith(
        "[completed] 4/4 done · 4 complete · 0 pruned · 0 failed · best "
    )
    assert lines[final + 1] == f"study {study_id} completed: max_trials reached"
    assert lines[final + 2].startswith("best trial ") and len(lines) == final + 3


def test_a_stopped_study_watch_exits_1_and_resume_runs_the_rest_of_its_budget(
    shared_server: Server,
) -> None:
    server = shared_server
    spec = digits_study("cli-resume", max_trials=2, epochs=2, lr=0.05)
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    server.api.post(f"/studies/{study_id}/stop").raise_for_status()
    assert wait_for(server.api, study_id, finished)["status"] == "stopped"

    watched = tuneforge(server, "watch", str(study_id), timeout=60)
    assert watched.returncode == 1
    assert watched.stdout.splitlines()[-1].startswith(f"study {study_id} stopped")

    resumed = tuneforge(server, "resume", str(study_id), "--wait")
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert lines[0] == f"study {study_id} resumed: pending, max_trials 2 (2 more trials)"
    total = len(server.api.get(f"/studies/{study_id}/trials").json()["items"])
    assert lines[-3].startswith(f"[completed] {total}/{total} done · 2 complete · 0 pruned · ")
    assert lines[-2] == f"study {study_id} completed: max_trials reached"

    used_up = tuneforge(server, "resume", str(study_id))
    assert used_up.returncode == 2
    assert used_up.stderr.startswith(f"error: --max-trials: study {study_id} has run 2 trials")
    more = tuneforge(server, "resume", str(study_id), "--max-trials", "3")
    assert more.returncode == 0, more.stderr
    assert more.stdout == f"study {study_id} resumed: pending, max_trials 3 (1 more trial)\n"
    assert wait_for(server.api, study_id, finished)["trial_counts"]["COMPLETE"] == 3


def test_read_commands_print_json_a_table_and_a_summary(shared_server: Server) -> None:
    server = shared_server
    spec = digits_study("cli-reads", max_trials=3, epochs=2, lr=0.05)
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    study = wait_for(server.api, study_id, finished)
    sid = str(study_id)

    def json_of(*args: str) -> Any:
        run = tuneforge(server, *args, "--json", timeout=60)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        return json.loads(run.stdout)  # the whole of stdout: nothing else there

    assert json_of("status", sid) == server.api.get(f"/studies/{study_id}").json()
    assert [t["number"] for t in json_of("trials", sid, "--state", "complete")] == [0, 1, 2]
    assert json_of("best", sid) == server.api.get(f"/studies/{study_id}/best").json()
    assert study_id in {s["id"] for s in json_of("studies", "--state", "Completed")}
    assert "active_studies" in json_of("quota")["limits"]
    assert any(k["admin"] for k in json_of("keys", "list"))

    table = tuneforge(server, "trials", sid, timeout=60)
    header, *rows, total = table.stdout.splitlines()
    assert header.split() == ["#", "state", "value", "duration", "params"]
    assert total == "3 trials" and len(rows) == 3
    at = header.index("params")
    assert all(row[at:].startswith("model.width=") for row in rows), table.stdout
    value_end = header.index("value") + len("value")
    assert all(re.fullmatch(r"0\.\d{4}", row[:value_end].split()[-1]) for row in rows)

    best = tuneforge(server, "best", sid, timeout=60).stdout.splitlines()
    assert [line.split()[0] for line in best] == [
        "trial",
        "val_accuracy",
        "params",
        "epochs",
        "duration",
        "download",
    ]
    assert best[1].split()[1] == f"{study['best_value']:.4f}"
    assert re.fullmatch(r"epochs +2 \(weights of epoch [12]\)", best[3])
    download = best[-1].split(None, 1)[1].split("  (")[0]
    assert download == f"tuneforge download {study_id}"


def test_a_refused_key_says_where_it_came_from(shared_server: Server, tmp_path: Path) -> None:
    server = shared_server
    env = {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_DATA_DIR": str(tmp_path)}
    env.pop("TUNEFORGE_API_KEY", None)
    command = [sys.executable, "-m", "service.cli", "studies"]
    nokey = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert nokey.returncode == 1 and nokey.stdout == ""
    assert nokey.stderr == (
        "error 401: the server refused the request: no API key given "
        f"(looked in TUNEFORGE_API_KEY and {tmp_path}/admin.key)\n"
    )
    env["TUNEFORGE_API_KEY"] = "tf_notakeyatall000000"
    wrong = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert wrong.returncode == 1
    assert wrong.stderr == (
        "error 401: the server refused the API key tf_notakey… from TUNEFORGE_API_KEY: "
        "unknown or revoked API key\n"
    )
