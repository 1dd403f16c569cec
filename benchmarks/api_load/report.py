"""The report of ``benchmarks/load.py``: the issue's figures and goals, latency per endpoint,
and what went wrong."""

from benchmarks.api_load.checks import error_summary
from benchmarks.api_load.traffic import ENDPOINTS, Outcome
from benchmarks.harness import ms, percentile, report_head, versions

# The machine counts as busy when other processes used more than this many CPUs on average.
FOREIGN_RATE = 0.05


def latency_table(outs: list[Outcome]) -> str:
    """One row per endpoint (and all polls): count, errors, p50 / p99 / max latency."""
    many = len(outs) > 1
    lines = [
        ("| database " if many else "")
        + "| endpoint | requests | errors | p50 ms | p99 ms | max ms | p99 ms, from send |",
        ("|---" if many else "") + "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for out in outs:
        groups = [
            (e, [s for s in out.submissions + out.polls if s.endpoint == e]) for e in ENDPOINTS
        ]
        groups.append(("all polls", out.polls))
        for name, samples in groups:
            if not samples:
                continue
            lat = [s.latency for s in samples]
            lines.append(
                (f"| {out.database} " if many else "")
                + f"| {name} | {len(samples)} | {out.errors(samples)} "
                f"| {ms(percentile(lat, 50))} | {ms(percentile(lat, 99))} "
                f"| {ms(max(lat))} | {ms(percentile([s.service for s in samples], 99))} |"
            )
    return "\n".join(lines)


def _met(n: int) -> str:
    return "goal met" if n == 0 else "goal NOT met"


def figures_table(outs: list[Outcome]) -> str:
    """The issue's figures and goals, one column per run."""
    head = "| figure | " + " | ".join(o.database for o in outs) + " |"
    rows = [head, "|---|" + "---:|" * len(outs)]

    def row(name: str, cells: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row(
        "errors (non-2xx or transport), goal 0",
        [f"**{o.errors()}** ({_met(o.errors())})" for o in outs],
    )
    row(
        "studies lost (answered 201, then missing or not completed), goal 0",
        [f"**{len(o.studies_lost)}** ({_met(len(o.studies_lost))})" for o in outs],
    )
    row(
        "trials lost (API / Optuna's tables), goal 0",
        [
            f"**{len(o.trials_lost)} / {len(o.db_trials_lost) if o.db_checked else 'n/a'}** "
            f"({_met(len(o.trials_lost) + len(o.db_trials_lost) + (not o.db_checked))})"
            for o in outs
        ],
    )
    row("studies submitted / answered 201", [f"{o.studies} / {len(o.created)}" for o in outs])
    row(
        "POST /studies latency p50 / p99 / max, ms",
        [_lat3([s.latency for s in o.submissions]) for o in outs],
    )
    row("poll latency p50 / p99 / max, ms", [_lat3([s.latency for s in o.polls]) for o in outs])
    row("polls planned / sent", [f"{o.polls_planned} / {len(o.polls)}" for o in outs])
    row(
        "polls: planned rate / achieved, req/s",
        [
            f"{o.rate:g} / {len(o.polls) / o.poll_wall_s:.0f}" if o.poll_wall_s else "n/a"
            for o in outs
        ],
    )
    row(
        "trials complete (budget)",
        [f"{o.trials_complete} ({o.studies * o.trials})" for o in outs],
    )
    row(
        "trials completed in the planned polling window / until the last poll's answer",
        [
            f"{o.trials_in_window} in {o.seconds:g} s / {o.trials_while_polled} in "
            f"{o.poll_wall_s:.0f} s"
            for o in outs
        ],
    )
    row(
        "all trials done after, s / trials per minute overall",
        [
            f"{o.all_done_s:.0f} / {60 * o.trials_complete / o.all_done_s:.0f}"
            if o.all_done_s
            else "n/a"
            for o in outs
        ],
    )
    row(
        "other processes' CPU during the run, CPU-s",
        [
            "n/a"
            if o.foreign_cpu_s is None
            else f"{o.foreign_cpu_s:.1f}" + (" (busy machine)" if _busy(o) else "")
            for o in outs
        ],
    )
    row(
        "CPU-s during the load: client / server process / its Ray and trials",
        [f"{o.cpu_client_s:.1f} / {o.cpu_server_s:.1f} / {o.cpu_ray_s:.1f}" for o in outs],
    )
    row("server start (Ray up, workers warmed), s", [f"{o.startup_s:.1f}" for o in outs])
    return "\n".join(rows)


def _lat3(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))} / {ms(max(values))}"


