"""A study's report: one self-contained HTML file with its summary and plots.

The file embeds plotly.js once and every figure after it, so it opens from disk or a mail
attachment with no network at all: no CDN, no fonts, no MathJax. Each plot that the study's
trials cannot support yet (no completed trial, no parameters, no per-epoch values) is replaced
by a one-sentence note, so a report renders for any study, even one with no trial.
"""

import html
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.offline
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from service.views import best_trial, pareto_front, trial_counts

log = logging.getLogger(__name__)

# fANOVA fits a random forest: about 3 s for 300 trials on one core. Later trials are the
# sampler's better-informed ones, so a large study's importances come from its newest.
IMPORTANCE_MAX_TRIALS = 300
TABLE_MAX_ROWS = 100  # rows of the failed-trial and Pareto tables; the rest are counted
# The report stays offline and private: no Plotly logo (a link to plotly.com) and no "Share
# chart..." button, which plotly.js 3 shows by default and which uploads the figure's data to
# Plotly Cloud.
_PLOT_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "plotlyServerURL": "",
    "responsive": True,
}
_METRIC_NAMES = "study:metric_names"  # what Study.set_metric_names stores

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 2rem;
       color: #222; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.tf-note { color: #666; font-style: italic; }
.tf-plot { margin: 0.5rem 0 1.5rem; }
.tf-muted { color: #666; }
"""


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    """plotly.js's source (about 4.8 MB), read once per process."""
    return str(plotly.offline.get_plotlyjs())


def _e(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    """A number in six significant digits, anything else as it prints; escaped."""
    if isinstance(value, float):
        return _e(f"{value:.6g}")
    return _e(value)


def _note(text: str) -> str:
    return f'<p class="tf-note">{_e(text)}</p>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], total: int) -> str:
    """A table of pre-escaped cells, with a line counting the rows left out."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    more = total - len(rows)
    tail = f'<p class="tf-muted">and {more} more</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


@dataclass(frozen=True)
class _Objective:
    metric: str
    direction: str  # "minimize" or "maximize"


def _objectives(study: optuna.Study, spec: Mapping[str, Any]) -> list[_Objective]:
    """The study's objectives, named by its tuneforge spec (or by Optuna where it has none)."""
    listed = spec.get("objectives") or ([spec["objective"]] if spec.get("objective") else [])
    if len(listed) == len(study.directions):
        return [_Objective(str(o["metric"]), str(o["direction"])) for o in listed]
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return [
        _Objective(name, "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize")
        for name, d in zip(names, study.directions, strict=True)
    ]


def _snapshot(
    study: optuna.Study, objectives: Sequence[_Objective], trials: Sequence[FrozenTrial]
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


class _Page:
    """Collects the plots of one report: each is a ``div.tf-plot`` with a stable id."""

    def __init__(self) -> None:
        self.plots = 0

    def plot(self, name: str, make: Callable[[], Any]) -> str:
        """The figure ``make()`` builds, as HTML; a note if building it fails."""
        try:
            fig = make()
        except Exception as exc:  # one plot that cannot be drawn must not cost the report
            log.warning("report plot %s failed", name, exc_info=True)
            return _note(f"This plot could not be drawn: {type(exc).__name__}: {exc}")
        self.plots += 1
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"tf-plot-{self.plots}",
            config=_PLOT_CONFIG,
        )
        return f'<div class="tf-plot" data-plot="{_e(name)}">{div}</div>'


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and all(math.isfinite(v) for v in t.values)
    ]


def _best_of(trials: Sequence[FrozenTrial], objectives: Sequence[_Objective]) -> FrozenTrial | None:
    """The best trial; with several objectives the front's best in the first one."""
    dirs = [o.direction for o in objectives]
    if len(dirs) == 1:
        return best_trial(list(trials), dirs[0])
    front = pareto_front(list(trials), dirs)
    if not front:
        return None
    sign = 1.0 if dirs[0] == "maximize" else -1.0
    return max(front, key=lambda t: sign * t.values[0])


def _header(
    title: str,
    spec: Mapping[str, Any],
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    objectives: Sequence[_Objective],
    info: Mapping[str, object],
) -> str:
    counts = {k: v for k, v in trial_counts(list(trials)).items() if v}
    rows: list[tuple[str, str]] = [(k, _e(v)) for k, v in info.items() if v is not None]
    rows.append(("Optuna study", _e(study.study_name)))
    rows.append(
        ("Objectives", ", ".join(f"{_e(o.metric)} ({_e(o.direction)})" for o in objectives))
    )
    algorithm = spec.get("algorithm")
    if isinstance(algorithm, Mapping) and algorithm.get("name"):
        rows.append(("Algorithm", _e(algorithm["name"])))
    task = spec.get("task")
    if isinstance(task, Mapping):
        dataset = task.get("dataset") or {}
        model = task.get("model") or {}
        data_name = dataset.get("name") or dataset.get("upload_id")
        if data_name:
            rows.append(("Dataset", _e(data_name)))
        if model.get("family"):
            rows.append(("Model family", _e(model["family"])))
    by_state = ", ".join(f"{_e(k)} {v}" for k, v in counts.items())
    rows.append(("Trials", f"{len(trials)}" + (f" ({by_state})" if by_state else "")))

    best = _best_of(trials, objectives)
    if len(objectives) == 1:
        rows.append(("Best value", _fmt(best.value) if best else "none yet"))
        rows.append(("Best trial", _e(best.number) if best else "none yet"))
    else:
        front = pareto_front(list(trials), [o.direction for o in objectives])
        rows.append(("Pareto front", f"{len(front)} trials"))
    lines = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    params = ""
    if best is not None and best.params and len(objectives) == 1:
        params = "<h3>Best parameters</h3>" + _table(
            ["Parameter", "Value"],
            [[_e(k), _fmt(v)] for k, v in sorted(best.params.items())],
            len(best.params),
        )
    return f'<header><h1>{_e(title)}</h1><table class="tf-summary">{lines}</table>{params}</header>'


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{_e(key)}"><h2>{_e(title)}</h2>{body}</section>'


def _value(i: int) -> Callable[[FrozenTrial], float]:
    """The target of objective ``i`` (plots of a multi-objective study need one)."""
    return lambda t: t.values[i]


def _per_objective(
    page: _Page,
    name: str,
    plot: Callable[..., Any],
    study: optuna.Study,
    objectives: Sequence[_Objective],
) -> str:
    """``plot`` of the study: one for a single objective, one per objective otherwise."""
    if len(objectives) == 1:
        return page.plot(name, partial(plot, study, target_name=objectives[0].metric))
    return "".join(
        page.plot(name, partial(plot, study, target=_value(i), target_name=o.metric))
        for i, o in enumerate(objectives)
    )


def _history(page: _Page, study: optuna.Study, objectives: Sequence[_Objective]) -> str:
    if not _complete(study.get_trials(deepcopy=False)):
        return _note("No trial has completed yet: the history starts with the first.")
    return _per_objective(
        page,
        "optimization-history",
        optuna.visualization.plot_optimization_history,
        study,
        objectives,
    )


def _intermediate(page: _Page, study: optuna.Study) -> str:
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        if len(study.directions) > 1:  # Optuna's trial.report takes one objective only
            return _note("Trials of a study with several objectives report no values per epoch.")
        return _note("No trial has reported intermediate values (the objective per epoch) yet.")
    return page.plot(
        "intermediate-values", lambda: optuna.visualization.plot_intermediate_values(study)
    )


def _parallel(page: _Page, study: optuna.Study, objectives: Sequence[_Objective]) -> str:
    done = _complete(study.get_trials(deepcopy=False))
    if not done:
        return _note("No trial has completed yet.")
    if not any(t.params for t in done):
        return _note("The study searches no parameters.")
    return _per_objective(
        page,
        "parallel-coordinate",
        optuna.visualization.plot_parallel_coordinate,
        study,
        objectives,
    )


def _importances(page: _Page, study: optuna.Study, objectives: Sequence[_Objective]) -> str:
    done = _complete(study.get_trials(deepcopy=False))
    # fANOVA compares trials over the parameters all of them have; one that never changed
    # explains nothing.
    common = set.intersection(*(set(t.params) for t in done)) if done else set()
    varying = sorted(p for p in common if len({repr(t.params[p]) for t in done}) > 1)
    if len(done) < 2 or not varying:
        return _note(
            "Parameter importances need at least two completed trials whose parameters "
            f"differ ({len(done)} completed so far)."
        )
    used, note = study, ""
    if len(done) > IMPORTANCE_MAX_TRIALS:
        used = _snapshot(study, objectives, done[-IMPORTANCE_MAX_TRIALS:])
        note = _note(
            f"From the {IMPORTANCE_MAX_TRIALS} most recent of {len(done)} completed trials."
        )
    # A fixed seed: the same study gives the same report.
    return note + page.plot(
        "param-importances",
        lambda: optuna.visualization.plot_param_importances(
            used,
            evaluator=FanovaImportanceEvaluator(seed=0),
            params=varying,
            target_name=objectives[0].metric,
        ),
    )


def _pareto(page: _Page, study: optuna.Study, objectives: Sequence[_Objective]) -> str:
    trials = study.get_trials(deepcopy=False)
    front = pareto_front(trials, [o.direction for o in objectives])
    if not front:
        return _note("No trial has completed yet: the front starts with the first.")
    names = [o.metric for o in objectives]
    if len(objectives) <= 3:
        plot = page.plot(
            "pareto-front",
            lambda: optuna.visualization.plot_pareto_front(study, target_names=names),
        )
    else:
        plot = _note(f"A front of {len(objectives)} objectives is listed, not drawn (at most 3).")
    rows = [
        [_e(t.number), *(_fmt(v) for v in t.values), _e(_params_text(t.params))]
        for t in front[:TABLE_MAX_ROWS]
    ]
    return plot + _table(["Trial", *names, "Parameters"], rows, len(front))


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def _curve_points(trial: FrozenTrial) -> list[Mapping[str, Any]]:
    curve = trial.user_attrs.get("curve")
    if not isinstance(curve, list):
        return []
    return [p for p in curve if isinstance(p, Mapping) and "epoch" in p]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _curves_figure(points: Sequence[Mapping[str, Any]]) -> Any:
    """One panel and one line per metric: losses, accuracies and learning rates differ by
    orders of magnitude, so a shared axis would flatten most of them."""
    metrics = list(dict.fromkeys(k for p in points for k in p if k != "epoch"))
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    height = 80 + 250 * rows
    # About 70 px between rows: room for the x-axis ticks and the next panel's title.
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=metrics, vertical_spacing=min(0.3, 70 / height)
    )
    epochs = [p["epoch"] for p in points]
    for i, metric in enumerate(metrics):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[_number(p.get(metric)) for p in points],
                mode="lines+markers",
                name=metric,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_layout(height=height, showlegend=False, margin={"t": 60, "b": 40})
    return fig


