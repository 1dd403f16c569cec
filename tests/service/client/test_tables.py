"""How the CLI shows trials, studies and the best trial: aligned columns, compact numbers."""

from typing import Any

from service.client.tables import (
    LINE_WIDTH,
    best_summary,
    number,
    params_text,
    studies_table,
    trials_table,
)


def trial(number: int, state: str, value: float | None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "number": number,
        "state": state,
        "value": value,
        "values": None if value is None else [value],
        "params": {"training.lr": 0.00123456, "model.width": 24},
        "fail_reason": None,
        "user_attrs": {},
        "duration_s": 8.25,
        "datetime_start": "2026-01-02T03:04:05Z",
    }
    return {**base, **extra}


def test_numbers_have_four_significant_digits() -> None:
    assert [number(v) for v in (0.95556, 0.95, 1234.5678, 123456.0, 0.000123456, None)] == [
        "0.9556",
        "0.9500",
        "1235",
        "1.235e+05",
        "0.0001235",
        "-",
    ]
    assert params_text({"lr": 0.00123456, "width": 24, "act": "relu", "wd": 0.5}) == (
        "lr=0.001235 width=24 act=relu wd=0.5"
    )


def test_trials_line_up_in_columns_whatever_their_widths() -> None:
    rows = [
        trial(0, "COMPLETE", 0.9123),
        trial(1, "PRUNED", None, duration_s=75.0),
        trial(12, "FAIL", None, fail_reason="non-finite loss at epoch 3"),
        trial(103, "COMPLETE", 12.5, duration_s=7500.0),
    ]
    header, *lines = trials_table(rows)
    assert header.split() == ["#", "state", "value", "duration", "params"]
    # Text starts under its header, numbers end under theirs, whatever the widths.
    state_at = header.index("state")
    assert [line[state_at:].split()[0] for line in lines] == [
        "COMPLETE",
        "PRUNED",
        "FAIL",
        "COMPLETE",
    ]
    value_end = header.index("value") + len("value")
    assert [line[:value_end].split()[-1] for line in lines] == ["0.9123", "-", "-", "12.50"]
    duration_end = header.index("duration") + len("duration")
    assert [line[:duration_end].split()[-1] for line in lines] == ["8.2s", "1m15s", "8.2s", "2h05m"]
    params_at = header.index("params")
    assert {line.index("training.lr") for line in lines if "(" not in line} == {params_at}
    assert lines[0].endswith("training.lr=0.001235 model.width=24")
    assert lines[2].endswith("(non-finite loss at epoch 3) training.lr=0.001235 model.width=24")


def test_a_nas_trial_shows_its_genotype_and_a_long_row_is_cut() -> None:
    cell = {f"model.edge_{a}_{b}": "conv3x3" for a, b in ((1, 0), (2, 0), (2, 1))}
    nas = trial(
        0,
        "COMPLETE",
        0.8,
        params={**cell, "training.lr": 0.01},
        user_attrs={"genotype": "|conv3x3~0|+|conv3x3~0|conv3x3~1|"},
    )
    wide = trial(1, "COMPLETE", 0.7, params={f"model.p{i}": i * 1.5 for i in range(40)})
    _, nas_line, wide_line = trials_table([nas, wide])
    assert nas_line.endswith("genotype=|conv3x3~0|+|conv3x3~0|conv3x3~1| training.lr=0.01")
    assert "edge_" not in nas_line
    assert len(wide_line) == LINE_WIDTH and wide_line.endswith("…")


def test_studies_line_up_under_their_header() -> None:
    studies = [
        {"id": 7, "status": "running", "name": "a", "best_value": 0.5, "trial_counts": {}},
        {
            "id": 1234,
            "status": "completed",
            "name": "digits-mlp",
            "best_value": 0.97501,
            "trial_counts": {"COMPLETE": 11, "PRUNED": 1, "RUNNING": 0},
        },
    ]
    header, first, second = studies_table(studies)
    assert header.split() == ["id", "status", "done", "running", "best", "name"]
    assert first.split() == ["7", "running", "0", "0", "0.5000", "a"]
    assert second.split() == ["1234", "completed", "12", "0", "0.9750", "digits-mlp"]
    assert first.index("a") == second.index("digits-mlp") == header.index("name")


def test_the_best_trial_in_a_few_lines() -> None:
    study = {
        "id": 5,
        "status": "completed",
        "spec": {"objectives": [{"metric": "val_accuracy", "direction": "maximize"}]},
    }
    best = trial(
        7,
        "COMPLETE",
        0.97501,
        learning_curve=[{"epoch": e, "metrics": {}} for e in range(1, 11)],
        user_attrs={"best_epoch": 8},
        artifacts=["weights", "torchscript", "spec"],
    )
    assert best_summary(study, best) == [
        "trial         7 of study 5 (completed)",
        "val_accuracy  0.9750",
        "params        training.lr=0.001235 model.width=24",
        "epochs        10 (weights of epoch 8)",
        "duration      8.2s",
        "download      tuneforge download 5  (also --kind weights or spec)",
    ]
    nothing = best_summary(study, {**best, "artifacts": []})
    assert nothing[-1] == "download      no model kept"


def test_several_objectives_show_the_pareto_front() -> None:
    objectives = [{"metric": "val_accuracy"}, {"metric": "n_params"}]
    study = {"id": 3, "status": "completed", "spec": {"objectives": objectives}}
    front = [
        trial(2, "COMPLETE", 0.9, values=[0.9, 1200.0]),
        trial(4, "COMPLETE", 0.8, values=[0.8, 300.0]),
    ]
    lines = best_summary(study, {"objectives": objectives, "trials": front})
    assert lines[0] == "study 3: 2 trials on the Pareto front"
    assert lines[1].startswith("best trial 2: val_accuracy=0.9000, n_params=1200  training.lr=")
    assert lines[2].startswith("best trial 4: val_accuracy=0.8000, n_params=300.0  ")
    assert lines[3] == "download: tuneforge download 3 --trial 2"
