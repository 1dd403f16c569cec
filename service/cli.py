"""The ``tuneforge`` command: the client's commands (:mod:`service.client.cli`) and the
server's: ``serve``, ``scheduler``, ``migrate``, ``dashboard``, ``secret``.

The server's modules are imported inside the commands that run them, so the client's commands
(and ``--help``) start without loading the server, Ray, PyTorch or Optuna.
"""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.client.cli import app

if TYPE_CHECKING:
    from service.config import Settings


def _settings() -> "Settings":
    """The server's settings. Every server command starts here: from now on, what this process
    creates (uploads, models, checkpoints, the database file) is its user's alone: files
    0600, folders 0700."""
    from service.config import Settings

    os.umask(0o077)
    return Settings()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (TUNEFORGE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TUNEFORGE_PORT).")] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            help="Run the trial scheduler in this process. Without it, run `tuneforge "
            "scheduler` elsewhere on the same database."
        ),
    ] = True,
) -> None:
    """Run the API and the scheduler.

    The scheduler starts a local Ray unless TUNEFORGE_RAY_ADDRESS names a cluster.
    """
    import uvicorn

    from service.app import create_app
    from service.logs import configure_logging

    configure_logging()
    settings = _settings()
    if not scheduler:
        settings = settings.model_copy(update={"run_scheduler": False})
    host, port = host or settings.host, port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    typer.echo(f"tuneforge API:       http://{host}:{port}/api/v1")
    typer.echo(f"API docs (OpenAPI):  http://{host}:{port}/docs")
    typer.echo(f"database:            {settings.db_url}")
    typer.echo(f"scheduler:           {'in this process' if settings.run_scheduler else 'off'}")
    typer.echo("dashboard:           http://127.0.0.1:8080/dashboard  (start it: make dashboard)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command("scheduler")
def run_scheduler() -> None:
    """Run only the trial scheduler (cluster mode).

    It reads the studies from the database and runs their trials on the Ray cluster at
    TUNEFORGE_RAY_ADDRESS, until SIGTERM or Ctrl-C.
    """
    from service.scheduling.process import run_scheduler_process

    raise typer.Exit(run_scheduler_process(_settings(), typer.echo))


@app.command()
def migrate() -> None:
    """Create or upgrade the database.

    Optuna's tables and the service's; running it again changes nothing.
    """
    from service.store.engine import migrate_all

    settings = _settings()
    typer.echo(f"migrating {settings.db_url}")
    typer.echo(migrate_all(settings.db_url))


@app.command()
def dashboard(
    host: Annotated[
        str, typer.Option(envvar="TUNEFORGE_DASHBOARD_HOST", help="Bind address.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TUNEFORGE_DASHBOARD_PORT", help="Port.")] = 8080,
) -> None:
    """Serve optuna-dashboard on the service's database.

    Each trial's model files (weights, TorchScript, spec, curve) are listed and downloadable,
    from Optuna's artifact store in the data directory.
    """
    import optuna_dashboard

    from search.optuna_artifacts import artifact_store
    from service.store.storage import make_storage

    settings = _settings()
    store = artifact_store(settings.paths)
    typer.echo(f"optuna-dashboard:    http://{host}:{port}/dashboard  ({settings.db_url})")
    typer.echo(f"artifacts:           {settings.paths.optuna_artifacts.resolve()}")
    optuna_dashboard.run_server(
        make_storage(settings.db_url), host=host, port=port, artifact_store=store
    )


@app.command()
def secret(
    path: Annotated[Path, typer.Argument(help="The file (kept as it is if it holds one).")],
) -> None:
    """Write a random secret to PATH, unless it holds one.

    The file is readable by its owner alone: the compose stack's Ray token
    (RAY_AUTH_TOKEN_PATH).
    """
    from service.secret import ensure_secret

    os.umask(0o077)
    typer.echo(ensure_secret(path))


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
