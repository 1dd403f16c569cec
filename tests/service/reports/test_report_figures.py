"""The report's figures, read as plotly objects (no pixels): axis titles, legends, whole-number
ticks on integer axes, a readable range for a constant series, and parameter importances equal
to optuna-dashboard's own for the same study."""

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial
from optuna_dashboard import _importance as dashboard
from optuna_dashboard._inmemory_cache import InMemoryCache

from service.reports.axes import integer_step
from service.reports.html import Page
from service.reports.report import render_report
from tests.service.reports._report import Page as Parsed

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

EPOCHS = 3  # plotly alone would tick 1.5 and 2.5 between them
LR = 0.003  # constant: the learning-rate panel is one flat line
DISTRIBUTIONS = {
    "training.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.hidden_layers": IntDistribution(1, 3),
    "model.width": IntDistribution(16, 64),
    "model.activation": CategoricalDistribution(["relu", "gelu", "tanh"]),
    "model.dropout": FloatDistribution(0.0, 0.5),  # conditional: only with gelu
}
SPEC = {"objectives": [{"metric": "val_accuracy", "direction": "maximize"}]}


def trial(i: int, values: list[float]) -> FrozenTrial:
    activation = ["relu", "gelu", "tanh"][i % 3]
    params: dict[str, Any] = {
        "training.lr": 10 ** (-4 + (i * 7 % 11) / 4),
        "model.hidden_layers": 1 + i % 3,
        "model.width": 16 + (i * 13) % 49,
        "model.activation": activation,
    }
    if activation == "gelu":
        params["model.dropout"] = (i % 5) / 10
    curve = [
        {"epoch": e, "val_loss": 1.0 / e, "val_accuracy": values[0] * e / EPOCHS, "lr": LR}
        for e in range(1, EPOCHS + 1)
    ]
    return optuna.trial.create_trial(
        params=params,
        distributions={k: DISTRIBUTIONS[k] for k in params},
        values=values,
        intermediate_values={p["epoch"]: p["val_accuracy"] for p in curve},
        user_attrs={"curve": curve},
    )


def study_of(n: int, directions: list[str]) -> optuna.Study:
    """``n`` trials whose objectives depend mostly on the width and the activation."""
    study = optuna.create_study(directions=directions)
    study.set_metric_names(["val_accuracy", "latency_ms"][: len(directions)])
    for i in range(n):
        t = trial(i, [0.0])
        width, act = t.params["model.width"], t.params["model.activation"]
        accuracy = 0.5 + width / 200 + (0.1 if act == "relu" else 0) + 0.01 * math.sin(i)
        values = [accuracy, width * 0.01 + 0.002 * math.cos(i)][: len(directions)]
        study.add_trial(trial(i, values))
    return study


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Every figure a report draws, by the plot's name, as plotly built it."""
    drawn: dict[str, list[Any]] = defaultdict(list)
    real = Page.plot

    def plot(self: Page, name: str, make: Any) -> str:
        def keep() -> Any:
            fig = make()
            drawn[name].append(fig)
            return fig

        return real(self, name, keep)

    monkeypatch.setattr(Page, "plot", plot)
    yield drawn


def assert_whole_ticks(axis: Any) -> None:
    assert axis.tickmode == "linear" and axis.tick0 == 0
    assert isinstance(axis.dtick, int) and axis.dtick >= 1


def test_the_learning_curves_have_epoch_axes_and_a_constant_lr_shows_its_value(
    figures: dict[str, list[Any]],
) -> None:
    render_report(study_of(6, ["maximize"]), SPEC)
    (fig,) = figures["learning-curves"]

    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["val_loss", "val_accuracy", f"lr (constant {LR:.6g})"]
    xaxes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
    assert len(xaxes) == len(titles)
    for axis in xaxes:
        assert axis.title.text == "Epoch"
        assert_whole_ticks(axis)
    # The constant panel: a range around its value, not plotly's -1..1 (where 0.003 looks
    # like 0); the changing panels keep plotly's autorange.
    lr_trace = next(t for t in fig.data if t.name == "lr")
    low, high = fig.layout[lr_trace.yaxis.replace("y", "yaxis")].range
    assert 0 < low < LR < high < 2 * LR
    assert fig.layout.yaxis.range is None and fig.layout.yaxis2.range is None


