"""``tuneforge agent ID -- COMMAND ...``: evaluate an external study's trials by running a
command for each, in any language (docs/external.md).

Each asked trial runs the command once, with its parameters in the environment:
``TUNEFORGE_PARAMS`` (JSON), ``TUNEFORGE_PARAMS_FILE`` (a JSON file's path),
``TUNEFORGE_TRIAL`` (its number) and ``TUNEFORGE_SEED``. Each line the command prints that is a
JSON object of numbers with an integer ``step`` is reported (``{"step": 3, "val_loss": 0.41}``);
one without ``step`` gives final metrics; every other line is passed through. The study's
pruner stopping the trial stops the command (SIGTERM to its process group, SIGKILL a few
seconds later); exit status 0 completes the trial with the metrics printed last, any other
fails it. The loop and the lease's renewal are :mod:`service.client.external`'s.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from service.client.connection import api
from service.client.reads import StudyId

if TYPE_CHECKING:
    from service.client.external import ExternalTrial, Outcome, RemoteStudy

KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL


def agent(
    study_id: StudyId,
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="COMMAND",
            help="The command to run for each trial, with its arguments, after -- "
            "(tuneforge agent 7 -- python train.py).",
        ),
    ],
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", metavar="N", min=1, help="Evaluate at most N.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", min=0, help="Ask for no trial after this long."),
    ] = None,
) -> None:
    """Evaluate an external study's trials here: run a command for each.

    The command gets the trial's parameters in TUNEFORGE_PARAMS (JSON) and
    TUNEFORGE_PARAMS_FILE, its number in TUNEFORGE_TRIAL and its seed in TUNEFORGE_SEED. Each
    line it prints that is a JSON object of numbers with an integer "step" is reported; the
    study's pruner may stop it there. Exit status 0 completes the trial with the metrics
    printed last; any other fails it. Ends when the study has no trial left to ask.
    """
    if shutil.which(command[0]) is None:
        raise typer.BadParameter(f"{command[0]}: no such command", param_hint="COMMAND")
    with api() as client:
        study = client.study(study_id)
        try:
            run_agent(study, command, n_trials=n_trials, timeout=timeout)
        except KeyboardInterrupt:
            typer.echo(f"study {study_id}: agent interrupted", err=True)
            raise typer.Exit(130) from None
        typer.echo(f"agent done: {study.stop_reason}")


def run_agent(
    study: "RemoteStudy",
    command: Sequence[str],
    n_trials: int | None = None,
    timeout: float | None = None,
    kill_grace_s: float = KILL_GRACE_S,
) -> list["Outcome"]:
    """Evaluate ``study``'s trials with ``command`` (see the module) until it has none left
    to ask, ``n_trials`` were evaluated or ``timeout`` seconds passed; one line per trial.

    Returns:
        Each trial's outcome, in order.
    """
    objective = command_objective(list(command), study.metrics, kill_grace_s)
    return study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[print_outcome])


def print_outcome(outcome: "Outcome") -> None:
    """``trial 3 complete val_loss=0.31``, ``trial 4 pruned at step 2``, ``trial 5 failed: ...``."""
    if outcome.state == "complete":
        values = " ".join(f"{name}={value:.6g}" for name, value in outcome.metrics.items())
        typer.echo(f"trial {outcome.number} complete {values}")
    elif outcome.state == "pruned":
        at = "" if outcome.step is None else f" at step {outcome.step}"
        typer.echo(f"trial {outcome.number} pruned{at}")
    elif outcome.state == "fail":
        typer.echo(f"trial {outcome.number} failed: {outcome.reason}")
    else:
        typer.echo(f"trial {outcome.number} lost: {outcome.reason}")


def metrics_line(line: str) -> tuple[int | None, dict[str, float]] | None:
    """``(step, metrics)`` of a line that is a JSON object whose values are numbers (``step``
    an integer of at least 0, or absent: final metrics); None for any other line."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    step = data.pop("step", None)
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        return None
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in data.values())
    if not data or not numbers:
        return None
    return step, {str(k): float(v) for k, v in data.items()}


def command_objective(
    command: list[str], metrics: Sequence[str] | None, kill_grace_s: float = KILL_GRACE_S
) -> Callable[["ExternalTrial"], dict[str, float]]:
    """An objective that runs ``command`` for a trial (see the module); only ``metrics`` (the
    task's, when known) are reported."""
    from service.client.external import TrialFailed, TrialPruned

    wanted = None if metrics is None else set(metrics)

    def objective(trial: "ExternalTrial") -> dict[str, float]:
        with tempfile.TemporaryDirectory(prefix=f"tuneforge-trial-{trial.number}-") as folder:
            params_file = Path(folder) / "params.json"
            params_file.write_text(json.dumps(trial.params))
            env = os.environ | {
                "TUNEFORGE_PARAMS": json.dumps(trial.params),
                "TUNEFORGE_PARAMS_FILE": str(params_file),
                "TUNEFORGE_TRIAL": str(trial.number),
                "TUNEFORGE_SEED": str(trial.seed),
                "PYTHONUNBUFFERED": "1",  # a Python command's lines come as printed
            }
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                env=env,
                start_new_session=True,  # its own process group: a prune stops it whole
            )
            stderr = _Tail(process.stderr)
            last: dict[str, float] = {}
            final: dict[str, float] = {}
            try:
                for line in process.stdout or ():
                    parsed = metrics_line(line)
                    if parsed is None:
                        typer.echo(line.rstrip("\n"))
                        continue
                    step, values = parsed
                    values = {k: v for k, v in values.items() if wanted is None or k in wanted}
                    if step is None:
                        final.update(values)
                        continue
                    last = values
                    if bad := [f"{k}={v}" for k, v in values.items() if not math.isfinite(v)]:
                        raise TrialFailed(f"{', '.join(bad)} at step {step}")
                    if values:
                        report(trial, values, step)
                    if trial.should_prune():
                        raise TrialPruned(f"at step {step}")
                status = process.wait()
            finally:
                terminate(process, kill_grace_s)
                stderr.join()
            if status != 0:
                how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
                raise TrialFailed(f"{how}: {stderr.last}" if stderr.last else how)
            if missing := [m for m in trial.objectives if m not in last | final]:
                raise TrialFailed(f"exit status 0 without {', '.join(missing)} printed")
            return last | final

    return objective


def report(trial: "ExternalTrial", values: dict[str, float], step: int) -> None:
    """Report a line's metrics; the API refusing them (422) fails the trial."""
    from service.client.errors import ApiError
    from service.client.external import TrialFailed

    try:
        trial.report(values, step)
    except ApiError as exc:
        if exc.status != 422:
            raise
        raise TrialFailed(f"step {step}: the service refused the line: {exc}") from exc


def terminate(process: "subprocess.Popen[str]", grace_s: float) -> None:
    """Stop ``process`` and its process group if it still runs: SIGTERM, then SIGKILL after
    ``grace_s`` seconds."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _Tail:
    """Passes a stream's lines to stderr in a thread, keeping the last non-blank one."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.last = ""
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            typer.echo(line, nl=False, err=True)
            self.last = line.strip() or self.last

    def join(self) -> None:
        self.thread.join(timeout=5)  # a child of the command may hold the pipe open
