"""Where tuneforge keeps what it records of a trial (``search/attrs.py``): every user attribute
short enough for optuna-dashboard's one-line display, every value whole for the readers."""

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from search import attrs
from search.loop.inflight import InFlight
from tests.search.conftest import digits_spec

LIMIT = attrs.MAX_ATTR_JSON


def long_curve(epochs: int = 40) -> list[dict[str, Any]]:
    """A learning curve as a long training leaves it: several metrics per epoch."""
    return [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 1 - 1 / e}
        | {"lr": 0.01, "grad_norm": 0.5 + e / 100}
        for e in range(1, epochs + 1)
    ]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'attrs.db'}"


@pytest.fixture
def study(url: str) -> optuna.Study:
    """A study on SQLite, loaded as the scheduler loads it (under Optuna's cache)."""
    optuna.create_study(storage=url, study_name="attrs", direction="maximize")
    return optuna.load_study(storage=url, study_name="attrs")


def stored(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as a fresh reader of the database sees them."""
    return optuna.load_study(study_name="attrs", storage=url).trials


@pytest.mark.parametrize(
    "value",
    [
        "x" * 1000,
        "é" * 1000,  # 6 characters of JSON each
        "\U0001f600" * 300,  # 12 each (a surrogate pair)
        {"nested": list(range(300))},
        list(range(300)),
    ],
)
def test_a_long_value_is_cut_to_fit_with_an_ellipsis(value: Any) -> None:
    short = attrs.shorten(value)
    assert isinstance(short, str) and short.endswith("\u2026")
    assert len(json.dumps(short)) <= LIMIT
    assert len(json.dumps(short)) > LIMIT - 12  # cut no more than one character too much
    text = value if isinstance(value, str) else json.dumps(value)
    assert text.startswith(short[:-1])


@pytest.mark.parametrize("value", ["x" * (LIMIT - 2), 0.9711, [1, 2], {"a": None}, True])
def test_a_value_that_fits_stays_as_it_is(value: Any) -> None:
    assert attrs.fits(value)
    assert attrs.shorten(value) == value


def test_records_go_to_system_attributes_with_compact_ones_beside_them() -> None:
    curve = long_curve()
    user, system = attrs.split(
        {
            "curve": curve,
            "final_metrics": {"val_accuracy": 0.9711, "param_count": 1234.0},
            "grad_norms": {f"layer{i}.weight": 0.1 * i for i in range(30)},
            "resumes": [{"from_epoch": 5, "reason": "worker lost"}],
            "seed": 3,
            "fail_reason": "RuntimeError: " + "x" * 500,
        }
    )
    assert system["tuneforge:curve"] == curve
    assert set(system) == {
        "tuneforge:curve",
        "tuneforge:final_metrics",
        "tuneforge:grad_norms",
        "tuneforge:resumes",
        "tuneforge:fail_reason",
    }
    assert user["epochs"] == 40
    assert user["final_val_accuracy"] == 0.9711 and user["final_param_count"] == 1234.0
    assert user["retries"] == 1
    assert user["seed"] == 3
    assert user["fail_reason"].startswith("RuntimeError: xxx")
    assert not {"curve", "final_metrics", "grad_norms", "resumes"} & set(user)
    assert all(attrs.fits(v) for v in user.values())


def test_a_running_trials_attributes_read_back_whole(study: optuna.Study, url: str) -> None:
    trial = study.ask()
    reason = "ValueError: " + "y" * 800
    attrs.write(trial, {"curve": long_curve(), "fail_reason": reason, "node_id": "n1"})
    [t] = stored(url)
    assert attrs.trial_curve(t) == long_curve()
    assert attrs.trial_attr(t, "fail_reason") == reason
    assert attrs.trial_attr(t, "node_id") == "n1"
    assert attrs.trial_attr(t, "missing", "default") == "default"
    assert attrs.full_attrs(t) == {
        "epochs": 40,
        "fail_reason": reason,
        "node_id": "n1",
        "curve": long_curve(),
    }
    # A value that fits written after one that did not: the short one is the value now.
    attrs.write(trial, {"fail_reason": "short"})
    [t] = stored(url)
    assert attrs.trial_attr(t, "fail_reason") == "short"
    assert t.system_attrs["tuneforge:fail_reason"] == reason  # left behind, not read


def test_trials_stored_before_read_their_records_from_user_attributes(
    study: optuna.Study, url: str
) -> None:
    trial = study.ask()
    trial.set_user_attr("curve", [{"epoch": 1, "val_loss": 0.5}])
    trial.set_user_attr("final_metrics", {"val_loss": 0.5})
    [t] = stored(url)
    assert attrs.trial_curve(t) == [{"epoch": 1, "val_loss": 0.5}]
    assert attrs.trial_attr(t, "final_metrics") == {"val_loss": 0.5}


def test_no_user_attribute_of_a_finished_trial_exceeds_the_limit(
    study: optuna.Study, url: str
) -> None:
    """A trial's whole life as the loop writes it (start, epochs, a resume, the result), read
    straight from Optuna's storage once it is told."""
    running = InFlight(study.ask())
    running.set(seed=7, node_id="f" * 56, pid=1234, device="cpu", genotype="|conv~0|" * 20)
    running.save()
    for point in long_curve(12):
        running.curve.append(point)
        running.save(force=False)
    running.set(checkpoint_epoch=10, resumes=[{"from_epoch": 10, "reason": "x" * 1000}] * 3)
    running.curve += long_curve()[12:]
    metrics = {f"metric_{i}": 1 / (i + 1) for i in range(12)}
    running.set(final_metrics=metrics, best_epoch=38, stopped_early=False, param_count=99)
    running.set(grad_norms={f"blocks.{i}.conv.weight": 1.5 * i for i in range(40)})
    running.set(artifact_uri="/data/" + "deep/" * 60 + "trial-0", fail_reason="z" * 2000)
    running.save()
    study.tell(running.trial, 0.5)

    [t] = stored(url)
    assert t.state == TrialState.COMPLETE
    too_long = {k: v for k, v in t.user_attrs.items() if len(json.dumps(v)) > LIMIT}
    assert too_long == {}
    assert attrs.trial_curve(t) == long_curve()
    assert attrs.trial_attr(t, "final_metrics") == metrics
    assert t.user_attrs["final_metric_0"] == 1.0 and t.user_attrs["epochs"] == 40
    assert attrs.trial_attr(t, "fail_reason") == "z" * 2000
    assert attrs.trial_attr(t, "artifact_uri").endswith("trial-0")
    assert "artifact_uri" not in t.user_attrs


def test_a_study_records_its_spec_whole_and_says_it_in_one_line(study: optuna.Study) -> None:
    spec = digits_spec("summary", 0, 20, 2, 5)
    document = {"name": "summary", "huge": ["x" * 100] * 100}
    attrs.record_spec(study, spec, document)
    summary = study.user_attrs[attrs.SPEC_SUMMARY]
    assert summary == "mlp on digits; maximize val_accuracy; random; 20 trials"
    stored_spec = study._storage.get_study_system_attrs(study._study_id)[attrs.SPEC]
    assert stored_spec == document
