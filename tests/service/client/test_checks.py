"""The ``check`` command's table, drawn from a real pre-flight check (run here, in-process,
as a Ray worker would run it)."""

import yaml

from models.data import load_dataset
from search.checks import complete
from search.jobs.preflight import PreflightJob, sample_points
from service.api.convert import to_spec
from service.api.schemas.study import StudyCreate
from service.client.checks import check_lines, findings_lines
from tests.service.client.test_cli import ROOT


def _result(example: str, points: int) -> dict:
    raw = yaml.safe_load((ROOT / "examples" / example).read_text())
    spec = complete(to_spec(StudyCreate.model_validate(raw)))
    job = PreflightJob(spec, tuple(sample_points(spec, points, 0)), 0)
    return job.run(load_dataset("digits"))


def test_the_table_shows_each_point_and_the_findings() -> None:
    result = _result("preflight-bad-lr.yaml", 2)
    lines = check_lines(result)
    text = "\n".join(lines)
    assert text.count("point: model.width=") == 2  # the points differ in width only
    assert "  initial loss  " in text and "(expected 2.303)" in text
    assert "short fit     diverged" in text
    assert "pre-flight check found problems (2 point(s)" in text
    error = lines.index("ERROR    lr_diverges (2 points)")
    sentence = " ".join(x.strip() for x in lines[error + 1 :])
    assert sentence.startswith("training.lr = 5 diverges")
    assert all(len(x) <= 120 for x in lines)
    # One row per ReLU layer, with its dead fraction.
    assert sum(1 for x in lines if "ReLU" in x and x.rstrip().endswith("-")) == 4


def test_a_finding_wraps_under_its_code() -> None:
    lines = findings_lines([{"severity": "warning", "code": "x", "message": "word " * 60}])
    assert lines[0] == "WARNING  x"
    assert len(lines) > 2 and all(x.startswith(" " * 9) for x in lines[1:])
