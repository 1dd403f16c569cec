"""The plots of a report, each from Optuna's visualization on a snapshot of the study; a note
instead of a plot the trials cannot support yet."""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import trial_curve
from search.results import best_trial, pareto_front
from service.reports.axes import (
    constant_range,
    constant_value,
    integer_axis,
    parallel_integer_ticks,
)
from service.reports.html import Page, caption, e, fmt, note, table
from service.reports.importance import METHOD, importance_figure

# PED-ANOVA takes about 1.3 s for 10,000 trials on one core. optuna-dashboard reads every
# trial; a larger study's importances come from its newest, the sampler's better-informed ones.
IMPORTANCE_MAX_TRIALS = 10_000
TABLE_MAX_ROWS = 100  # rows of the failed-trial and Pareto tables; the rest are counted
_METRIC_NAMES = "study:metric_names"  # what Study.set_metric_names stores


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "minimize" or "maximize"


def objectives_of(study: optuna.Study, spec: Mapping[str, Any]) -> list[Objective]:
    """The study's objectives, named by its tuneforge spec (or by Optuna where it has none)."""
    listed = spec.get("objectives") or ([spec["objective"]] if spec.get("objective") else [])
    if len(listed) == len(study.directions):
        return [Objective(str(o["metric"]), str(o["direction"])) for o in listed]
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return [
        Objective(name, "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize")
        for name, d in zip(names, study.directions, strict=True)
    ]


def snapshot(
    study: optuna.Study, objectives: Sequence[Objective], trials: Sequence[FrozenTrial]
) -> optuna.Study:
    """An in-memory copy of ``study`` holding ``trials``, its objectives named.

    Every plot reads the same trials (a running study's plots agree with each other and with
    the header), and the service's storage is read once instead of once per plot.
    """
    # Through the storage: create_study would log every copy, set_metric_names warn that it
    # is experimental. The attribute's key is Optuna's storage format, the one it reads.
    storage = optuna.storages.InMemoryStorage()
    sid = storage.create_new_study(study.directions, study.study_name)
    storage.set_study_system_attr(sid, _METRIC_NAMES, [o.metric for o in objectives])
    copy = optuna.load_study(study_name=study.study_name, storage=storage)
    copy.add_trials(trials)
    return copy


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and all(math.isfinite(v) for v in t.values)
    ]


def best_of(trials: Sequence[FrozenTrial], objectives: Sequence[Objective]) -> FrozenTrial | None:
    """The best trial; with several objectives the front's best in the first one."""
    dirs = [o.direction for o in objectives]
    if len(dirs) == 1:
        return best_trial(list(trials), dirs[0])
    front = pareto_front(list(trials), dirs)
    if not front:
        return None
    sign = 1.0 if dirs[0] == "maximize" else -1.0
    return max(front, key=lambda t: sign * t.values[0])


def _value(i: int) -> Callable[[FrozenTrial], float]:
    """The target of objective ``i`` (plots of a multi-objective study need one)."""
    return lambda t: t.values[i]


def _per_objective(
    page: Page,
    name: str,
    plot: Callable[..., Any],
    study: optuna.Study,
    objectives: Sequence[Objective],
) -> str:
    """``plot`` of the study: one for a single objective, one per objective otherwise."""
    if len(objectives) == 1:
        return page.plot(name, partial(plot, study, target_name=objectives[0].metric))
    return "".join(
        page.plot(name, partial(plot, study, target=_value(i), target_name=o.metric))
        for i, o in enumerate(objectives)
    )


def _history_figure(study: optuna.Study, **options: Any) -> Any:
    """Optuna's optimization history, ticking whole trial numbers."""
    fig = optuna.visualization.plot_optimization_history(study, **options)
    fig.update_xaxes(**integer_axis([t.number for t in study.get_trials(deepcopy=False)]))
    return fig


