"""``tuneforge agent``: a command per trial against a scripted server (:mod:`.external_server`),
with real processes: its metric lines reported, its other lines passed through, its exit
status told, and a trial the study's pruner stops killed at once (SIGTERM, then SIGKILL);
the command itself against the stand-in HTTP server (:mod:`.stub`)."""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from service.client.agent import metrics_line, run_agent
from tests.service.client.external_server import (
    NOTHING_LEFT,
    TOLD,
    Answer,
    Server,
    asked,
    reported,
    scripted,
)
from tests.service.client.stub import Stub, run


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def serve(*asks: Answer, report: list[Answer] | None = None) -> Server:
    return Server(
        answers={
            "POST /studies/7/ask": [*asks, NOTHING_LEFT],
            "POST /studies/7/trials/0/report": [*(report or [reported()])],
            **{f"POST /studies/7/trials/{n}/tell": [TOLD] for n in range(4)},
        }
    )


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ('{"step": 2, "val_loss": 0.4, "accuracy": 1}\n', (2, {"val_loss": 0.4, "accuracy": 1.0})),
        ('  {"val_loss": 0.3}  ', (None, {"val_loss": 0.3})),
        ('{"step": 1.5, "val_loss": 0.4}', None),
        ('{"step": -1, "val_loss": 0.4}', None),
        ('{"step": true, "val_loss": 0.4}', None),
        ('{"step": 1, "note": "warmup"}', None),
        ('{"step": 1}', None),
        ("[1, 2]", None),
        ("{not json", None),
        ("epoch 3: loss 0.4", None),
    ],
)
def test_a_metrics_line_is_a_json_object_of_numbers(line: str, parsed: object) -> None:
    assert metrics_line(line) == parsed


def test_each_trial_runs_the_command_with_its_params_and_its_lines_are_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = serve(asked(0, lr=0.05, depth=4))
    command = python("""
        import json, os
        params = json.loads(os.environ["TUNEFORGE_PARAMS"])
        with open(os.environ["TUNEFORGE_PARAMS_FILE"]) as f:
            assert json.load(f) == params
        print("training with", params, "trial", os.environ["TUNEFORGE_TRIAL"],
              "seed", os.environ["TUNEFORGE_SEED"])
        for step in range(3):
            print(json.dumps({"step": step, "val_loss": 1 - step / 4, "train_loss": 0.1}))
        print(json.dumps({"accuracy": 0.875}))
    """)
    [outcome] = run_agent(scripted(server).study(7), command)

    assert server.sent("/report") == [
        {"lease": "L0", "step": s, "metrics": {"val_loss": 1 - s / 4}} for s in range(3)
    ]  # train_loss is no metric of the task: not reported
    final = {"val_loss": 0.5, "accuracy": 0.875}
    assert server.sent("/tell") == [{"lease": "L0", "state": "complete", "metrics": final}]
    assert outcome.state == "complete"
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "training with {'lr': 0.05, 'depth': 4} trial 0 seed 100",
        "trial 0 complete val_loss=0.5 accuracy=0.875",
    ]


def test_a_failing_command_fails_its_trial_and_the_agent_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = serve(asked(0), asked(1), asked(2), asked(3))
    command = python("""
        import os, sys
        print("warming up", file=sys.stderr)
        trial = os.environ["TUNEFORGE_TRIAL"]
        if trial == "0":
            sys.exit("ValueError: lr out of range")
        if trial == "1":
            print('{"step": 0, "val_loss": NaN}')
        if trial == "2":
            print('{"accuracy": 0.5}')
        print('{"val_loss": 0.2}' if trial == "3" else "done")
    """)
    outcomes = run_agent(scripted(server).study(7), command)
    assert [(o.number, o.state) for o in outcomes] == [
        (0, "fail"),
        (1, "fail"),
        (2, "fail"),
        (3, "complete"),
    ]
    assert [(b["state"], b.get("reason")) for b in server.sent("/tell")] == [
        ("fail", "exit status 1: ValueError: lr out of range"),
        ("fail", "val_loss=nan at step 0"),
        ("fail", "exit status 0 without val_loss printed"),
        ("complete", None),
    ]
    captured = capsys.readouterr()
    assert "trial 0 failed: exit status 1: ValueError: lr out of range\n" in captured.out
    assert "trial 3 complete val_loss=0.2\n" in captured.out
    assert captured.err.count("warming up") == 4  # the command's stderr passes through


