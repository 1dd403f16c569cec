"""One wait point for every running study: the next Ray event of any run."""

import time
from collections.abc import Callable, Iterable

import ray

from search.algorithm import Run


def wait_any(
    runs: Iterable[Run],
    timeout: float,
    on_error: Callable[[Run, Exception], None] | None = None,
) -> int:
    """Wait until any trial of any run has an event, then hand every ready event to its run.

    Args:
        runs: the running studies.
        timeout: longest wait, in seconds, when nothing is ready.
        on_error: called when a run fails to handle its event (say, its database write
            fails), so one study's failure does not stop the others; without it, it raises.

    Returns:
        How many events were handled (0 after a timeout with nothing ready).
    """
    owners = {ref: run for run in runs for ref in run.waiting_on()}
    if not owners:
        time.sleep(timeout)
        return 0
    refs = list(owners)
    ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    if not ready:
        return 0
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in ready:
        run = owners[ref]
        try:
            run.on_ready(ref)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(run, exc)
    return len(ready)
