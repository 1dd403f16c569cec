"""How the CLI shows what it reads: numbers, parameters, tables and the best trial in a few
lines. Plain text, no terminal library: columns are as wide as their widest cell."""

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

LINE_WIDTH = 120  # a row's last column is cut with … past this
TRIAL_DONE = ("COMPLETE", "PRUNED", "FAIL")
# A NAS trial's architecture parameters (its genotype says them at once): a cell's edges
# (model.edge_2_1) and a macro space's per-stage choices (model.widths.0).
_ARCHITECTURE_PARAM = re.compile(r"^model\.(edge_\d+_\d+|[a-z]+s\.\d+)$")


def budget_counts(trial: Mapping[str, Any]) -> bool:
    """Whether a study's budget counts a trial, as the scheduler does: one started here, not
    cut short by a stop or a shutdown (``interrupted``) nor copied from another study."""
    attrs = trial["user_attrs"]
    return (
        trial["state"] != "WAITING"
        and not attrs.get("interrupted")
        and not str(attrs.get("warm_start", "")).startswith("study")
    )


def number(value: float | None) -> str:
    """A value to 4 significant digits, trailing zeros kept so a column reads evenly
    (``0.9750``, ``12.35``, ``1.235e+05``); ``-`` for none."""
    if value is None:
        return "-"
    return format(value, "#.4g").rstrip(".")


def param(value: Any) -> str:
    """A parameter's value, compact: floats to 4 significant digits (``0.001234``)."""
    if isinstance(value, float):
        return format(value, ".4g")
    return str(value)


def params_text(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs: ``model.width=24 training.lr=0.001``."""
    return " ".join(f"{k}={param(v)}" for k, v in params.items())


def architecture_text(trial: Mapping[str, Any]) -> str:
    """What a trial tried: a NAS trial's genotype (and its parameters that are not part of
    the architecture), else its parameters."""
    genotype = trial.get("user_attrs", {}).get("genotype")
    if not genotype:
        return params_text(trial["params"])
    rest = {k: v for k, v in trial["params"].items() if not _ARCHITECTURE_PARAM.match(k)}
    return " ".join([f"genotype={genotype}", params_text(rest)]).strip()


def duration(seconds: float | None) -> str:
    """``8.2s``, ``3m05s``, ``2h04m``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = int(seconds) // 60
    if minutes < 60:
        return f"{minutes}m{int(seconds) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def trial_duration(trial: Mapping[str, Any]) -> float | None:
    """How long a trial ran: to its end, or for a running one until now."""
    if trial["duration_s"] is not None:
        return float(trial["duration_s"])
    if trial["state"] == "RUNNING" and trial["datetime_start"]:
        started = datetime.fromisoformat(trial["datetime_start"])
        return (datetime.now(UTC) - started).total_seconds()
    return None


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Rows aligned under the header: each column as wide as its widest cell, numbers
    (``right``) aligned right; the last column is left as it is, cut at :data:`LINE_WIDTH`."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if right[i] else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append(cut("  ".join([*cells, row[-1]]).rstrip()))
    return lines


def cut(line: str, width: int = LINE_WIDTH) -> str:
    """``line``, cut with … to at most ``width`` characters."""
    return line if len(line) <= width else line[: width - 1] + "…"


def trial_value(trial: Mapping[str, Any]) -> str:
    """A trial's objective value, or its values (several objectives) joined by ``/``."""
    values = trial["values"]
    if values and len(values) > 1:
        return "/".join(number(v) for v in values)
    return number(trial["value"])


def trials_table(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``trials`` command's table: number, state, value, duration, then what the trial
    tried (a failed trial's reason first)."""
    rows = []
    for t in trials:
        tried = architecture_text(t)
        if t["state"] == "FAIL" and t["fail_reason"]:
            tried = f"({t['fail_reason']}) {tried}".strip()
        rows.append(
            [str(t["number"]), t["state"], trial_value(t), duration(trial_duration(t)), tried]
        )
    header = ["#", "state", "value", "duration", "params"]
    return table(header, rows, right=[True, False, True, True, False])


def studies_table(studies: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``studies`` command's table: id, status, trials done and running, best, name."""
    rows = []
    for s in studies:
        counts = s["trial_counts"]
        done = sum(counts.get(k, 0) for k in TRIAL_DONE)
        rows.append(
            [
                str(s["id"]),
                s["status"],
                str(done),
                str(counts.get("RUNNING", 0)),
                number(s["best_value"]),
                s["name"],
            ]
        )
    header = ["id", "status", "done", "running", "best", "name"]
    return table(header, rows, right=[True, False, True, True, True, False])


def objective_values(objectives: Sequence[Mapping[str, Any]], trial: Mapping[str, Any]) -> str:
    """``val_accuracy=0.9750`` (``, ``-joined for several objectives)."""
    values = trial["values"] or [trial["value"]]
    return ", ".join(f"{o['metric']}={number(v)}" for o, v in zip(objectives, values, strict=False))


def best_line(objectives: Sequence[Mapping[str, Any]], trial: Mapping[str, Any]) -> str:
    """``best trial 7: val_accuracy=0.9750  model.width=24``: a best (or Pareto) trial."""
    shown = objective_values(objectives, trial)
    return cut(f"best trial {trial['number']}: {shown}  {architecture_text(trial)}".rstrip())


def download_hint(study_id: int, trial: Mapping[str, Any], best: bool) -> str:
    """The command that downloads a trial's model (``best``: the study's best, the default
    of ``tuneforge download``), TorchScript where the trial has it."""
    kinds = trial.get("artifacts")  # None: a Pareto front's trials, listed without their files
    if kinds == []:
        return "no model kept"
    which = "" if best else f" --trial {trial['number']}"
    if kinds is None:
        return f"tuneforge download {study_id}{which}"
    main = "torchscript" if "torchscript" in kinds else kinds[0]
    kind = "" if main == "torchscript" else f" --kind {main}"
    others = [k for k in kinds if k != main]
    also = f"  (also --kind {' or '.join(others)})" if others else ""
    return f"tuneforge download {study_id}{which}{kind}{also}"


def best_summary(study: Mapping[str, Any], best: Mapping[str, Any]) -> list[str]:
    """The ``best`` command's lines: the best trial's values, parameters, epochs and where
    to download its model; for several objectives, each trial of the Pareto front."""
    objectives = study["spec"]["objectives"]
    if "trials" in best:  # several objectives: the front
        front = best["trials"]
        lines = [f"study {study['id']}: {len(front)} trials on the Pareto front"]
        lines += [best_line(objectives, t) for t in front]
        if front:
            lines.append(f"download: {download_hint(study['id'], front[0], best=False)}")
        return lines
    attrs = best.get("user_attrs", {})
    curve = best.get("learning_curve", [])
    epochs = f"{len(curve)}" if curve else "-"
    if attrs.get("best_epoch") is not None:
        epochs += f" (weights of epoch {attrs['best_epoch']})"
    rows = [
        ("trial", f"{best['number']} of study {study['id']} ({study['status']})"),
        *((o["metric"], number(v)) for o, v in zip(objectives, best["values"] or [], strict=False)),
        ("params", architecture_text(best) or "-"),
        ("epochs", epochs),
        ("duration", duration(best["duration_s"])),
        ("download", download_hint(study["id"], best, best=True)),
    ]
    width = max(len(name) for name, _ in rows)
    return [cut(f"{name:<{width}}  {text}") for name, text in rows]
