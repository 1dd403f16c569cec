"""The ``tuneforge`` command: serve, submit and inspect studies, open the dashboard.

Client commands talk to the server at ``TUNEFORGE_URL`` (default http://127.0.0.1:8000) with
the API key in ``TUNEFORGE_API_KEY``, or else the admin key the server wrote to
``<TUNEFORGE_DATA_DIR>/admin.key`` on its first start.
"""

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from service.auth import read_admin_key
from service.config import Settings

app = typer.Typer(help="tuneforge: hyperparameter and architecture search on Ray.")
keys_app = typer.Typer(help="API keys (admin): create, list, revoke.")
app.add_typer(keys_app, name="keys")
_FINISHED = {"completed", "failed", "stopped"}


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data, no objects), reading numbers as YAML 1.2 does:
    ``1e-3`` is a float, as users write learning rates (YAML 1.1 wants ``1.0e-3``)."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _settings() -> Settings:
    return Settings()


def _client() -> httpx.Client:
    settings = _settings()
    key = settings.api_key or read_admin_key(settings.data_dir)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=settings.url.rstrip("/") + "/api/v1", timeout=30, headers=headers)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client() as client:
            resp = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        typer.echo(f"cannot reach tuneforge at {_settings().url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if resp.status_code >= 400:
        detail = resp.json().get("detail", resp.text)
        if isinstance(detail, list):  # validation errors: one line per field
            for item in detail:
                typer.echo(f"error: {item['path'] or '(body)'}: {item['msg']}", err=True)
        else:
            typer.echo(f"error {resp.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return resp.json() if resp.content else None


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (TUNEFORGE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TUNEFORGE_PORT).")] = None,
) -> None:
    """Run the API and the scheduler (starts a local Ray unless TUNEFORGE_RAY_ADDRESS is set)."""
    import uvicorn

    from service.app import create_app

    settings = _settings()
    host, port = host or settings.host, port or settings.port
    typer.echo(f"tuneforge API:       http://{host}:{port}/api/v1")
    typer.echo(f"API docs (OpenAPI):  http://{host}:{port}/docs")
    typer.echo(f"database:            {settings.db_url}")
    typer.echo("dashboard:           http://127.0.0.1:8080/dashboard  (start it: make dashboard)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON spec.")],
    wait: Annotated[bool, typer.Option(help="Wait until the study finishes.")] = False,
) -> None:
    """Submit a study from a YAML or JSON file; prints its id."""
    spec = yaml.load(file.read_text(), Loader=SpecLoader)  # noqa: S506 (safe: see SpecLoader)
    study = _call("POST", "/studies", json=spec)
    typer.echo(f"study {study['id']} submitted ({study['optuna_study_name']})")
    if not wait:
        return
    last = ""
    while study["status"] not in _FINISHED:
        time.sleep(1)
        study = _call("GET", f"/studies/{study['id']}")
        line = _progress(study)
        if line != last:
            typer.echo(line)
            last = line
    typer.echo(f"study {study['id']} {study['status']}: {study['status_reason']}")
    if not study["trial_counts"]["COMPLETE"]:
        raise typer.Exit(1)
    best = _call("GET", f"/studies/{study['id']}/best")
    objectives = study["spec"]["objectives"]
    for trial in best.get("trials", [best]):  # several objectives: the Pareto front
        shown = ", ".join(
            f"{o['metric']}={v:.4f}" for o, v in zip(objectives, trial["values"], strict=True)
        )
        typer.echo(f"best trial {trial['number']}: {shown} params={trial['params']}")


def _progress(study: dict[str, Any]) -> str:
    c = study["trial_counts"]
    best = study["best_value"]
    best_s = "-" if best is None else f"{best:.4f}"
    return (
        f"[{study['status']}] complete={c['COMPLETE']} running={c['RUNNING']} "
        f"failed={c['FAIL']} pruned={c['PRUNED']} best={best_s}"
    )


