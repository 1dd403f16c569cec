"""The external-trials benchmark's report: medians, spread and the ratio of the medians."""

from benchmarks.external import report, study_spec


def test_the_report_gives_medians_spread_and_their_ratio() -> None:
    found = {"tuneforge": [40.0, 44.0, 42.0], "optuna": [20.0, 21.0, 30.0]}
    text = report(found, "sqlite", 200, "random")
    assert "| tuneforge (ask, report, tell over HTTP) | 42.0 (40.0-44.0) |" in text
    assert "| optuna (ask, report, tell in process) | 21.0 (20.0-30.0) |" in text
    assert "Ratio tuneforge / optuna: 2.00." in text
    assert "200 no-op trials one at a time, random over 2 floats" in text


def test_the_study_is_an_external_one_of_the_chosen_sampler() -> None:
    spec = study_spec("x", 50, "tpe")
    assert spec["task"]["kind"] == "external" and spec["budget"]["max_trials"] == 50
    assert spec["algorithm"]["name"] == "tpe" and spec["parallelism"] == 1
