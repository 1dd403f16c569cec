"""The CLI's commands that read: watch, status, trials, best, studies, quota, keys list.

Each takes ``--json`` for the API's JSON on stdout, and nothing else there. States are given
in any case (``--state complete``). :mod:`service.client.cli` registers them.
"""

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from service.client.connection import api, print_json
from service.client.tables import best_summary, studies_table, trials_table

if TYPE_CHECKING:
    from service.client.api import Client, Study, Trial

StudyId = Annotated[int, typer.Argument(metavar="ID", help="The study's id.")]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead.")]
TrialState = Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"]
StudyStatus = Literal["pending", "running", "completed", "failed", "stopped"]
PAGE = 500


def all_trials(client: "Client", study_id: int, state: TrialState | None = None) -> list["Trial"]:
    """Every trial of a study (of one state), a page at a time."""
    items: list[Trial] = []
    while True:
        page = client.trials(study_id, state=state, offset=len(items), limit=PAGE)
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


def watch(
    study_id: StudyId,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as a line of JSON instead.")
    ] = False,
) -> None:
    """Watch a study live until it ends, then show its best trial.

    A study that ended shows its final lines at once. Ctrl-C stops watching, not the study:
    run watch again to see it so far and go on. Exits 1 when no trial completed.
    """
    from service.client.follow import follow_to_end, print_events

    with api() as client:
        study = client.study(study_id)
        if as_json:
            print_events(client, study)
        else:
            follow_to_end(client, study)


def status(study_id: StudyId, as_json: Json = False) -> None:
    """Show a study's status, trials by state and best value."""
    from service.client.progress import planned, status_line

    with api() as client:
        study = client.study(study_id)
    if as_json:
        print_json(study)
        return
    spec = study["spec"]
    typer.echo(f"study {study['id']} {study['name']} ({study['optuna_study_name']})")
    total = planned(study, spec["budget"]["max_trials"])
    typer.echo(status_line(study, total, show_best=len(spec["objectives"]) == 1))
    if study["status_reason"]:
        typer.echo(f"reason: {study['status_reason']}")


def trials(
    study_id: StudyId,
    state: Annotated[
        TrialState | None,
        typer.Option(
            case_sensitive=False,
            metavar="STATE",
            help="Only trials in this state: running, complete, pruned, fail or waiting.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """List a study's trials as a table: value, duration, parameters.

    A NAS trial shows its genotype; a failed one, why it failed.
    """
    with api() as client:
        items = all_trials(client, study_id, state)
    if as_json:
        print_json(items)
        return
    for line in trials_table(items):
        typer.echo(line)
    typer.echo(f"{len(items)} trials")


def best(study_id: StudyId, as_json: Json = False) -> None:
    """Show a study's best trial in a few lines.

    Its values, parameters, epochs and the command that downloads its model; a study of
    several objectives shows its Pareto front.
    """
    with api() as client:
        found = client.best(study_id)
        study = None if as_json else client.study(study_id)
    if study is None:
        print_json(found)
        return
    for line in best_summary(study, found):
        typer.echo(line)


def studies(
    state: Annotated[
        StudyStatus | None,
        typer.Option(
            case_sensitive=False,
            metavar="STATUS",
            help="Only studies with this status: pending, running, completed, failed or stopped.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """List your studies: status, trials done and running, best value."""
    with api({"status": "--state"}) as client:
        items: list[Study] = []
        while True:
            page = client.studies(offset=len(items), limit=PAGE, status=state)
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                break
    if as_json:
        print_json(items)
        return
    for line in studies_table(items):
        typer.echo(line)
    typer.echo(f"{len(items)} stud{'y' if len(items) == 1 else 'ies'}")


def quota(
    tenant: Annotated[
        str | None,
        typer.Argument(metavar="TENANT", help="A tenant (admins); default: your key's own."),
    ] = None,
    studies: Annotated[
        int | None, typer.Option(metavar="N", help="Active studies at once.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(metavar="N", help="Trials in flight at once.")
    ] = None,
    datasets: Annotated[int | None, typer.Option(metavar="N", help="Datasets kept.")] = None,
    stored_bytes: Annotated[
        int | None, typer.Option(metavar="BYTES", help="Bytes of uploads kept.")
    ] = None,
    weight: Annotated[
        float | None, typer.Option(metavar="W", help="Share of a full cluster.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Show a tenant's limits and usage, or set them.

    With options, an admin sets the limits of the tenant named.
    """
    changes = {
        "active_studies": studies,
        "trials_in_flight": trials,
        "datasets": datasets,
        "stored_bytes": stored_bytes,
        "weight": weight,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes and tenant is None:
        raise typer.BadParameter("name the tenant whose quota to set", param_hint="TENANT")
    with api() as client:
        shown = client.set_quota(tenant, **changes) if tenant and changes else client.quota(tenant)
    if as_json:
        print_json(shown)
        return
    typer.echo(f"tenant {shown['tenant']}")
    for name, limit in shown["limits"].items():
        used = shown["usage"].get(name)
        typer.echo(f"  {name:<17} {'' if used is None else used:>12} of {limit}")


def keys_list(as_json: Json = False) -> None:
    """List every key: id, tenant, role, state, name."""
    with api() as client:
        keys = client.keys()
    if as_json:
        print_json(keys)
        return
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        role = "admin" if k["admin"] else "tenant"
        line = f"{k['id']:>4}  {k['prefix']}…  {k['tenant']:<16} {role:<6} {state}"
        typer.echo(f"{line}  {k['name']}")
