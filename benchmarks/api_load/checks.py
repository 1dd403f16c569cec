"""After the load of ``benchmarks/load.py``: did every study and trial arrive (through the API
and in Optuna's tables), and what did the server log."""

import re
import time
from typing import Any

import httpx

from benchmarks.api_load.traffic import Outcome, Sample
from benchmarks.harness import FINISHED, all_trials, ms, ts


def wait_and_check(api: httpx.Client, out: Outcome, max_wait: float, t0_wall: float) -> None:
    """Wait for every created study to finish (at most max_wait s), then count what was lost."""
    started = time.monotonic()
    rows: dict[int, dict[str, Any]] = {}
    while True:
        got = api.get("/studies", params={"limit": 500}).raise_for_status().json()
        rows = {r["id"]: r for r in got["items"]}
        if all(rows.get(i, {}).get("status") in FINISHED for i in out.created):
            break
        if time.monotonic() - started > max_wait:
            out.note = f"not all studies finished within --max-wait {max_wait:g} s"
            break
        time.sleep(1.0)
    out.waited_s = time.monotonic() - started
    names = [r["name"] for r in rows.values()]
    ends: list[float] = []
    for study_id, name in sorted(out.created.items()):
        row = rows.get(study_id)
        if row is None:
            out.studies_lost.append(f"{name} (id {study_id}): missing from GET /studies")
            continue
        if names.count(name) != 1 or row["name"] != name:
            out.studies_lost.append(f"{name} (id {study_id}): listed {names.count(name)} times")
        if row["status"] != "completed":
            out.studies_lost.append(
                f"{name} (id {study_id}): status {row['status']} ({row['status_reason']})"
            )
        trials = all_trials(api, study_id)
        states = [t["state"] for t in trials]
        complete = states.count("COMPLETE")
        out.trials_complete += complete
        if complete != out.trials or len(trials) != out.trials:
            out.trials_lost.append(
                f"{name} (id {study_id}): {len(trials)} trials, "
                + ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
                + f" (budget {out.trials}); reasons: "
                + "; ".join(sorted({str(t["fail_reason"]) for t in trials if t["fail_reason"]}))
            )
        if row["trial_counts"].get("COMPLETE") != complete:
            out.trials_lost.append(
                f"{name} (id {study_id}): detail counts {row['trial_counts']} but the trial "
                f"list has {complete} COMPLETE"
            )
        for t in trials:
            end = ts(t["datetime_complete"])
            if t["state"] == "COMPLETE" and end is not None:
                ends.append(end - t0_wall)
    out.trials_in_window = sum(0 <= e <= out.seconds for e in ends)
    out.trials_while_polled = sum(0 <= e <= out.poll_wall_s for e in ends)
    out.all_done_s = max(ends) if ends else None
    # Rows the server lists that this run did not create: a double insert would show here.
    extra = [r for i, r in rows.items() if i not in out.created]
    for r in extra:
        out.studies_lost.append(f"unexpected study {r['name']} (id {r['id']}) in GET /studies")


def check_database(database_url: str, out: Outcome, optuna_names: dict[int, str]) -> None:
    """Count every created study's trials straight from Optuna's tables (server stopped)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(database_url)
    try:
        for study_id, optuna_name in sorted(optuna_names.items()):
            name = out.created[study_id]
            try:
                study = optuna.load_study(study_name=optuna_name, storage=storage)
            except KeyError:
                out.db_trials_lost.append(f"{name}: Optuna study {optuna_name} missing")
                continue
            states = [t.state.name for t in study.get_trials(deepcopy=False)]
            if states.count("COMPLETE") != out.trials or len(states) != out.trials:
                out.db_trials_lost.append(
                    f"{name}: "
                    + ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
                    + f" in Optuna's tables (budget {out.trials})"
                )
        out.db_checked = True
    finally:
        storage.remove_session()
        storage.engine.dispose()


def log_problems(text: str) -> list[str]:
    """The server log's errors, counted: each exception with the innermost frame of the
    project's code it passed through, each message logged with a traceback, each 5xx answer."""
    counts: dict[str, int] = {}

    def add(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    frame_re = re.compile(r'File ".*?/((?:service|search|models)/[^"]+)", line (\d+), in (\w+)')
    exc_re = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout)\w*)(: .*)?$")
    access_re = re.compile(r'"(GET|POST|PATCH|DELETE|PUT) (\S+) HTTP/[\d.]+" (5\d\d)')
    frame, previous = "", ""
    for line in text.splitlines():
        if line.startswith("Traceback"):
            frame = ""
            if previous and "Exception in ASGI application" not in previous:
                add(f"logged with a traceback: {previous.strip()[:200]}")
        elif found := frame_re.search(line):
            frame = f"{found[1]}:{found[2]} in {found[3]}"
        elif found := exc_re.match(line):
            add(f"{line[:240]}" + (f" (innermost project frame: {frame})" if frame else ""))
        elif found := access_re.search(line):
            path = re.sub(r"/\d+", "/{id}", found[2].split("?")[0])
            add(f"answered {found[3]}: {found[1]} {path}")
        previous = line
    return [f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def error_summary(out: Outcome) -> list[str]:
    """The client's errors by endpoint and outcome, with one example answer each."""
    groups: dict[str, list[Sample]] = {}
    for sample in out.submissions + out.polls:
        if not sample.ok:
            kind = str(sample.status) if sample.status else sample.error.split(":")[0]
            groups.setdefault(f"{sample.endpoint} -> {kind}", []).append(sample)
    return [
        f"{len(samples)} x {key} (sent {min(x.sent for x in samples):.1f}-"
        f"{max(x.sent for x in samples):.1f} s, answered {min(x.done for x in samples):.1f}-"
        f"{max(x.done for x in samples):.1f} s after the start, latency "
        f"{ms(min(x.latency for x in samples))}-{ms(max(x.latency for x in samples))} ms; "
        f"answer: {samples[0].error[:200]!r})"
        for key, samples in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    ]
