"""The ``tuneforge`` command's client commands: submit, watch and inspect studies, keys.

They talk to the server at ``TUNEFORGE_URL`` (default http://127.0.0.1:8000) with the API key
in ``TUNEFORGE_API_KEY``, or else the admin key the server wrote to
``<TUNEFORGE_DATA_DIR>/admin.key`` on its first start. Nothing of the server is imported (nor
the HTTP client until a command runs), so ``tuneforge --help`` answers at once; the server's
own commands join this app in :mod:`service.cli`.
"""

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from service.client.specfile import load_spec

if TYPE_CHECKING:
    from service.client.api import Client

ArtifactKind = Literal["torchscript", "weights", "spec"]
DEFAULT_URL = "http://127.0.0.1:8000"
ADMIN_KEY_FILE = "admin.key"  # in the data directory (the server's DataDir.admin_key)

app = typer.Typer(
    help="tuneforge: hyperparameter and architecture search on Ray.",
    rich_markup_mode=None,  # plain help: rich is imported only where a command draws with it
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys (admin): create, list, revoke.", rich_markup_mode=None)
app.add_typer(keys_app, name="keys")


def data_dir() -> Path:
    """The data directory, as the server on this machine finds it (``TUNEFORGE_DATA_DIR``)."""
    return Path(os.environ.get("TUNEFORGE_DATA_DIR", ".tuneforge"))


def read_admin_key(folder: Path) -> str | None:
    """The key in ``folder/admin.key``, if the file exists."""
    try:
        return (folder / ADMIN_KEY_FILE).read_text().strip() or None
    except OSError:
        return None


def _client() -> "Client":
    from service.client.api import Client

    url = os.environ.get("TUNEFORGE_URL", DEFAULT_URL)
    return Client(url, os.environ.get("TUNEFORGE_API_KEY") or read_admin_key(data_dir()))


@contextmanager
def _api() -> Iterator["Client"]:
    """The API client; its errors become a message and an exit status (1: refused, 2: down)."""
    from service.client.api import ApiError, Unreachable

    try:
        with _client() as client:
            yield client
    except Unreachable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except ApiError as exc:
        if exc.errors:  # validation errors: one line per field
            for path, msg in exc.errors:
                typer.echo(f"error: {path}: {msg}", err=True)
        else:
            typer.echo(f"error {exc.status}: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON spec.")],
    wait: Annotated[
        bool, typer.Option(help="Show live progress until the study finishes, then its best.")
    ] = False,
) -> None:
    """Submit a study from a YAML or JSON file; prints its id."""
    spec = load_spec(file.read_text())
    with _api() as client:
        study = client.submit(spec)
        typer.echo(f"study {study['id']} submitted ({study['optuna_study_name']})")
        if not wait:
            return
        final = follow(client, study["id"], study["spec"]["budget"]["max_trials"])
        typer.echo(f"study {final['id']} {final['status']}: {final['status_reason']}")
        if not final["trial_counts"]["COMPLETE"]:
            raise typer.Exit(1)
        front = client.best_trials(study["id"])  # several objectives: the Pareto front
    objectives = study["spec"]["objectives"]
    for trial in front:
        values = trial["values"] or []
        shown = ", ".join(f"{o['metric']}={v:.4f}" for o, v in zip(objectives, values, strict=True))
        typer.echo(f"best trial {trial['number']}: {shown} params={trial['params']}")


def follow(client: "Client", study_id: int, max_trials: int) -> dict[str, Any]:
    """Watch a study's events until it finishes: a live bar on a terminal, a line per change
    otherwise. A dropped stream (the server restarted) is opened again. Returns the study's
    final ``end`` event."""
    from service.client.api import Unreachable
    from service.client.progress import ProgressView

    with ProgressView(max_trials, live=sys.stdout.isatty(), echo=typer.echo) as view:
        while True:
            try:
                for event in client.events(study_id):
                    view.show(event)
                    if event.kind == "end":
                        return event.data
            except Unreachable:
                pass  # the server is away: look again in a moment
            time.sleep(1)


