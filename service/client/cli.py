"""The ``tuneforge`` command's client commands: submit, watch and inspect studies, keys.

They talk to the server at ``TUNEFORGE_URL`` (default http://127.0.0.1:8000) with the API key
in ``TUNEFORGE_API_KEY``, or else the admin key the server wrote to
``<TUNEFORGE_DATA_DIR>/admin.key`` on its first start (:mod:`service.client.connection`).
Nothing of the server is imported (nor the HTTP client until a command runs), so
``tuneforge --help`` answers at once; the server's own commands join this app in
:mod:`service.cli`. The commands that only read live in :mod:`service.client.reads`.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from service.client import agent, checks, reads
from service.client.connection import api
from service.client.connection import read_admin_key as read_admin_key
from service.client.helptext import Typer
from service.client.reads import StudyId
from service.client.tables import budget_counts

ArtifactKind = Literal["torchscript", "weights", "spec"]

app = Typer(
    help="tuneforge: hyperparameter and architecture search on Ray.",
    rich_markup_mode=None,  # plain help: rich is imported only where a command draws with it
    pretty_exceptions_enable=False,
)
keys_app = Typer(help="API keys (admin): create, list, revoke.", rich_markup_mode=None)
app.add_typer(keys_app, name="keys")

Wait = Annotated[
    bool, typer.Option("--wait", help="Watch it live until it ends, then show its best trial.")
]


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, metavar="FILE", help="YAML or JSON spec."),
    ],
    wait: Wait = False,
) -> None:
    """Submit a study from a YAML or JSON file; prints its id."""
    from service.client.follow import follow_to_end
    from service.client.specfile import load_spec

    spec = load_spec(file.read_text())
    with api() as client:
        study = client.submit(spec)
        typer.echo(f"study {study['id']} submitted ({study['optuna_study_name']})")
        if wait:
            follow_to_end(client, study)


# The commands that read, listed after submit in the help.
for command in (reads.watch, reads.status, reads.trials, reads.best, reads.studies):
    app.command()(command)

# A pre-flight check of a study file, and ensembles of a study's best trials.
app.command()(checks.check)
app.command()(checks.ensemble)


@app.command()
def update(
    study_id: StudyId,
    max_trials: Annotated[int | None, typer.Option(metavar="N", help="A new trial budget.")] = None,
    parallelism: Annotated[int | None, typer.Option(metavar="N", help="Trials at once.")] = None,
) -> None:
    """Change a study's budget or parallelism.

    A new budget resumes a study that ended.
    """
    changes: dict[str, Any] = {}
    if max_trials is not None:
        changes["budget"] = {"max_trials": max_trials}
    if parallelism is not None:
        changes["parallelism"] = parallelism
    if not changes:
        raise typer.BadParameter("give --max-trials and/or --parallelism")
    with api() as client:
        study = client.patch(study_id, changes)
    spec = study["spec"]
    typer.echo(
        f"study {study_id}: {study['status']}, max_trials {spec['budget']['max_trials']}, "
        f"parallelism {spec['parallelism']}"
    )


@app.command()
def resume(
    study_id: StudyId,
    max_trials: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="The new trial budget, trials run so far included. Default: the old budget, "
            "when the study stopped before using it all.",
        ),
    ] = None,
    wait: Wait = False,
) -> None:
    """Resume a stopped, completed or failed study with a budget.

    Without --max-trials it runs the rest of its budget; a study that used all its budget
    needs --max-trials.
    """
    from service.client.api import FINISHED
    from service.client.follow import follow_to_end

    with api() as client:
        study: Mapping[str, Any] = client.study(study_id)
        if study["status"] not in FINISHED:
            typer.echo(
                f"error: study {study_id} is {study['status']}: nothing to resume "
                "(tuneforge update changes its budget)",
                err=True,
            )
            raise typer.Exit(1)
        used = sum(budget_counts(t) for t in reads.all_trials(client, study_id))
        old = study["spec"]["budget"]["max_trials"]
        new = old if max_trials is None else max_trials
        if new <= used:
            given = "give a larger one" if max_trials is None else "give more than that"
            typer.echo(
                f"error: --max-trials: study {study_id} has run {used} trials of its budget of "
                f"{old}: {given} (--max-trials {used + old} runs {old} more)",
                err=True,
            )
            raise typer.Exit(2)
        study = client.patch(study_id, {"budget": {"max_trials": new}})
        more = new - used
        typer.echo(
            f"study {study_id} resumed: {study['status']}, max_trials {new} "
            f"({more} more trial{'' if more == 1 else 's'})"
        )
        if wait:
            follow_to_end(client, study)


@app.command()
def enqueue(
    study_id: StudyId,
    params: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PARAMS",
            help="NAME=VALUE pairs, each value read as YAML: 2, 0.003, 1e-3, relu, true.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, metavar="FILE", help="A YAML or JSON mapping."
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(metavar="TEXT", help="Why (kept with it).")] = None,
) -> None:
    """Queue a trial with given parameters into a study: it runs next.

    Parameters left out are sampled. Values outside the search space are refused.
    """
    from service.client.specfile import load_spec

    point: dict[str, Any] = {}
    if file is not None:
        loaded = load_spec(file.read_text())
        if not isinstance(loaded, dict):
            raise typer.BadParameter(
                "the file must hold a mapping of NAME: VALUE", param_hint="--file"
            )
        point.update(loaded)
    for item in params or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="PARAMS")
        point[name] = load_spec(value) if value else ""
    if not point:
        raise typer.BadParameter("give NAME=VALUE pairs and/or --file")
    with api() as client:
        queued = client.enqueue(study_id, point, note)
    typer.echo(f"study {study_id}: trial {queued['number']} queued ({queued['enqueued']})")


# External studies: this machine evaluates their trials.
app.command()(agent.agent)


@app.command()
def stop(
    study_id: StudyId,
    drain: Annotated[
        bool, typer.Option("--drain", help="Let the trials in flight finish; start no more.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Return once the study has stopped.")
    ] = False,
) -> None:
    """Stop a study; trials in flight are cancelled.

    With --drain the trials in flight finish first.
    """
    from service.client.follow import wait_until_ended

    with api() as client:
        study: Mapping[str, Any] = client.stop(study_id, drain=drain)
        how = "stop (drain)" if drain else "stop"
        typer.echo(f"study {study_id}: {how} requested (status {study['status']})")
        if wait:
            study = wait_until_ended(client, study_id)
            reason = f": {study['status_reason']}" if study.get("status_reason") else ""
            typer.echo(f"study {study_id} {study['status']}{reason}")


@app.command()
def delete(study_id: StudyId) -> None:
    """Delete a study that ended, with its trials and models."""
    with api() as client:
        client.delete(study_id)
    typer.echo(f"study {study_id} deleted")


@app.command()
def report(
    study_id: StudyId,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", metavar="FILE", help="File to write (default study-ID.html)."
        ),
    ] = None,
) -> None:
    """Write a study's report: one HTML file with its plots."""
    with api() as client:
        html = client.report(study_id)
    path = output or Path(f"study-{study_id}.html")
    path.write_text(html, encoding="utf-8")
    typer.echo(f"wrote {path} ({len(html.encode())} bytes)")


