"""Study reports: ``render_report`` on in-memory Optuna studies (single and several
objectives, empty, missing importances, a plot that fails, escaped user strings, no fetches).
"""

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from search.attrs import split
from service.reports import plots as report
from service.reports.report import render_report
from tests.service.reports._report import SINGLE_PLOTS, Page

# set_metric_names is how the service names objectives (see crud.create_study).
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

ACTIVATIONS = ["relu", "gelu", '<b onmouseover="alert(1)">bold</b>']
DISTRIBUTIONS = {
    "training.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.width": IntDistribution(16, 64),
    "model.activation": CategoricalDistribution(ACTIVATIONS),
}
CURVE_METRICS = ["train_loss", "val_loss", "val_accuracy", "lr"]


def single_spec(name: str = "report-unit") -> dict[str, Any]:
    return {
        "name": name,
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "algorithm": {"name": "tpe"},
        "task": {"dataset": {"name": "digits"}, "model": {"family": "mlp"}},
    }


def make_trial(
    params: dict[str, Any],
    values: list[float] | None,
    state: TrialState = TrialState.COMPLETE,
    epochs: int = 0,
    fail_reason: str | None = None,
) -> FrozenTrial:
    """A trial as the scheduler records it: per-epoch objective, a curve of every metric (a
    system attribute: search.attrs)."""
    recorded: dict[str, Any] = {}
    intermediate: dict[int, float] = {}
    if epochs:
        final = values[0] if values else 0.5
        curve = [
            {
                "epoch": e,
                "train_loss": 2.0 / e,
                "val_loss": 2.2 / e,
                "val_accuracy": final * e / epochs,
                "lr": params.get("training.lr", 0.01),
            }
            for e in range(1, epochs + 1)
        ]
        recorded["curve"] = curve
        intermediate = {p["epoch"]: p["val_accuracy"] for p in curve}
    if fail_reason:
        recorded["fail_reason"] = fail_reason
    user_attrs, system_attrs = split(recorded)
    return optuna.trial.create_trial(
        state=state,
        params=params,
        distributions={k: DISTRIBUTIONS[k] for k in params},
        values=values,
        intermediate_values=intermediate,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
    )


def single_study(n: int = 6, name: str = "report-unit") -> optuna.Study:
    """A finished single-objective study: ``n`` trials, the last one failed."""
    study = optuna.create_study(study_name=name, direction="maximize")
    study.set_metric_names(["val_accuracy"])
    for i in range(n - 1):
        params = {
            "training.lr": 10 ** (-3 + i / n),
            "model.width": 16 + 7 * i,
            "model.activation": ACTIVATIONS[i % 3],
        }
        study.add_trial(make_trial(params, [0.8 + 0.03 * math.sin(i)], epochs=4))
    study.add_trial(
        make_trial(
            {"training.lr": 0.09},
            None,
            TrialState.FAIL,
            fail_reason="NonFiniteLossError: non-finite loss at epoch 1",
        )
    )
    return study


def test_a_single_objective_report_has_every_plot_and_no_pareto_front() -> None:
    study = single_study()
    html = render_report(study, single_spec(), study_id=7, status="completed")
    page = Page(html)

    assert page.plots == SINGLE_PLOTS
    assert page.plot_count == len(SINGLE_PLOTS)
    assert "pareto" not in page.sections
    assert page.sections == [
        "history",
        "intermediate",
        "parallel",
        "importances",
        "curves",
        "failures",
    ]
    assert page.notes == []
    # Each plot is drawn by its own script, after plotly.js (inline, exactly once).
    big = [s for s in page.scripts if len(s) > 1_000_000]
    assert len(big) == 1
    assert page.scripts.index(big[0]) < min(
        i for i, s in enumerate(page.scripts) if "Plotly.newPlot" in s
    )
    assert sum("Plotly.newPlot" in s for s in page.scripts) == len(SINGLE_PLOTS)

    # The header: counts and the best trial, found here independently of the service.
    best = max(
        (t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value or 0
    )
    assert "report-unit" in page.text and "completed" in page.text
    assert "6 (COMPLETE 5, FAIL 1)" in page.text
    assert f"{best.value:.6g}" in page.text
    assert f"Trial {best.number}." in page.text
    for key, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        assert key in page.text and shown in page.text
    # The failure and its reason are listed.
    assert "NonFiniteLossError: non-finite loss at epoch 1" in page.text

    # The learning curves: one line per metric of the best trial's curve, in its order.
    curves = next(s for s in page.scripts if '"tf-plot-5"' in s)
    for metric in CURVE_METRICS:
        assert f'"name":"{metric}"' in curves
    assert curves.count('"mode":"lines+markers"') == len(CURVE_METRICS)


def test_a_multi_objective_report_draws_its_pareto_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "train_loss"])
    points = [(0.9, 0.5), (0.8, 0.2), (0.95, 0.9), (0.7, 0.6), (0.85, 0.3)]
    for i, (acc, loss) in enumerate(points):
        params = {"training.lr": 0.001 * (i + 1), "model.width": 16 + 8 * i}
        study.add_trial(make_trial(params, [acc, loss]))
    spec = {
        "name": "two-objectives",
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "train_loss", "direction": "minimize"},
        ],
    }
    page = Page(render_report(study, spec))

    assert "pareto" in page.sections
    assert "pareto-front" in page.plots
    # One history and one parallel-coordinates plot per objective; no per-epoch values.
    assert page.plots.count("optimization-history") == 2
    assert page.plots.count("parallel-coordinate") == 2
    assert "intermediate-values" not in page.plots
    page.note("several objectives report no values per epoch")
    assert page.plot_count == len(page.plots)
    # The front table lists Optuna's own front: (0.95, 0.9), (0.9, 0.5), (0.85, 0.3), (0.8, 0.2).
    front = sorted(t.number for t in study.best_trials)
    assert front == [0, 1, 2, 4]
    assert f"{len(front)} trials" in page.text
    for t in study.trials:
        row = f"{t.number}{t.values[0]:.6g}{t.values[1]:.6g}"
        assert (row in page.text) == (t.number in front), (row, page.text)