@app.command()
def status(study_id: int) -> None:
    """Show a study: status, trial counts, best value."""
    from service.client.progress import summary

    with _api() as client:
        study = client.study(study_id)
    typer.echo(f"study {study['id']} {study['name']} ({study['optuna_study_name']})")
    typer.echo(summary(study))
    if study["status_reason"]:
        typer.echo(f"reason: {study['status_reason']}")


@app.command()
def trials(
    study_id: int,
    state: Annotated[str | None, typer.Option(help="Only trials in this state.")] = None,
) -> None:
    """List a study's trials, one line each."""
    with _api() as client:
        page = client.trials(study_id, state=state, limit=1000)  # type: ignore[arg-type]
    for t in page["items"]:
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        extra = f"  ({t['fail_reason']})" if t["fail_reason"] else ""
        typer.echo(f"{t['number']:>4} {t['state']:<8} {value:>8}  {t['params']}{extra}")
    typer.echo(f"{page['total']} trials")


@app.command()
def best(study_id: int) -> None:
    """Show the best trial with its learning curve."""
    with _api() as client:
        _print(client.best(study_id))


@app.command()
def stop(
    study_id: int,
    drain: Annotated[
        bool, typer.Option("--drain", help="Let the trials in flight finish; start no more.")
    ] = False,
) -> None:
    """Stop a study; trials in flight are cancelled (or, with --drain, finish first)."""
    with _api() as client:
        study = client.stop(study_id, drain=drain)
    how = "stop (drain)" if drain else "stop"
    typer.echo(f"study {study_id}: {how} requested (status {study['status']})")


STATUSES = ("pending", "running", "completed", "failed", "stopped")