@app.command()
def upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE", help=".npz or .csv")
    ],
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Dataset name (default: file stem).")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(metavar="TASK", help="multiclass, binary or regression (default: inferred)."),
    ] = None,
    target: Annotated[str | None, typer.Option(metavar="COLUMN", help="CSV label column.")] = None,
) -> None:
    """Upload a dataset for studies to train on.

    A study names it with task.dataset.upload_id.
    """
    form = {k: v for k, v in {"name": name, "task": task, "target": target}.items() if v}
    with api() as client:
        info = client.upload(file, **form)
    shape = "x".join(map(str, info["input_shape"]))
    typer.echo(
        f"dataset {info['id']} uploaded: {info['name']}, {info['task']}, {info['kind']} "
        f"samples of shape {shape}, {info['n_samples']} samples"
    )


@app.command()
def download(
    study_id: StudyId,
    kind: Annotated[
        ArtifactKind,
        typer.Option(metavar="KIND", help="torchscript, weights or spec."),
    ] = "torchscript",
    trial: Annotated[
        int | None, typer.Option(metavar="N", help="A trial number (default: the best).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="File to write.")
    ] = None,
) -> None:
    """Download a trained model: TorchScript, weights or spec."""
    with api() as client:
        content = client.artifact(study_id, kind, trial)
    where = "best" if trial is None else f"trials-{trial}"
    suffix = {"torchscript": "model.ts", "weights": "weights.pt", "spec": "spec.json"}[kind]
    path = output or Path(f"study-{study_id}-{where}-{suffix}")
    path.write_bytes(content)
    typer.echo(f"wrote {path} ({len(content)} bytes)")


app.command()(reads.quota)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(metavar="TENANT", help="The tenant the key acts for.")],
    name: Annotated[str, typer.Option(metavar="NAME", help="What the key is for.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="May manage keys.")] = False,
) -> None:
    """Create a key; it is printed this once (only its hash is stored)."""
    with api() as client:
        created = client.create_key(tenant, name, admin)
    typer.echo(created.get("key", ""))
    typer.echo(
        f"key {created['id']} for tenant {created['tenant']}"
        + (" (admin)" if created["admin"] else "")
        + ": store it now, it is not shown again",
        err=True,
    )


keys_app.command("list")(reads.keys_list)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(metavar="KEY_ID", help="The key's id (keys list).")],
) -> None:
    """Revoke a key at once."""
    with api() as client:
        client.revoke_key(key_id)
    typer.echo(f"key {key_id} revoked")