def _busy(out: Outcome) -> bool:
    window = out.poll_wall_s + out.waited_s
    return out.foreign_cpu_s is not None and out.foreign_cpu_s > FOREIGN_RATE * max(window, 1)


def problems(out: Outcome) -> list[str]:
    """What went wrong, for the terminal and for the notes."""
    lines = [f"{out.database}: {out.note}"] if out.note else []
    if len(out.polls) < out.polls_planned:
        lines.append(
            f"{out.database}: {out.polls_planned - len(out.polls)} of {out.polls_planned} "
            f"planned polls not sent: the client stops sending after --max-poll-s "
            f"{out.max_poll_s:g} s"
        )
    lines += [f"{out.database}: errors: {e}" for e in error_summary(out)]
    lines += [f"{out.database}: study lost: {s}" for s in out.studies_lost[:10]]
    lines += [f"{out.database}: trials lost: {s}" for s in out.trials_lost[:10]]
    lines += [
        f"{out.database}: trials lost (Optuna's tables): {s}" for s in out.db_trials_lost[:10]
    ]
    lines += [f"{out.database}: server log: {s}" for s in out.log_problems[:12]]
    return lines


def goals_met(outs: list[Outcome]) -> bool:
    """The issue's goals: no error, every study and every trial there (API and tables)."""
    return all(
        x.errors() == 0
        and not x.studies_lost
        and len(x.created) == x.studies
        and not x.trials_lost
        and not x.db_trials_lost
        and x.db_checked
        for x in outs
    )


def after_500(out: Outcome) -> tuple[int, int]:
    """Transport errors sent within 1 s after a 500 answer, and transport errors in all."""
    samples = out.submissions + out.polls
    fives = sorted(t.done for t in samples if t.status is not None and t.status >= 500)
    transport = [t for t in samples if t.status is None]
    after = [t for t in transport if any(t.sent - 1.0 <= d <= t.sent for d in fives)]
    return len(after), len(transport)


def report(outs: list[Outcome], command: str) -> str:
    """Head lines, the figures, the latency table, the goals' verdict and the notes."""
    o = outs[0]
    lines = [
        report_head(
            versions("ray", "optuna", "fastapi", "uvicorn", "httpx"),
            f"{o.studies} studies of {o.trials} trials of {o.epochs} epochs submitted at once; "
            f"polls for {o.seconds:g} s at {o.rate:g} requests/s (open loop) from {o.clients} "
            f"client tasks; databases: {', '.join(x.database for x in outs)}.",
            command,
        ),
        "",
        figures_table(outs),
        "",
        latency_table(outs),
        "",
        "Goals (0 errors, 0 studies lost, 0 trials lost): "
        + ("**met**" if goals_met(outs) else "**NOT met**")
        + f" ({', '.join(x.database for x in outs)}).",
    ]
    for x in outs:
        window = x.poll_wall_s or 1.0
        after, transport = after_500(x)
        lines += [
            "",
            f"{x.database}: every study finished {x.waited_s:.0f} s after the polling ended; "
            f"CPUs used while polled: server process {x.cpu_server_s / window:.2f}, its Ray "
            f"and trials {x.cpu_ray_s / window:.2f}, this client {x.cpu_client_s / window:.2f}"
            + (
                f"; {after} of {transport} transport errors sent within 1 s after a 500"
                if transport
                else ""
            )
            + ".",
        ]
    notes = [line for x in outs for line in problems(x)]
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines)
