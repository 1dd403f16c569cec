"""cProfile of ``benchmarks/api_scale.py``'s route functions, called in this process on the
same database (no socket): where a request's time goes."""

import cProfile
import inspect
import io
import pstats
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import sessionmaker

from benchmarks.scale.requests import PAGE
from service.api.routes import studies, trials
from service.store.engine import make_engine
from service.store.keys import ANONYMOUS_ADMIN
from service.store.storage import make_storage


def profile(url: str, study_id: int, n: int, calls: int) -> str:
    """cProfile of the route functions called directly (the same database, no socket, the
    answers serialized as FastAPI would): where a request's time goes."""
    engine = make_engine(url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    storage = make_storage(url)

    def call(fn: Callable[..., Any], **given: Any) -> None:
        with sessions() as session:
            given |= {"session": session, "storage": storage, "caller": ANONYMOUS_ADMIN}
            accepted = inspect.signature(fn).parameters
            fn(**{k: v for k, v in given.items() if k in accepted}).model_dump_json()

    cases: list[tuple[str, Callable[[], None]]] = [
        (
            f"list_trials(offset={min(5000, n - PAGE)}, limit={PAGE})",
            lambda: call(
                trials.list_trials,
                study_id=study_id,
                offset=min(5000, n - PAGE),
                limit=PAGE,
                state=None,
            ),
        ),
        ("get_study", lambda: call(studies.get_study, study_id=study_id)),
    ]
    report = []
    try:
        for name, fn in cases:
            fn()  # warm: imports, connections
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            for _ in range(calls):
                fn()
            prof.disable()
            per_call = (time.perf_counter() - t) / calls
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text).sort_stats("cumulative")
            stats.print_stats(25)
            report.append(
                f"== {name}: {1000 * per_call:.1f} ms a call ({calls} calls)\n{text.getvalue()}"
            )
    finally:
        storage.remove_session()
        storage.engine.dispose()
        engine.dispose()
    return "\n".join(report)
