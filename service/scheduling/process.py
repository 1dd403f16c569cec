"""``tuneforge scheduler``: the trial scheduler as a process of its own (cluster mode).

The API (``tuneforge serve --no-scheduler``) writes studies to the database; this process
reads them and runs their trials on the Ray cluster at ``TUNEFORGE_RAY_ADDRESS``. Both meet
only in the database, so either can restart alone.
"""

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from sqlalchemy.orm import sessionmaker

from service.config import Settings
from service.logs import configure_logging
from service.scheduling.metrics import serve_scheduler_metrics
from service.scheduling.scheduler import Scheduler
from service.store.engine import make_engine, migrate
from service.store.storage import make_storage

_STARTUP_S = 300.0  # joining a Ray cluster that is still starting can take a while


def run_scheduler_process(settings: Settings, echo: Callable[[str], Any]) -> int:
    """Run the scheduler until SIGTERM or SIGINT; returns the process's exit status."""
    configure_logging()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)  # idempotent: a no-op once `tuneforge migrate` has run
    storage = make_storage(settings.db_url)
    scheduler = Scheduler(settings, sessionmaker(engine, expire_on_commit=False), storage)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ray_at = settings.ray_address or "a local Ray (TUNEFORGE_RAY_ADDRESS is empty)"
    echo(f"scheduler: database {settings.db_url}, Ray {ray_at}")
    scheduler.start()
    try:
        waited = 0.0
        while scheduler.state == "starting" and not stop.is_set() and waited < _STARTUP_S:
            stop.wait(0.2)
            waited += 0.2
        if scheduler.state != "running":
            echo(f"scheduler did not start: {scheduler.error or scheduler.state}")
            return 1
        metrics = serve_scheduler_metrics(
            scheduler.metrics, settings.host, settings.scheduler_metrics_port
        )
        if metrics is not None:
            echo(f"scheduler metrics:   http://{settings.host}:{metrics.address[1]}/metrics")
        echo("scheduler running")
        while not stop.wait(1.0):
            if scheduler.state != "running":  # its thread ended on its own
                echo(f"scheduler stopped: {scheduler.error or 'its thread ended'}")
                return 1
        echo("scheduler shutting down: running trials resume at the next start")
        return 0
    finally:
        scheduler.shutdown()
        storage.remove_session()
        engine.dispose()
