"""A live ``tuneforge serve`` and a fresh PostgreSQL schema: what the benchmarks and the test
suite (``tests/conftest.py``) start, written once."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.client.cli import read_admin_key

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# A benchmark's Ray binds to loopback: with clustering off Ray uses 127.0.0.1 rather than the
# machine's routable address. Given to every process a benchmark starts (servers, Ray Tune).
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``tuneforge serve`` process in its own session (its Ray's processes too)."""

    url: str
    database_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float = 0.0  # from the start of the process to a healthy answer

    @property
    def key(self) -> str | None:
        """The admin key the server wrote to its data directory on first start."""
        return read_admin_key(self.data_dir)

    def client(self, key: str | None = None) -> httpx.Client:
        """A client of the API acting with ``key`` (None: no key at all)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=30, headers=headers)

    @property
    def api(self) -> httpx.Client:
        """A client with the admin key."""
        return self.client(self.key)

    def log(self) -> str:
        """The server's output so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, group: bool = False) -> None:
        """Send ``sig`` and wait (60 s, then SIGKILL). ``group``: then SIGKILL whatever is left
        of its process group (its local Ray), as a benchmark must before measuring the next
        system; tests leave it, a killed server's Ray then outlives it as after a crash."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def spawn_cli(command: str, env: Mapping[str, str], log_path: Path, cwd: Path | None) -> Any:
    """``python -m service.cli COMMAND`` in a session of its own, its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", command],
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[str]:
    """A Ray head node in this process's care, bound to 127.0.0.1 (its address): what scheduler
    processes and test servers join. Shut down on exit."""
    import ray
    from ray.cluster_utils import Cluster

    # Every node on loopback (see search.ray_runtime): the same switch the service uses.
    os.environ.update(LOOPBACK_RAY)
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    head = {
        "num_cpus": num_cpus,
        "gcs_server_port": free_port(),
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        yield str(cluster.address)
    finally:
        cluster.shutdown()


def start_server(
    database_url: str,
    data_dir: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
    cwd: Path | None = None,
) -> Server:
    """Start ``python -m service.cli serve`` on 127.0.0.1 and wait until it is healthy.

    Healthy: ``GET /healthz`` says the scheduler is ``running`` (its local Ray is up and, unless
    ``TUNEFORGE_WARM_WORKERS=false``, one worker per CPU warmed), or ``off`` where ``env`` has
    ``TUNEFORGE_RUN_SCHEDULER=false`` (the API answers). The server gets this process's
    environment, its address, data directory and database, ``TUNEFORGE_RAY_NUM_CPUS=2``, then
    ``env`` (which overrides any of them).

    Raises:
        RuntimeError: the server exited, or was not healthy after ``timeout`` s (its log's end
            in the message; it is killed).
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}-{time.time_ns()}.log"
    proc_env = {
        **os.environ,
        "TUNEFORGE_PORT": str(port),
        "TUNEFORGE_HOST": "127.0.0.1",
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_DATABASE_URL": database_url,
        "TUNEFORGE_RAY_NUM_CPUS": "2",
        **(env or {}),
    }
    run_scheduler = proc_env.get("TUNEFORGE_RUN_SCHEDULER", "true").lower()
    ready = "off" if run_scheduler in ("false", "0", "no", "off") else "running"
    started = time.perf_counter()
    proc = spawn_cli("serve", proc_env, log_path, cwd)
    server = Server(f"http://127.0.0.1:{port}", database_url, data_dir, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{server.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if httpx.get(f"{server.url}/healthz", timeout=2).json()["scheduler"] == ready:
                server.startup_s = time.perf_counter() - started
                return server
        time.sleep(0.2)
    server.stop(signal.SIGKILL, group=True)
    raise RuntimeError(f"server did not become healthy:\n{server.log()[-4000:]}")


@contextlib.contextmanager
def serve(
    database_url: str, data_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """A benchmark's server: :func:`start_server` from the repository root with Ray on
    loopback and the service's own defaults (workers warmed) unless ``env`` says otherwise;
    stopped with SIGTERM on exit, then its whole process group killed."""
    server = start_server(database_url, data_dir, env={**LOOPBACK_RAY, **(env or {})}, cwd=ROOT)
    try:
        yield server
    finally:
        server.stop(group=True)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL answers at 127.0.0.1:5432 (database ``test``)."""


@contextlib.contextmanager
def postgres_schema(prefix: str = "tf_bench") -> Iterator[str]:
    """A fresh schema in the local PostgreSQL's ``test`` database, dropped afterwards; yields
    its SQLAlchemy URL (``search_path`` set to the schema).

    Raises:
        PostgresUnavailable: no PostgreSQL answers (the reason in the message).
    """
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL at 127.0.0.1:5432 (database test) is not reachable: {exc}"
        ) from exc
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        drop_schema(schema)


def drop_schema(schema: str) -> None:
    """``DROP SCHEMA ... CASCADE``, first ending every other session that still holds a lock
    on one of its tables: a server or a Ray worker of a killed one, still writing, would
    otherwise deadlock the drop (the drop would be the victim)."""
    import psycopg

    lockers = """
        SELECT DISTINCT l.pid FROM pg_locks l
        JOIN pg_class c ON c.oid = l.relation
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND l.pid <> pg_backend_pid()
    """
    for attempt in range(5):
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            for (pid,) in conn.execute(lockers, (schema,)).fetchall():
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            try:
                conn.execute("SET lock_timeout = '10s'")
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
                return
            except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                if attempt == 4:
                    raise
        time.sleep(1)


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A database URL for a fresh server: ``sqlite`` (a file in ``workdir``) or
    ``postgresql`` (:func:`postgres_schema`)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'tuneforge.db'}"
        return
    with postgres_schema() as url:
        yield url


def run_child(args: list[str], log_path: Path, timeout: float) -> int | None:
    """Run ``python *args`` from the repository root in its own session, with Ray on loopback,
    its output in ``log_path``; wait at most ``timeout`` s, then end its whole process group
    (SIGTERM, 20 s, SIGKILL): a Ray it started dies with it. Returns its exit status (None:
    it had to be stopped)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **LOOPBACK_RAY},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    status: int | None = None
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        # Ray's own processes live in the child's session; reap any that outlived it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return status