def test_a_line_the_service_refuses_fails_the_trial_and_stops_its_command() -> None:
    refused = (422, {"detail": [{"loc": ["body", "step"], "path": "step", "msg": "must be >= 1"}]})
    server = serve(asked(0), report=[refused])
    command = python("""
        import time
        print('{"step": 0, "val_loss": 0.9}')
        time.sleep(60)
    """)
    start = time.monotonic()
    [outcome] = run_agent(scripted(server).study(7), command, kill_grace_s=0.5)
    assert time.monotonic() - start < 10
    assert outcome.state == "fail"
    reason = "step 0: the service refused the line: 422: step: must be >= 1"
    assert server.sent("/tell") == [{"lease": "L0", "state": "fail", "reason": reason}]


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["sigterm", "sigkill"])
def test_a_pruned_trial_s_command_is_killed_at_once_and_not_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ignores_sigterm: bool
) -> None:
    pid_file = tmp_path / "pid"
    server = serve(asked(0), report=[reported(), reported(should_prune=True)])
    command = python(f"""
        import json, os, signal, time
        if {ignores_sigterm}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        for step in range(100):
            print(json.dumps({{"step": step, "val_loss": 1.0}}))
            time.sleep(0.05 if step < 1 else 60)
    """)
    start = time.monotonic()
    [outcome] = run_agent(scripted(server).study(7), command, kill_grace_s=0.5)
    elapsed = time.monotonic() - start

    assert elapsed < 10, elapsed  # the command would run for minutes
    assert (outcome.state, outcome.step) == ("pruned", 1)
    assert server.sent("/tell") == []
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert capsys.readouterr().out == "trial 0 pruned at step 1\n"


def test_the_agent_command_runs_trials_until_the_study_has_none_left(
    stub: Stub, tmp_path: Path
) -> None:
    spec = {"objectives": [{"metric": "val_loss"}], "task": {"kind": "external"}}
    stub.answers["GET /studies/7"] = (200, {"id": 7, "status": "running", "spec": spec})
    stub.answers["POST /studies/7/ask"] = asked(0)
    stub.answers["POST /studies/7/trials/0/report"] = reported()
    stub.answers["POST /studies/7/trials/0/tell"] = TOLD
    line = json.dumps({"step": 0, "val_loss": 0.25})
    result = run(stub, tmp_path, "agent", "7", "--n-trials", "1", "--", *python(f"print({line!r})"))
    assert result.exit_code == 0, result.output
    assert result.stdout == "trial 0 complete val_loss=0.25\nagent done: 1 trial evaluated\n"
    tells = [body for method, path, _, body in stub.seen if path.endswith("/tell")]
    assert tells == [{"lease": "L0", "state": "complete", "metrics": {"val_loss": 0.25}}]

    stub.answers["POST /studies/7/ask"] = NOTHING_LEFT
    result = run(stub, tmp_path, "agent", "7", "--", "false")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"agent done: {NOTHING_LEFT[1]['detail']}\n"

    asks = sum(path.endswith("/ask") for _, path, _, _ in stub.seen)
    result = run(stub, tmp_path, "agent", "7", "--", "no-such-command-here", "--flag")
    assert result.exit_code == 2 and "no-such-command-here: no such command" in result.stderr
    assert sum(path.endswith("/ask") for _, path, _, _ in stub.seen) == asks  # none asked