@app.command()
def studies(
    state: Annotated[
        str | None, typer.Option("--state", help=f"Only studies with this status: {STATUSES}.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List your studies: id, status, trials by state, best value, name."""
    status = None if state is None else state.lower()
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(
            f"{state!r} is none of {', '.join(STATUSES)}", param_hint="--state"
        )
    with _api() as client:
        items, offset = [], 0
        while True:
            page = client.studies(offset=offset, limit=500, status=status)
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
    if as_json:
        _print(items)
        return
    typer.echo(f"{'id':>5}  {'status':<9} {'done':>5} {'running':>7} {'best':>9}  name")
    for s in items:
        counts = s["trial_counts"]
        done = sum(counts.get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
        best = "-" if s["best_value"] is None else f"{s['best_value']:.4g}"
        typer.echo(
            f"{s['id']:>5}  {s['status']:<9} {done:>5} {counts.get('RUNNING', 0):>7} "
            f"{best:>9}  {s['name']}"
        )
    typer.echo(f"{len(items)} studies")


@app.command()
def update(
    study_id: int,
    max_trials: Annotated[int | None, typer.Option(help="A new trial budget.")] = None,
    parallelism: Annotated[int | None, typer.Option(help="Trials at once.")] = None,
) -> None:
    """Change a study's budget or parallelism; a new budget resumes a finished study."""
    changes: dict[str, Any] = {}
    if max_trials is not None:
        changes["budget"] = {"max_trials": max_trials}
    if parallelism is not None:
        changes["parallelism"] = parallelism
    if not changes:
        raise typer.BadParameter("give --max-trials and/or --parallelism")
    with _api() as client:
        study = client.patch(study_id, changes)
    spec = study["spec"]
    typer.echo(
        f"study {study_id}: {study['status']}, max_trials {spec['budget']['max_trials']}, "
        f"parallelism {spec['parallelism']}"
    )


@app.command()
def delete(study_id: int) -> None:
    """Delete a finished study with its trials, models and checkpoints."""
    with _api() as client:
        client.delete(study_id)
    typer.echo(f"study {study_id} deleted")


@app.command()
def report(
    study_id: int,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default study-ID.html).")
    ] = None,
) -> None:
    """Write the study's report: one self-contained HTML file with its plots."""
    with _api() as client:
        html = client.report(study_id)
    path = output or Path(f"study-{study_id}.html")
    path.write_text(html, encoding="utf-8")
    typer.echo(f"wrote {path} ({len(html.encode())} bytes)")


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".npz or .csv")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: file stem).")] = None,
    task: Annotated[
        str | None, typer.Option(help="multiclass, binary or regression (default: inferred).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="CSV label column.")] = None,
) -> None:
    """Upload a dataset; a study then names it with task.dataset.upload_id."""
    form = {k: v for k, v in {"name": name, "task": task, "target": target}.items() if v}
    with _api() as client:
        info = client.upload(file, **form)
    shape = "x".join(map(str, info["input_shape"]))
    typer.echo(
        f"dataset {info['id']} uploaded: {info['name']}, {info['task']}, {info['kind']} "
        f"samples of shape {shape}, {info['n_samples']} samples"
    )


@app.command()
def download(
    study_id: int,
    kind: Annotated[ArtifactKind, typer.Option(help="What to download.")] = "torchscript",
    trial: Annotated[int | None, typer.Option(help="A trial number (default: the best).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Download a trained model (TorchScript), its weights or its spec."""
    with _api() as client:
        content = client.artifact(study_id, kind, trial)
    where = "best" if trial is None else f"trials-{trial}"
    suffix = {"torchscript": "model.ts", "weights": "weights.pt", "spec": "spec.json"}[kind]
    path = output or Path(f"study-{study_id}-{where}-{suffix}")
    path.write_bytes(content)
    typer.echo(f"wrote {path} ({len(content)} bytes)")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    admin: Annotated[bool, typer.Option(help="May manage keys.")] = False,
) -> None:
    """Create a key; it is printed this once (only its hash is stored)."""
    with _api() as client:
        created = client.create_key(tenant, name, admin)
    typer.echo(created.get("key", ""))
    typer.echo(
        f"key {created['id']} for tenant {created['tenant']}"
        + (" (admin)" if created["admin"] else "")
        + ": store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, tenant, name, first characters, admin, created, revoked."""
    with _api() as client:
        keys = client.keys()
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        role = "admin" if k["admin"] else "tenant"
        line = f"{k['id']:>4}  {k['prefix']}…  {k['tenant']:<16} {role:<6} {state}"
        typer.echo(f"{line}  {k['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key at once."""
    with _api() as client:
        client.revoke_key(key_id)
    typer.echo(f"key {key_id} revoked")


@app.command()
def quota(
    tenant: Annotated[
        str | None, typer.Argument(help="A tenant (admins); default: your key's own.")
    ] = None,
    studies: Annotated[int | None, typer.Option(help="Active studies at once.")] = None,
    trials: Annotated[int | None, typer.Option(help="Trials in flight at once.")] = None,
    datasets: Annotated[int | None, typer.Option(help="Datasets kept.")] = None,
    stored_bytes: Annotated[int | None, typer.Option(help="Bytes of uploads kept.")] = None,
    weight: Annotated[float | None, typer.Option(help="Share of a full cluster.")] = None,
) -> None:
    """Show a tenant's limits and usage; with options, set them (admins)."""
    changes = {
        "active_studies": studies,
        "trials_in_flight": trials,
        "datasets": datasets,
        "stored_bytes": stored_bytes,
        "weight": weight,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    with _api() as client:
        if changes and tenant is None:
            raise typer.BadParameter("name the tenant whose quota to set", param_hint="TENANT")
        shown = client.set_quota(tenant, **changes) if tenant and changes else client.quota(tenant)
    typer.echo(f"tenant {shown['tenant']}")
    for name, limit in shown["limits"].items():
        used = shown["usage"].get(name)
        typer.echo(f"  {name:<17} {'' if used is None else used:>12} of {limit}")
