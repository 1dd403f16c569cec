"""A live ``tuneforge scheduler`` process: a scheduler replica of its own, beside an API
started with ``TUNEFORGE_RUN_SCHEDULER=false`` (the compose topology, several replicas)."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.server import spawn_cli

READY = "scheduler running"


@dataclass
class SchedulerProcess:
    """A running ``tuneforge scheduler`` in its own session."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Its output so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process alone (SIGKILL, SIGSTOP, SIGCONT)."""
        self.process.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM (a paused one is continued first), 60 s, then SIGKILL."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_scheduler(
    database_url: str,
    data_dir: Path,
    ray_address: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> SchedulerProcess:
    """Start ``python -m service.cli scheduler`` on ``database_url`` and the Ray cluster at
    ``ray_address`` and wait until it says it runs (its metrics endpoint off unless ``env``
    sets ``TUNEFORGE_SCHEDULER_METRICS_PORT``).

    Raises:
        RuntimeError: it exited, or did not run after ``timeout`` s (its log in the message).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"scheduler-{time.time_ns()}.log"
    proc_env = {
        **os.environ,
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_DATABASE_URL": database_url,
        "TUNEFORGE_RAY_ADDRESS": ray_address,
        "TUNEFORGE_SCHEDULER_METRICS_PORT": "0",
        **(env or {}),
    }
    proc = spawn_cli("scheduler", proc_env, log_path, cwd)
    scheduler = SchedulerProcess(proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"scheduler exited ({proc.returncode}):\n{scheduler.log()[-4000:]}")
        if READY in scheduler.log():
            return scheduler
        time.sleep(0.2)
    scheduler.stop()
    raise RuntimeError(f"scheduler did not start:\n{scheduler.log()[-4000:]}")
