"""The real cell-search benchmark runs in parts: a saved file's studies are not run again, and
what it holds is reported without a server."""

import json
from pathlib import Path

import pytest

from benchmarks.nas_cells import STRATEGIES, held_seeds, measure, report


def saved(tmp_path: Path, seeds: list[int], trials: int = 3) -> Path:
    found = {
        name: {str(s): [0.5 + 0.1 * s, 0.6 + i / 100, 0.55][:trials] for s in seeds}
        for i, name in enumerate(STRATEGIES)
    }
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"trials": trials, "epochs": 2, "found": found}))
    return path


def test_the_studies_a_file_holds_are_read_not_run(tmp_path: Path) -> None:
    path = saved(tmp_path, [0, 1])
    found = measure([0, 1], 3, 2, path)  # no server: every study is in the file
    assert set(found) == set(STRATEGIES)
    assert found["tpe"] == [[0.5, 0.62, 0.55], [0.6, 0.62, 0.55]]
    text = report(found, [0, 1], 3, 2)
    assert "| local_search |" in text and "/ tpe's, 3 trials" in text


def test_a_file_of_another_length_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path, [0, 1])
    with pytest.raises(SystemExit, match="holds 3 trials x 2 epochs"):
        measure([0, 1], 100, 2, path)


def test_only_seeds_every_strategy_ran_are_reported(tmp_path: Path) -> None:
    path = saved(tmp_path, [0, 1, 2])
    body = json.loads(path.read_text())
    del body["found"]["predictor"]["2"]  # the run stopped during seed 2
    path.write_text(json.dumps(body))
    assert held_seeds(path) == [0, 1]


def test_a_run_of_some_strategies_keeps_the_others_and_reports_its_own(tmp_path: Path) -> None:
    path = saved(tmp_path, [0, 1])
    body = json.loads(path.read_text())
    del body["found"]["random"]  # the run so far left random for later
    path.write_text(json.dumps(body))
    assert held_seeds(path) == []
    chosen = ("local_search", "predictor", "tpe")
    assert held_seeds(path, chosen) == [0, 1]
    found = measure([0, 1], 3, 2, path, chosen)  # all held: no server
    assert set(found) == set(chosen)
    text = report(found, [0, 1], 3, 2)
    assert "| random |" not in text and "| predictor |" in text