def test_an_empty_study_renders_with_a_note_for_every_plot() -> None:
    study = optuna.create_study(study_name="empty", direction="minimize")
    spec = {"name": "empty", "objectives": [{"metric": "val_loss", "direction": "minimize"}]}
    html = render_report(study, spec, status="pending")
    page = Page(html)

    assert page.plots == [] and page.plot_count == 0
    assert not any("Plotly" in s for s in page.scripts)  # no plotly.js to carry for nothing
    assert len(page.notes) == 5
    page.note("No trial has completed yet: the history")
    page.note("No trial has reported intermediate values")
    page.note("need at least two completed trials")
    assert "No trial failed." in page.text
    assert "Trials0" in page.text.replace(" ", "")
    assert "val_loss (minimize)" in page.text


@pytest.mark.parametrize(
    "trials",
    [
        pytest.param([({"training.lr": 0.01}, 0.9)], id="one-complete-trial"),
        pytest.param(
            [({"training.lr": 0.01}, 0.9), ({"training.lr": 0.01}, 0.8)], id="same-params"
        ),
        pytest.param([({}, 0.9), ({}, 0.8)], id="no-params"),
    ],
)
def test_importances_explain_why_they_are_missing(
    trials: list[tuple[dict[str, Any], float]],
) -> None:
    study = optuna.create_study(direction="maximize")
    for params, value in trials:
        study.add_trial(make_trial(params, [value], epochs=2))
    page = Page(render_report(study, single_spec()))

    assert "param-importances" not in page.plots
    note = page.note("Parameter importances need")
    assert f"({len(trials)} completed so far)" in note
    assert "optimization-history" in page.plots and "learning-curves" in page.plots
    if not trials[0][0]:
        assert "parallel-coordinate" not in page.plots
        page.note("The study searches no parameters.")


def test_importances_of_a_large_study_use_its_newest_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "IMPORTANCE_MAX_TRIALS", 3)
    page = Page(render_report(single_study(n=7), single_spec()))

    assert "param-importances" in page.plots
    page.note("From the 3 most recent of 6 completed trials.")


def test_a_plot_that_fails_becomes_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("cannot draw <this>")

    monkeypatch.setattr(optuna.visualization, "plot_parallel_coordinate", broken)
    html = render_report(single_study(), single_spec())
    page = Page(html)

    assert "parallel-coordinate" not in page.plots
    assert page.plot_count == len(SINGLE_PLOTS) - 1 == len(page.plots)
    page.note("This plot could not be drawn: ValueError: cannot draw <this>")
    assert "cannot draw <this>" not in html  # escaped in the page's source


def test_user_strings_are_escaped() -> None:
    name = '<script>alert("tf-xss-name")</script>'
    reason = '<img src=x onerror=alert("tf-xss-reason")>'
    study = optuna.create_study(study_name=name, direction="maximize")
    bold = ACTIVATIONS[2]
    params = {"training.lr": 0.01, "model.width": 32, "model.activation": bold}
    study.add_trial(make_trial(params, [0.9], epochs=2))
    study.add_trial(make_trial({**params, "model.activation": "relu"}, [0.8], epochs=2))
    study.add_trial(make_trial({"training.lr": 0.05}, None, TrialState.FAIL, fail_reason=reason))
    html = render_report(study, single_spec(name), status="failed", status_reason=f"{reason} again")
    page = Page(html)

    for raw in (name, reason, bold):
        assert raw not in html  # not in the markup, not in a plot's data
        assert raw in page.text  # but shown, as text
    assert "img" not in page.tags
    assert [s for s in page.scripts if "tf-xss" in s] == []


def test_the_report_is_self_contained() -> None:
    multi = optuna.create_study(directions=["maximize", "minimize"])
    multi.add_trial(make_trial({"training.lr": 0.01}, [0.9, 0.3]))
    multi.add_trial(make_trial({"training.lr": 0.02}, [0.8, 0.2]))
    spec = {
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "train_loss", "direction": "minimize"},
        ]
    }
    for html in (render_report(single_study(), single_spec()), render_report(multi, spec)):
        page = Page(html)
        assert page.plot_count and page.plot_count > 0
        # Nothing is fetched: no script src, no stylesheet link, no image, no frame.
        assert page.urls == []
        assert "link" not in page.tags and "iframe" not in page.tags
        for script in page.scripts[-(page.plot_count) :]:
            assert "http://" not in script and "https://" not in script
        assert html.lower().count("<script src") == 0