def history(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    if not _complete(study.get_trials(deepcopy=False)):
        return note("No trial has completed yet: the history starts with the first.")
    return _per_objective(page, "optimization-history", _history_figure, study, objectives)


def _intermediate_figure(study: optuna.Study, metric: str) -> Any:
    """Optuna's intermediate values: one line per trial, named in a legend, over whole epochs."""
    fig = optuna.visualization.plot_intermediate_values(study)
    epochs = [s for t in study.get_trials(deepcopy=False) for s in t.intermediate_values]
    fig.update_layout(showlegend=True, legend_title_text="Trial")
    fig.update_xaxes(title_text="Epoch", **integer_axis(epochs))
    fig.update_yaxes(title_text=metric)
    return fig


def intermediate(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        if len(study.directions) > 1:  # Optuna's trial.report takes one objective only
            return note("Trials of a study with several objectives report no values per epoch.")
        return note("No trial has reported intermediate values (the objective per epoch) yet.")
    return page.plot(
        "intermediate-values", lambda: _intermediate_figure(study, objectives[0].metric)
    )


def _parallel_figure(study: optuna.Study, **options: Any) -> Any:
    """Optuna's parallel coordinates, integer parameters ticking whole numbers."""
    fig = optuna.visualization.plot_parallel_coordinate(study, **options)
    pick = options.get("target") or (lambda t: t.value)
    drawn = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if math.isfinite(pick(t))
    ]
    return parallel_integer_ticks(fig, drawn)


def parallel(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    done = _complete(study.get_trials(deepcopy=False))
    if not done:
        return note("No trial has completed yet.")
    if not any(t.params for t in done):
        return note("The study searches no parameters.")
    return _per_objective(page, "parallel-coordinate", _parallel_figure, study, objectives)


def importances(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    done = _complete(study.get_trials(deepcopy=False))
    # A parameter that never changed explains nothing (PED-ANOVA would call every parameter
    # equally important).
    seen: dict[str, set[str]] = {}
    for t in done:
        for name, value in t.params.items():
            seen.setdefault(name, set()).add(repr(value))
    if len(done) < 2 or not any(len(values) > 1 for values in seen.values()):
        return note(
            "Parameter importances need at least two completed trials whose parameters "
            f"differ ({len(done)} completed so far)."
        )
    used, told = study, ""
    if len(done) > IMPORTANCE_MAX_TRIALS:
        used = snapshot(study, objectives, done[-IMPORTANCE_MAX_TRIALS:])
        told = note(
            f"From the {IMPORTANCE_MAX_TRIALS} most recent of {len(done)} completed trials."
        )
    return told + "".join(
        caption(METHOD.format(metric=o.metric))
        + page.plot("param-importances", partial(importance_figure, used, i, o.metric))
        for i, o in enumerate(objectives)
    )


def pareto(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    trials = study.get_trials(deepcopy=False)
    front = pareto_front(trials, [o.direction for o in objectives])
    if not front:
        return note("No trial has completed yet: the front starts with the first.")
    names = [o.metric for o in objectives]
    if len(objectives) <= 3:
        plot = page.plot(
            "pareto-front",
            lambda: optuna.visualization.plot_pareto_front(study, target_names=names),
        )
    else:
        plot = note(f"A front of {len(objectives)} objectives is listed, not drawn (at most 3).")
    rows = [
        [e(t.number), *(fmt(v) for v in t.values), e(_params_text(t.params))]
        for t in front[:TABLE_MAX_ROWS]
    ]
    return plot + table(["Trial", *names, "Parameters"], rows, len(front))


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def _curve_points(trial: FrozenTrial) -> list[Mapping[str, Any]]:
    return [p for p in trial_curve(trial) if isinstance(p, Mapping) and "epoch" in p]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _curves_figure(points: Sequence[Mapping[str, Any]]) -> Any:
    """One panel and one line per metric: losses, accuracies and learning rates differ by
    orders of magnitude, so a shared axis would flatten most of them. A metric that never
    changes (a constant learning rate) says so in its title, on a range around its value."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = list(dict.fromkeys(k for p in points for k in p if k != "epoch"))
    series = {m: [_number(p.get(m)) for p in points] for m in metrics}
    constants = {m: constant_value(series[m]) for m in metrics}
    titles = [m if constants[m] is None else f"{m} (constant {constants[m]:.6g})" for m in metrics]
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    height = 80 + 280 * rows
    # No panel where no metric is left (an odd count's last cell).
    cells: list[list[dict[str, Any] | None]] = [
        [{} if r * cols + c < len(metrics) else None for c in range(cols)] for r in range(rows)
    ]
    # About 100 px between rows: room for the x-axis ticks and title, and the next panel's title.
    fig = make_subplots(
        rows=rows,
        cols=cols,
        specs=cells,
        subplot_titles=titles,
        vertical_spacing=min(0.3, 100 / height),
    )
    epochs = [p["epoch"] for p in points]
    ticks = integer_axis([_number(e) or 0.0 for e in epochs])
    for i, metric in enumerate(metrics):
        at = {"row": i // cols + 1, "col": i % cols + 1}
        fig.add_trace(
            go.Scatter(x=epochs, y=series[metric], mode="lines+markers", name=metric), **at
        )
        fig.update_xaxes(title_text="Epoch", **ticks, **at)
        value = constants[metric]
        if value is not None:
            fig.update_yaxes(range=constant_range(value), **at)
    fig.update_layout(height=height, showlegend=False, margin={"t": 60, "b": 50})
    return fig


def curves(page: Page, study: optuna.Study, objectives: Sequence[Objective]) -> str:
    best = best_of(study.get_trials(deepcopy=False), objectives)
    if best is None:
        return note("No trial has completed yet.")
    which = f"Trial {best.number}" + (
        f", the front's best in {objectives[0].metric}." if len(objectives) > 1 else "."
    )
    points = _curve_points(best)
    if not points:
        return note(f"{which} It stored no learning curve.")
    return f"<p>{e(which)}</p>" + page.plot("learning-curves", lambda: _curves_figure(points))