def test_intermediate_values_have_a_legend_of_trials_and_whole_epochs(
    figures: dict[str, list[Any]],
) -> None:
    study = study_of(4, ["maximize"])
    render_report(study, SPEC)
    (fig,) = figures["intermediate-values"]

    assert fig.layout.showlegend is True
    assert fig.layout.legend.title.text == "Trial"
    assert sorted(t.name for t in fig.data) == sorted(f"Trial{t.number}" for t in study.trials)
    assert fig.layout.xaxis.title.text == "Epoch"
    assert fig.layout.yaxis.title.text == "val_accuracy"
    assert_whole_ticks(fig.layout.xaxis)
    (history,) = figures["optimization-history"]
    assert history.layout.xaxis.title.text == "Trial"
    assert_whole_ticks(history.layout.xaxis)


def axis_ticks(fig: Any, label: str) -> dict[str, float]:
    """The tick labels of one parallel-coordinates axis, with their heights (0 to 1)."""
    axis = list(fig.layout.xaxis.ticktext).index(label)
    return {a.text: a.y for a in fig.layout.annotations if a.x == axis}


def test_integer_parameters_tick_whole_numbers_in_parallel_coordinates(
    figures: dict[str, list[Any]],
) -> None:
    render_report(study_of(9, ["maximize"]), SPEC)
    (fig,) = figures["parallel-coordinate"]

    # 1..3: Optuna's five even ticks would be 1, 1.5, 2, 2.5, 3.
    assert axis_ticks(fig, "model.hidden_layers") == {"1": 0.0, "2": 0.5, "3": 1.0}
    width = axis_ticks(fig, "model.width")
    values = {int(text): y for text, y in width.items()}  # every tick a whole number
    low, high = min(values), max(values)
    assert (values[low], values[high]) == (0.0, 1.0) and len(values) >= 3
    for v, y in values.items():  # each at its own height on the axis
        assert y == pytest.approx((v - low) / (high - low))
    # A float parameter keeps Optuna's ticks; a conditional one its "None" tick.
    assert "None" in axis_ticks(fig, "model.dropout")
    assert any("." in text for text in axis_ticks(fig, "model.dropout") if text != "None")


@pytest.mark.parametrize(
    ("low", "high", "step"), [(1, 2, 1), (1, 3, 1), (0, 8, 1), (1, 20, 5), (1, 200, 50)]
)
def test_integer_steps_are_whole_and_few(low: int, high: int, step: int) -> None:
    assert integer_step(low, high) == step


def dashboards(study: optuna.Study, objective: int) -> dict[str, float]:
    """What optuna-dashboard 0.21 shows for ``study``: its own function, its cache emptied."""
    found = dashboard.get_param_importance_from_trials_cache(
        InMemoryCache(), study._storage, study._study_id, objective, study.get_trials()
    )
    return {row["name"]: row["importance"] for row in found}


@pytest.mark.parametrize("directions", [["maximize"], ["minimize"], ["maximize", "minimize"]])
def test_importances_equal_optuna_dashboards(
    figures: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch, directions: list[str]
) -> None:
    monkeypatch.setattr(dashboard, "param_importance_cache", {})
    study = study_of(30, directions)
    metrics = ["val_accuracy", "latency_ms"][: len(directions)]
    spec = {
        "objectives": [
            {"metric": m, "direction": d} for m, d in zip(metrics, directions, strict=True)
        ]
    }
    page = Parsed(render_report(study, spec))

    drawn = figures["param-importances"]
    assert len(drawn) == len(directions)  # one chart per objective, as the dashboard has
    for i, fig in enumerate(drawn):
        (bars,) = fig.data
        shown = dict(zip(bars.y, bars.x, strict=True))
        expected = dashboards(study, i)
        assert set(shown) == set(DISTRIBUTIONS)  # the conditional parameter too
        assert shown == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert bars.name == metrics[i]
        # Not a uniform split: the width matters, the learning rate hardly.
        assert shown["model.width"] > 2 * shown["training.lr"]
        assert "PED-ANOVA" in fig.layout.title.text
        assert f"the best 10% of {metrics[i]}" in page.text
