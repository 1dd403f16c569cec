"""A study's report: one self-contained HTML file with its plots (plotly.js inline, no
network, nothing sent anywhere)."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.attrs import trial_attr
from search.constraints import FEASIBLE, REASON
from search.results import pareto_front, trial_counts
from service.reports.html import STYLE, Page, e, fmt, plotly_js, section, table
from service.reports.plots import (
    TABLE_MAX_ROWS,
    Objective,
    best_of,
    curves,
    history,
    importances,
    intermediate,
    objectives_of,
    parallel,
    pareto,
    snapshot,
)


def _header(
    title: str,
    spec: Mapping[str, Any],
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    objectives: Sequence[Objective],
    info: Mapping[str, object],
) -> str:
    counts = {k: v for k, v in trial_counts(list(trials)).items() if v}
    rows: list[tuple[str, str]] = [(k, e(v)) for k, v in info.items() if v is not None]
    rows.append(("Optuna study", e(study.study_name)))
    rows.append(("Objectives", ", ".join(f"{e(o.metric)} ({e(o.direction)})" for o in objectives)))
    algorithm = spec.get("algorithm")
    if isinstance(algorithm, Mapping) and algorithm.get("name"):
        rows.append(("Algorithm", e(algorithm["name"])))
    task = spec.get("task")
    if isinstance(task, Mapping):
        dataset = task.get("dataset") or {}
        model = task.get("model") or {}
        data_name = dataset.get("name") or dataset.get("upload_id")
        if data_name:
            rows.append(("Dataset", e(data_name)))
        if model.get("family"):
            rows.append(("Model family", e(model["family"])))
        if task.get("kind") == "external":
            metrics = ", ".join(str(m) for m in task.get("metrics") or [])
            rows.append(("Evaluated by", f"its clients (external trials), reporting {e(metrics)}"))
    by_state = ", ".join(f"{e(k)} {v}" for k, v in counts.items())
    rows.append(("Trials", f"{len(trials)}" + (f" ({by_state})" if by_state else "")))

    best = best_of(trials, objectives)
    if len(objectives) == 1:
        rows.append(("Best value", fmt(best.value) if best else "none yet"))
        rows.append(("Best trial", e(best.number) if best else "none yet"))
    else:
        front = pareto_front(list(trials), [o.direction for o in objectives])
        rows.append(("Pareto front", f"{len(front)} trials"))
    lines = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    params = ""
    if best is not None and best.params and len(objectives) == 1:
        params = "<h3>Best parameters</h3>" + table(
            ["Parameter", "Value"],
            [[e(k), fmt(v)] for k, v in sorted(best.params.items())],
            len(best.params),
        )
    return f'<header><h1>{e(title)}</h1><table class="tf-summary">{lines}</table>{params}</header>'


def _failures(trials: Sequence[FrozenTrial]) -> str:
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if not failed:
        return "<p>No trial failed.</p>"
    rows = [
        [e(t.number), e(trial_attr(t, "fail_reason") or "(no reason recorded)")]
        for t in failed[:TABLE_MAX_ROWS]
    ]
    return table(["Trial", "Reason"], rows, len(failed))


def _feasibility(spec: Mapping[str, Any], trials: Sequence[FrozenTrial]) -> str:
    """The study's constraints, and each trial that broke one (rejected before training or
    measured infeasible) with its reason."""
    given = spec.get("constraints") or []
    bounds = [
        f"{c['metric']} \u2264 {c['le']:g}"
        if c.get("le") is not None
        else f"{c['metric']} \u2265 {c['ge']:g}"
        for c in given
    ]
    checked = [t for t in trials if FEASIBLE in t.user_attrs]
    bad = [t for t in checked if t.user_attrs[FEASIBLE] is False]
    early = sum(t.state == TrialState.PRUNED for t in bad)
    summary = (
        f"<p>Constraints: {e(', '.join(bounds))}. Feasible: {len(checked) - len(bad)} of "
        f"{len(checked)} trials checked; infeasible: {len(bad)} ({early} rejected before "
        "training, 0 epochs).</p>"
    )
    rows = [
        [
            e(t.number),
            e(t.state.name),
            e(trial_attr(t, REASON) or trial_attr(t, "infeasible_reason") or ""),
        ]
        for t in bad[:TABLE_MAX_ROWS]
    ]
    return summary + (table(["Trial", "State", "Reason"], rows, len(bad)) if bad else "")


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
    objectives = objectives_of(study, spec)
    trials = study.get_trials(deepcopy=False)
    snap = snapshot(study, objectives, trials)
    title = name or str(spec.get("name") or study.study_name)
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    shown = f"{status} ({status_reason})" if status and status_reason else status
    info: dict[str, object] = {"Study id": study_id, "Status": shown, "Generated": when}

    page = Page()
    sections = [
        _header(title, spec, study, trials, objectives, info),
        section("history", "Optimization history", history(page, snap, objectives)),
        section("intermediate", "Intermediate values", intermediate(page, snap, objectives)),
        section("parallel", "Parallel coordinates", parallel(page, snap, objectives)),
        section("importances", "Parameter importances", importances(page, snap, objectives)),
    ]
    if len(objectives) > 1:
        sections.append(section("pareto", "Pareto front", pareto(page, snap, objectives)))
    sections += [
        section("curves", "Learning curves of the best trial", curves(page, snap, objectives)),
        section("failures", "Failed trials", _failures(trials)),
    ]
    if spec.get("constraints"):
        sections.append(section("feasibility", "Feasibility", _feasibility(spec, trials)))
    # plotly.js only where a plot needs it; the global config first, as plotly's own files do.
    script = (
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f'<script charset="utf-8">{plotly_js()}</script>'
        if page.plots
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}: tuneforge report</title><style>{STYLE}</style>{script}</head>"
        f'<body><main class="tf-report" data-plot-count="{page.plots}">'
        + "".join(sections)
        + "</main></body></html>\n"
    )