def _curves(page: _Page, study: optuna.Study, objectives: Sequence[_Objective]) -> str:
    best = _best_of(study.get_trials(deepcopy=False), objectives)
    if best is None:
        return _note("No trial has completed yet.")
    which = f"Trial {best.number}" + (
        f", the front's best in {objectives[0].metric}." if len(objectives) > 1 else "."
    )
    points = _curve_points(best)
    if not points:
        return _note(f"{which} It stored no learning curve.")
    return f"<p>{_e(which)}</p>" + page.plot("learning-curves", lambda: _curves_figure(points))


def _failures(trials: Sequence[FrozenTrial]) -> str:
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if not failed:
        return "<p>No trial failed.</p>"
    rows = [
        [_e(t.number), _e(t.user_attrs.get("fail_reason") or "(no reason recorded)")]
        for t in failed[:TABLE_MAX_ROWS]
    ]
    return _table(["Trial", "Reason"], rows, len(failed))


def render_report(
    study: optuna.Study,
    spec: Mapping[str, Any],
    *,
    name: str | None = None,
    study_id: int | None = None,
    status: str | None = None,
    status_reason: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """Render a study's report as one self-contained HTML document.

    Sections: a header (name, status, trial counts, best value and parameters), the
    optimization history, the intermediate values, parallel coordinates, parameter
    importances, the Pareto front (several objectives only), the best trial's learning curves
    and the failed trials with their reasons. A plot the trials cannot support yet is a short
    note instead. Every string from the user or the trials is HTML-escaped.

    Args:
        study: The Optuna study (for instance ``optuna.load_study`` on the service's storage).
        spec: The study's tuneforge spec; its ``objectives`` (metric, direction) name the
            values, its ``name``, ``algorithm`` and ``task`` fill the header.
        name: The title; defaults to the spec's ``name``, then the Optuna study's name.
        study_id: The tuneforge study id, shown in the header.
        status: The tuneforge status (``running``, ``completed``, ...), shown in the header.
        status_reason: Why the study has its status, shown after it.
        generated_at: The time the header states; defaults to now (UTC).

    Returns:
        The HTML document. ``main[data-plot-count]`` says how many plots it holds; each is a
        ``div.tf-plot`` around plotly's own ``div``.
    """
    objectives = _objectives(study, spec)
    trials = study.get_trials(deepcopy=False)
    snap = _snapshot(study, objectives, trials)
    title = name or str(spec.get("name") or study.study_name)
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    shown = f"{status} ({status_reason})" if status and status_reason else status
    info: dict[str, object] = {"Study id": study_id, "Status": shown, "Generated": when}

    page = _Page()
    sections = [
        _header(title, spec, study, trials, objectives, info),
        _section("history", "Optimization history", _history(page, snap, objectives)),
        _section("intermediate", "Intermediate values", _intermediate(page, snap)),
        _section("parallel", "Parallel coordinates", _parallel(page, snap, objectives)),
        _section("importances", "Parameter importances", _importances(page, snap, objectives)),
    ]
    if len(objectives) > 1:
        sections.append(_section("pareto", "Pareto front", _pareto(page, snap, objectives)))
    sections += [
        _section("curves", "Learning curves of the best trial", _curves(page, snap, objectives)),
        _section("failures", "Failed trials", _failures(trials)),
    ]
    # plotly.js only where a plot needs it; the global config first, as plotly's own files do.
    script = (
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f'<script charset="utf-8">{_plotly_js()}</script>'
        if page.plots
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}: tuneforge report</title><style>{_STYLE}</style>{script}</head>"
        f'<body><main class="tf-report" data-plot-count="{page.plots}">'
        + "".join(sections)
        + "</main></body></html>\n"
    )
