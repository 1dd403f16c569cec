"""The CLI's ``check`` (a pre-flight check of a study file) and ``ensemble`` (combine a
study's best trials) commands, and the tables they print. :mod:`service.client.cli` registers
them."""

import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from service.client.connection import api, print_json
from service.client.reads import Json, StudyId
from service.client.tables import LINE_WIDTH, number, params_text, table

if TYPE_CHECKING:
    from service.client.api import Client

ENDED = ("done", "failed")
_WAIT_S = 60.0  # the longest the server holds one answer


def wait_job(client: "Client", job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll a job until it ends or ``timeout`` seconds pass (then exit 1 with its state)."""
    deadline = time.monotonic() + timeout
    while job["status"] not in ENDED:
        left = deadline - time.monotonic()
        if left <= 0:
            typer.echo(
                f"job {job['id']} is still {job['status']} after {timeout:g} s: "
                f"GET /api/v1/jobs/{job['id']} shows it later",
                err=True,
            )
            raise typer.Exit(1)
        job = client.job(job["id"], wait=min(_WAIT_S, left))
    return job


def findings_lines(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each finding as ``SEVERITY  code`` and its sentence, wrapped under it."""
    lines = []
    for f in findings:
        n = f.get("points")
        where = "" if n is None else f" ({n} point{'s' if n != 1 else ''})"
        lines.append(f"{f['severity'].upper():7}  {f['code']}{where}")
        lines += textwrap.wrap(
            f["message"], LINE_WIDTH - 9, initial_indent=" " * 9, subsequent_indent=" " * 9
        )
    return lines


def _g(value: Any) -> str:
    return number(value) if isinstance(value, int | float) else str(value)


def point_lines(point: Mapping[str, Any]) -> list[str]:
    """One checked point: its measurements, then a row per layer."""
    d, init, tiny, fit, rng = (
        point["data"],
        point["initial_loss"],
        point["overfit"],
        point["short_fit"],
        point["lr_range"],
    )
    balance = f"classes {d['class_counts']}" if "class_counts" in d else f"y mean {_g(d['y_mean'])}"
    expected = f" (expected {_g(init['expected'])})" if "expected" in init else ""
    memo = f", train accuracy {_g(tiny['train_accuracy'])}" if "train_accuracy" in tiny else ""
    val = f", val accuracy {_g(fit['val_accuracy'])}" if "val_accuracy" in fit else ""
    low, high = rng["suggested"]
    lines = [
        f"point: {params_text(point['params']) or '(the task as written)'}",
        f"  data          {d['n_train']} train / {d['n_val']} val, input {d['input_shape']}, "
        f"{balance}",
        f"  inputs        {_g(d['x_min'])} .. {_g(d['x_max'])} after preprocessing "
        f"(mean {_g(d['x_mean'])}, std {_g(d['x_std'])})",
        f"  initial loss  {_g(init['loss'])}{expected}",
        f"  tiny subset   {tiny['samples']} samples, loss {_g(tiny['loss_start'])} → "
        f"{_g(tiny['loss_end'])} in {tiny['steps']} steps{memo}",
        "  short fit     "
        + (
            "diverged"
            if fit["diverged"]
            else f"{fit['steps']} steps, val loss {_g(fit['val_loss'])}{val}"
        ),
        f"  lr range      lowest loss at {_g(rng['best_lr'])}, runs away at "
        f"{_g(rng['diverge_lr']) if rng['diverge_lr'] is not None else '-'}; "
        f"suggested [{_g(low)}, {_g(high)}]",
    ]
    acts = [r for r in point["layers"] if "activation" in r]
    grads = [r for r in point["layers"] if "grad_norm" in r]
    if acts:
        rows = [
            [
                r["layer"],
                r["activation"],
                _g(r["mean"]),
                _g(r["std"]),
                f"{r['dead_fraction']:.0%}" if "dead_fraction" in r else "-",
                f"{r['saturated_fraction']:.0%}" if "saturated_fraction" in r else "-",
            ]
            for r in acts
        ]
        header = ["layer", "activation", "mean", "std", "dead", "saturated"]
        lines += [
            "",
            *("  " + x for x in table(header, rows, [False, False, True, True, True, False])),
        ]
    if grads:
        rows = [[r["layer"], _g(r["grad_norm"])] for r in grads]
        lines += ["", *("  " + x for x in table(["parameter", "grad norm"], rows, [False, False]))]
    return lines


def check_lines(result: Mapping[str, Any]) -> list[str]:
    """A finished check: each point, then the findings across points."""
    lines: list[str] = []
    for point in result["points"]:
        lines += [*point_lines(point), ""]
    verdict = "passed" if result["passed"] else "found problems"
    lines.append(
        f"pre-flight check {verdict} ({len(result['points'])} point(s), {_g(result['seconds'])} s)"
    )
    return [*lines, *findings_lines(result["findings"])]


def check(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, metavar="FILE", help="YAML or JSON spec."),
    ],
    points: Annotated[
        int, typer.Option(min=1, max=8, metavar="N", help="Points of the search space to check.")
    ] = 3,
    seed: Annotated[int, typer.Option(min=0, metavar="N", help="Seeds points and networks.")] = 0,
    timeout: Annotated[
        float, typer.Option(min=1, metavar="S", help="Give up waiting after this long.")
    ] = 600,
    as_json: Json = False,
) -> None:
    """Pre-flight check a study file on the cluster before running it; stores nothing.

    Checks the data, the initial loss, gradients and activations per layer, that a tiny
    subset can be memorized, that validation beats chance, and runs a learning-rate range
    test; each finding says what to change. Exits 1 when it finds an error.
    """
    from service.client.specfile import load_spec

    spec = load_spec(file.read_text())
    with api({"points": "--points", "seed": "--seed"}) as client:
        job = wait_job(client, client.check(spec, points, seed, wait=_WAIT_S), timeout)
    if as_json:
        print_json(job)
    if job["status"] == "failed":
        typer.echo(f"the check could not run: {job['error']}", err=True)
        raise typer.Exit(1)
    if not as_json:
        typer.echo("\n".join(check_lines(job["result"])))
    if not job["result"]["passed"]:
        raise typer.Exit(1)