@app.command()
def status(study_id: int) -> None:
    """Show a study: status, trial counts, best value."""
    study = _call("GET", f"/studies/{study_id}")
    typer.echo(f"study {study['id']} {study['name']} ({study['optuna_study_name']})")
    typer.echo(_progress(study))
    if study["status_reason"]:
        typer.echo(f"reason: {study['status_reason']}")


@app.command()
def trials(
    study_id: int,
    state: Annotated[str | None, typer.Option(help="Only trials in this state.")] = None,
) -> None:
    """List a study's trials, one line each."""
    params: dict[str, Any] = {"limit": 1000}
    if state:
        params["state"] = state
    page = _call("GET", f"/studies/{study_id}/trials", params=params)
    for t in page["items"]:
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        extra = f"  ({t['fail_reason']})" if t["fail_reason"] else ""
        typer.echo(f"{t['number']:>4} {t['state']:<8} {value:>8}  {t['params']}{extra}")
    typer.echo(f"{page['total']} trials")


@app.command()
def best(study_id: int) -> None:
    """Show the best trial with its learning curve."""
    _print(_call("GET", f"/studies/{study_id}/best"))


@app.command()
def stop(study_id: int) -> None:
    """Stop a study; trials in flight are cancelled."""
    study = _call("POST", f"/studies/{study_id}/stop")
    typer.echo(f"study {study_id}: stop requested (status {study['status']})")


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
    with file.open("rb") as f:
        info = _call("POST", "/datasets", files={"file": (file.name, f)}, data=form)
    shape = "x".join(map(str, info["input_shape"]))
    typer.echo(
        f"dataset {info['id']} uploaded: {info['name']}, {info['task']}, {info['kind']} "
        f"samples of shape {shape}, {info['n_samples']} samples"
    )


@app.command()
def download(
    study_id: int,
    kind: Annotated[str, typer.Option(help="torchscript, weights or spec.")] = "torchscript",
    trial: Annotated[int | None, typer.Option(help="A trial number (default: the best).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Download a trained model (TorchScript), its weights or its spec."""
    where = "best" if trial is None else f"trials/{trial}"
    try:
        with _client() as client:
            resp = client.get(f"/studies/{study_id}/{where}/artifacts/{kind}")
    except httpx.TransportError as exc:
        typer.echo(f"cannot reach tuneforge at {_settings().url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if resp.status_code >= 400:
        typer.echo(f"error {resp.status_code}: {resp.json().get('detail', resp.text)}", err=True)
        raise typer.Exit(1)
    suffix = {"torchscript": "model.ts", "weights": "weights.pt", "spec": "spec.json"}[kind]
    path = output or Path(f"study-{study_id}-{where.replace('/', '-')}-{suffix}")
    path.write_bytes(resp.content)
    typer.echo(f"wrote {path} ({len(resp.content)} bytes)")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    admin: Annotated[bool, typer.Option(help="May manage keys.")] = False,
) -> None:
    """Create a key; it is printed this once (only its hash is stored)."""
    created = _call("POST", "/keys", json={"tenant": tenant, "name": name, "admin": admin})
    typer.echo(created["key"])
    typer.echo(
        f"key {created['id']} for tenant {created['tenant']}"
        + (" (admin)" if created["admin"] else "")
        + ": store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, tenant, name, first characters, admin, created, revoked."""
    for k in _call("GET", "/keys"):
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        role = "admin" if k["admin"] else "tenant"
        line = f"{k['id']:>4}  {k['prefix']}…  {k['tenant']:<16} {role:<6} {state}"
        typer.echo(f"{line}  {k['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key at once."""
    _call("DELETE", f"/keys/{key_id}")
    typer.echo(f"key {key_id} revoked")


@app.command()
def dashboard(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """Serve optuna-dashboard on the service's database."""
    import optuna_dashboard

    from service.db import make_storage

    settings = _settings()
    typer.echo(f"optuna-dashboard:    http://{host}:{port}/dashboard  ({settings.db_url})")
    optuna_dashboard.run_server(make_storage(settings.db_url), host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
