"""The CLI's commands end to end against a stand-in server (:mod:`tests.service.client.stub`):
``--json`` prints the API's JSON and nothing else, ``watch`` on a study that ended, ``resume``
and its default budget. The same commands against a real server: ``test_cli_live.py``."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.service.client.stub import Stub, run

OBJECTIVE = [{"metric": "val_accuracy", "direction": "maximize"}]


def study(status: str, max_trials: int = 4, **counts: int) -> dict[str, Any]:
    trial_counts = {"RUNNING": 0, "COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "WAITING": 0, **counts}
    return {
        "id": 5,
        "name": "tiny",
        "status": status,
        "status_reason": "max_trials reached" if status == "completed" else None,
        "optuna_study_name": "tiny-0123abcd",
        "created_at": "2026-01-02T03:04:00Z",
        "started_at": "2026-01-02T03:04:05Z",
        "finished_at": "2026-01-02T03:05:20Z" if status != "running" else None,
        "trial_counts": trial_counts,
        "best_value": 0.95 if counts.get("COMPLETE") else None,
        "spec": {"budget": {"max_trials": max_trials}, "objectives": OBJECTIVE, "parallelism": 2},
    }


def trial(number: int, state: str = "COMPLETE", **attrs: Any) -> dict[str, Any]:
    value = 0.95 if state == "COMPLETE" else None
    return {
        "number": number,
        "state": state,
        "params": {"model.width": 24},
        "value": value,
        "values": None if value is None else [value],
        "intermediate_values": {},
        "fail_reason": "stopped by user" if attrs.get("interrupted") else None,
        "node_id": None,
        "user_attrs": attrs,
        "datetime_start": "2026-01-02T03:04:05Z",
        "datetime_complete": "2026-01-02T03:04:15Z",
        "duration_s": 10.0,
    }


def page(items: list[Any]) -> tuple[int, Any]:
    return 200, {"items": items, "total": len(items), "offset": 0, "limit": 500}


@pytest.mark.parametrize(
    ("args", "path", "answer", "printed"),
    [
        (["status", "5"], "/studies/5", study("completed", COMPLETE=4), None),
        (["trials", "5"], "/studies/5/trials", page([trial(0), trial(1)])[1], "items"),
        (["best", "5"], "/studies/5/best", trial(1), None),
        (["studies"], "/studies", page([study("running")])[1], "items"),
        (["quota"], "/quota", {"tenant": "t", "limits": {"datasets": 3}, "usage": {}}, None),
        (["keys", "list"], "/keys", [{"id": 1, "tenant": "t", "prefix": "tf_abcdefg"}], None),
    ],
)
def test_json_prints_the_api_s_answer_and_nothing_else(
    stub: Stub, tmp_path: Path, args: list[str], path: str, answer: Any, printed: str | None
) -> None:
    stub.answers[f"GET {path}"] = (200, answer)
    result = run(stub, tmp_path, *args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == (answer[printed] if printed else answer)
    assert result.stderr == ""


def test_trials_json_reads_every_page_of_one_state_given_in_any_case(
    stub: Stub, tmp_path: Path
) -> None:
    stub.answers["GET /studies/5/trials"] = page([trial(0)])
    result = run(stub, tmp_path, "trials", "5", "--state", "Complete", "--json")
    assert result.exit_code == 0, result.output
    assert [t["number"] for t in json.loads(result.stdout)] == [0]


def test_watch_on_a_study_that_ended_prints_its_final_lines(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/5"] = (200, study("completed", COMPLETE=3, PRUNED=1))
    stub.answers["GET /studies/5/best"] = (200, trial(2))
    result = run(stub, tmp_path, "watch", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "[completed] 4/4 done · 3 complete · 1 pruned · 0 failed · best 0.9500 · elapsed 0:01:15",
        "study 5 completed: max_trials reached",
        "best trial 2: val_accuracy=0.9500  model.width=24",
    ]


def test_watch_exits_1_when_no_trial_completed(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/5"] = (200, study("stopped", FAIL=2))
    result = run(stub, tmp_path, "watch", "5")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "study 5 stopped"


def sse(*events: tuple[str, Any]) -> str:
    return "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)


def test_watch_json_prints_each_event_as_a_line_of_json(stub: Stub, tmp_path: Path) -> None:
    running, done = study("running", RUNNING=1), study("completed", COMPLETE=1)
    stub.answers["GET /studies/5"] = (200, running)
    stub.answers["GET /studies/5/events"] = (
        200,
        sse(("study", running), ("trial", trial(0)), ("end", done)),
    )
    result = run(stub, tmp_path, "watch", "5", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"event": "study", "data": running},
        {"event": "trial", "data": trial(0)},
        {"event": "end", "data": done},
    ]
    # A study that ended: its end at once; none completed: exit 1.
    stub.answers["GET /studies/5"] = (200, study("stopped", FAIL=2))
    ended = run(stub, tmp_path, "watch", "5", "--json")
    assert ended.exit_code == 1
    assert json.loads(ended.stdout) == {"event": "end", "data": study("stopped", FAIL=2)}


def test_resume_runs_the_rest_of_a_budget_a_stop_cut_short(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/5"] = (200, study("stopped", COMPLETE=1, FAIL=2))
    # Two trials cancelled by the stop: the budget does not count them.
    trials = [trial(0), trial(1, "FAIL", interrupted=True), trial(2, "FAIL", interrupted=True)]
    stub.answers["GET /studies/5/trials"] = page(trials)
    stub.answers["PATCH /studies/5"] = (200, study("pending"))
    result = run(stub, tmp_path, "resume", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "study 5 resumed: pending, max_trials 4 (3 more trials)\n"
    assert stub.seen[-1] == ("PATCH", "/studies/5", stub.seen[-1][2], {"budget": {"max_trials": 4}})


def test_resume_asks_for_a_budget_when_the_study_used_its_own(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/5"] = (200, study("completed", COMPLETE=4))
    stub.answers["GET /studies/5/trials"] = page([trial(n) for n in range(4)])
    stub.answers["PATCH /studies/5"] = (200, study("pending", max_trials=6))
    refused = run(stub, tmp_path, "resume", "5")
    assert refused.exit_code == 2
    assert refused.stderr == (
        "error: --max-trials: study 5 has run 4 trials of its budget of 4: give a larger one "
        "(--max-trials 8 runs 4 more)\n"
    )
    too_few = run(stub, tmp_path, "resume", "5", "--max-trials", "4")
    assert too_few.exit_code == 2 and "4: give more than that" in too_few.stderr
    assert [s[0] for s in stub.seen] == ["GET"] * 4  # nothing changed yet
    resumed = run(stub, tmp_path, "resume", "5", "--max-trials", "6")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == "study 5 resumed: pending, max_trials 6 (2 more trials)\n"
    assert stub.seen[-1][3] == {"budget": {"max_trials": 6}}


def test_resume_leaves_a_running_study_alone(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/5"] = (200, study("running", RUNNING=2))
    result = run(stub, tmp_path, "resume", "5")
    assert result.exit_code == 1
    assert "study 5 is running: nothing to resume" in result.stderr
    assert [s[0] for s in stub.seen] == ["GET"]


def test_stop_wait_returns_once_the_study_has_stopped(stub: Stub, tmp_path: Path) -> None:
    stub.answers["POST /studies/5/stop"] = (202, study("running", RUNNING=1))
    stopped = {**study("stopped", COMPLETE=3), "status_reason": "stopped by user (drained)"}
    stub.answers["GET /studies/5"] = (200, stopped)
    result = run(stub, tmp_path, "stop", "5", "--drain", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "study 5: stop (drain) requested (status running)\n"
        "study 5 stopped: stopped by user (drained)\n"
    )
    assert [s[:2] for s in stub.seen] == [("POST", "/studies/5/stop"), ("GET", "/studies/5")]