def ensemble_lines(job: Mapping[str, Any]) -> list[str]:
    """An ensemble's members and scores, beside its best member's."""
    result = job["result"]
    keys = [k for k in ("val_accuracy", "nll", "ece") if k in result["metrics"]]
    rows = [
        [
            f"trial {m['trial']}",
            _g(m["value"]),
            _g(m["weight"]),
            *(_g(m["metrics"][k]) for k in keys),
        ]
        for m in result["members"]
    ]
    rows.append(
        [f"ensemble ({result['method']})", "", "", *(_g(result["metrics"][k]) for k in keys)]
    )
    header = ["model", "value", "weight", *keys]
    study = job["study_id"]
    return [
        *table(header, rows, [False, True, True, *([True] * len(keys))]),
        "",
        f"best single member: nll {_g(result['best_member']['nll'])}; the ensemble: "
        f"nll {_g(result['metrics']['nll'])}",
        f"download: tuneforge ensemble {study} --id {job['id']} -o ensemble.ts",
    ]


def ensemble(
    study_id: StudyId,
    top_k: Annotated[
        int, typer.Option(min=2, max=50, metavar="K", help="Best trials to combine.")
    ] = 5,
    method: Annotated[
        Literal["average", "vote", "greedy"],
        typer.Option(metavar="METHOD", help="average, vote or greedy (Caruana's selection)."),
    ] = "average",
    ensemble_id: Annotated[
        int | None, typer.Option("--id", metavar="N", help="Show (or download) this ensemble.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write its TorchScript.")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, metavar="S", help="Give up waiting after this long.")
    ] = 600,
    as_json: Json = False,
) -> None:
    """Build an ensemble of a study's best trials, scored on validation (NLL, ECE)."""
    with api({"top_k": "--top-k", "method": "--method"}) as client:
        job = (
            client.job(ensemble_id)
            if ensemble_id is not None
            else client.ensemble(study_id, top_k, method, wait=_WAIT_S)
        )
        job = wait_job(client, job, timeout)
        if job["status"] == "done" and output is not None:
            content = client.ensemble_artifact(study_id, job["id"], "torchscript")
            output.write_bytes(content)
    if as_json:
        print_json(job)
    elif job["status"] == "done":
        typer.echo("\n".join(ensemble_lines(job)))
    if job["status"] == "failed":
        typer.echo(f"the ensemble could not be built: {job['error']}", err=True)
        raise typer.Exit(1)
    if output is not None:
        typer.echo(f"wrote {output}", err=as_json)
