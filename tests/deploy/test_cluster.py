"""Cluster mode end to end: the docker-compose topology, run as local processes.

Each service of ``docker-compose.yml`` (but ``postgres``: the local PostgreSQL stands in for it)
runs with its own command and environment, read from the file, in the order its
``depends_on`` conditions and health checks give: ``migrate``, a Ray head and a Ray worker
node started with ``ray start``, ``tuneforge scheduler`` and ``tuneforge serve
--no-scheduler`` as separate processes, optuna-dashboard. The quickstart study then runs
through the CLI, and its trials must have run on the worker node.

Everything runs in a private network namespace that has only a loopback interface: Ray's
nodes take 127.0.0.1 as their address there (on the host, Ray swaps 127.0.0.1 for the
machine's routable address when it forms a cluster), no port can clash with the host's, and
no packet leaves loopback. PostgreSQL is reached through its Unix socket, which the namespace
shares with the host.

What differs from the compose file, and why:
- ``postgres``: the database host is the local server's socket, in a schema of its own;
- ``ray-head``: the host name is 127.0.0.1 (one machine);
- the volumes are temporary folders: the data volume (and the population volume inside it)
  one folder for every service, the Ray token's another (``/ray-secret`` in the commands and
  the environment points there);
- the scheduler runs twice (``scheduler`` and ``scheduler-2``), as ``--scale scheduler=2``;
  the second serves its metrics on another port (two containers may share one, two local
  processes may not);
- TUNEFORGE_NODE_IP=127.0.0.1 for the Ray nodes (in a container Ray finds the address);
- RAY_EXTRA_ARGS gives the head a temporary folder of its own, and the worker's and the
  schedulers' nodes other ports for their dashboard agents (four nodes on one machine), which
  join one after the other (on one machine, two at once can pick the same socket files);
- servers bind 127.0.0.1 (TUNEFORGE_HOST, TUNEFORGE_DASHBOARD_HOST), not every interface.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import PG_ADMIN

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOCKET_DIR = "/var/run/postgresql"
_VAR = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?message}``."""

    def sub(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        if m.group("plain"):
            return env.get(m.group("plain"), "")
        expr = m.group("braced")
        for op in (":-", "-", ":?", "?"):
            if op in expr:
                name, rest = expr.split(op, 1)
                have = env.get(name)
                if op in (":-", ":?") and not have:
                    have = None
                if have is not None:
                    return have
                if "?" in op:
                    raise KeyError(f"{name}: {rest}")
                return interpolate(rest, env)
        return env.get(expr, "")

    return _VAR.sub(sub, value)


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def service_env(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v), dotenv) for k, v in raw.items() if v is not None}


def start_order(services: Mapping[str, Any]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in services[name].get("depends_on") or {}:
            visit(dep)
        order.append(name)

    for name in services:
        visit(name)
    return order


@dataclass
class Namespace:
    """A network namespace with only loopback, and the processes started in it."""

    name: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def start(self, service: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.commands[service] = (argv, dict(env))
        with (self.logs / f"{service}.log").open("ab") as log:
            self.procs[service] = subprocess.Popen(
                self.argv(*argv),
                env=dict(env),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart(self, service: str) -> None:
        """Start a service that exited again, with its command and environment (its log goes
        on in the same file), as compose's restart policy does."""
        argv, env = self.commands[service]
        self.start(service, argv, env)

    def run(
        self, argv: list[str], env: Mapping[str, str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv),
            env=dict(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self, service: str) -> str:
        return (self.logs / f"{service}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        # A few seconds to exit cleanly (``ray start --block`` takes longer to wind its node
        # down than is worth waiting for at teardown); then everything is killed.
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        # Whatever is left in the namespace (Ray's raylets and workers) goes with it.
        pids = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a private network namespace")
    name = f"tf-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Namespace(name, tmp_path / "logs")
    ns.logs.mkdir()
    try:
        subprocess.run(ns.argv("ip", "link", "set", "lo", "up"), check=True)
        yield ns
    finally:
        ns.stop()
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def socket_database() -> Iterator[str]:
    """A fresh schema of the local PostgreSQL, reached through its Unix socket."""
    if not Path(SOCKET_DIR).is_dir():
        pytest.skip(f"no PostgreSQL socket directory at {SOCKET_DIR}")
    schema = f"tf_cluster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield (
        f"postgresql+psycopg://postgres@/test?host={SOCKET_DIR}&options=-csearch_path%3D{schema}"
    )
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def wait_until(check: Any, what: str, ns: Namespace, service: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        proc = ns.procs.get(service)
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            break
        time.sleep(1)
    pytest.fail(f"{service}: {what} did not happen:\n{ns.log(service)}")


# Compose restarts these services when they exit with an error.
_RESTARTED = ("unless-stopped", "always", "on-failure")


def wait_node_started(ns: Namespace, service: str, spec: Mapping[str, Any]) -> None:
    """Wait until a ``ray start --block`` node has joined the cluster (it says "Ray runtime
    started"). A node that exits first is started again where the compose file's restart
    policy says so, as compose would: under load a worker's raylet can miss Ray's own 30 s
    window to register and ``ray start`` gives up."""
    deadline = time.monotonic() + 300
    restarts = 0
    while time.monotonic() < deadline:
        if "Ray runtime started" in ns.log(service):
            return
        proc = ns.procs[service]
        if proc.poll() is not None:
            if spec.get("restart") not in _RESTARTED or restarts == 3:
                break
            restarts += 1
            with (ns.logs / f"{service}.log").open("ab") as log:
                log.write(f"\n== restarted ({restarts}) after exit {proc.returncode}\n".encode())
            ns.restart(service)
        time.sleep(1)
    pytest.fail(f"{service}: its Ray node did not start:\n{ns.log(service)}")


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's session folder: short, as its sockets' paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tfray-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_compose_topology_runs_the_quickstart_with_trials_on_the_worker(
    namespace: Namespace, socket_database: str, ray_tmp: Path, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    dotenv = env_file(ROOT / ".env.example")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    base = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    secret_dir = tmp_path / "ray-secret"
    local = {
        "TUNEFORGE_DATABASE_URL": socket_database,
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_HOST": "127.0.0.1",
        "TUNEFORGE_DASHBOARD_HOST": "127.0.0.1",
    }
    # Four Ray nodes on one machine: the head, a worker, and the two schedulers' (no resources).
    extra_args = {
        "ray-head": f"--temp-dir={ray_tmp}",
        "ray-worker": "--dashboard-agent-listen-port=52366",
        "scheduler": "--dashboard-agent-listen-port=52367",
        "scheduler-2": "--dashboard-agent-listen-port=52368",
    }
    joining: list[str] = []  # Ray nodes started after the head, in order
    services = {**services, "scheduler-2": services["scheduler"]}  # --scale scheduler=2
    envs: dict[str, dict[str, str]] = {}
    for name in start_order(services):
        if name == "postgres":
            continue  # the local PostgreSQL stands in for it
        service = services[name]
        env = {**base, **service_env(service, dotenv)}
        for key, value in env.items():
            env[key] = value.replace("ray-head:", "127.0.0.1:").replace(
                "/ray-secret", str(secret_dir)
            )
        env.update({k: v for k, v in local.items() if k in env or k.endswith("_HOST")})
        if name in extra_args:
            env["TUNEFORGE_NODE_IP"] = "127.0.0.1"
            env["RAY_EXTRA_ARGS"] = extra_args[name]
        if name == "scheduler-2":
            env["TUNEFORGE_SCHEDULER_METRICS_PORT"] = "9101"
        envs[name] = env
        for dep, condition in (service.get("depends_on") or {}).items():
            wanted = condition.get("condition", "service_started")
            if dep == "postgres":
                continue
            if wanted == "service_completed_successfully":
                proc = namespace.procs[dep]
                proc.wait(300)
                assert proc.returncode == 0, namespace.log(dep)
            elif wanted == "service_healthy":
                wait_healthy(namespace, dep, services[dep], envs[dep])
        command = [
            interpolate(str(part), dotenv).replace("/ray-secret", str(secret_dir))
            for part in service["command"]
        ]
        if name in extra_args and name != "ray-head":
            # One node joins at a time: two `ray start` at the same moment on one machine can
            # pick the same socket files (seen once: the second's object store died on bind).
            # Containers have a file system each; compose starts them together.
            for earlier in joining:
                wait_node_started(namespace, earlier, services[earlier])
            joining.append(name)
        namespace.start(name, command, env)

    for name in ("api", "dashboard"):
        wait_healthy(namespace, name, services[name], envs[name])
    for name in ("ray-worker", "scheduler", "scheduler-2"):
        wait_node_started(namespace, name, services[name])
    token = secret_dir / "token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) >= 40

    cli_env = {
        **base,
        "TUNEFORGE_URL": "http://127.0.0.1:8000",
        "TUNEFORGE_DATA_DIR": str(data_dir),  # the admin key the API wrote to the volume
    }
    ray_client_env = {**cli_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    try:
        run = namespace.run(
            ["tuneforge", "submit", "examples/digits-mlp.yaml", "--wait"], cli_env, timeout=400
        )
    except subprocess.TimeoutExpired as exc:
        logs = "\n".join(f"== {n}\n{namespace.log(n)}" for n in namespace.procs)
        pytest.fail(f"the quickstart did not finish: {exc.stdout!r}\n{logs}")
    assert run.returncode == 0, run.stdout + run.stderr + namespace.log("scheduler")
    assert "completed: max_trials reached" in run.stdout
    study_id = int(re.search(r"^study (\d+) submitted", run.stdout, re.M).group(1))  # type: ignore[union-attr]
    best = float(re.search(r"val_accuracy=([0-9.]+)", run.stdout).group(1))  # type: ignore[union-attr]
    assert best > 0.9, run.stdout

    # Which node ran each trial, as the API reports it, against Ray's own list of nodes.
    probe = namespace.run(
        [
            sys.executable,
            "-c",
            "import json, os, sys, ray.util.state as s;"
            "from service.client import Client;"
            "from service.client.cli import read_admin_key;"
            "from pathlib import Path;"
            "key = read_admin_key(Path(os.environ['TUNEFORGE_DATA_DIR']));"
            "c = Client('http://127.0.0.1:8000', key);"
            f"trials = c.trials({study_id}, limit=100)['items'];"
            "nodes = s.list_nodes(address='http://127.0.0.1:8265');"
            "json.dump({'trials': [t['node_id'] for t in trials],"
            " 'nodes': {n.node_id: n.is_head_node for n in nodes}}, sys.stdout)",
        ],
        ray_client_env,  # the Ray dashboard answers only with the token
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    workers = {node for node, head in seen["nodes"].items() if not head}
    assert len(seen["nodes"]) == 4, seen  # the head, the worker, the schedulers' nodes
    # Without the token, Ray refuses.
    refused = namespace.run(
        [
            sys.executable,
            "-c",
            "import ray.util.state as s; s.list_nodes(address='http://127.0.0.1:8265')",
        ],
        cli_env,
    )
    assert refused.returncode != 0
    # Both schedulers run, as replicas; one of them ran the study.
    logs = [(namespace.logs / f"{name}.log").read_text() for name in ("scheduler", "scheduler-2")]
    assert all("scheduler running" in log for log in logs), logs
    ran = [log for log in logs if re.search(rf"study {study_id} \(.*\) running", log)]
    assert len(ran) == 1, logs
    assert len(seen["trials"]) == 12
    (ran_on,) = set(seen["trials"])  # every trial ran on one node: the worker, with the CPUs
    assert ran_on in workers, seen

    # optuna-dashboard, its own process on the same database, lists the study.
    optuna_name = json.loads(
        namespace.run(
            [
                sys.executable,
                "-c",
                "import httpx, json, sys;"
                "json.dump(httpx.get('http://127.0.0.1:8080/api/studies').json(), sys.stdout)",
            ],
            cli_env,
        ).stdout
    )
    names = [s["study_name"] for s in optuna_name["study_summaries"]]
    assert len(names) == 1 and names[0].startswith("digits-mlp-")


def wait_healthy(
    ns: Namespace, name: str, service: Mapping[str, Any], env: Mapping[str, str]
) -> None:
    """Run the service's compose health check in the namespace until it passes."""
    test = service["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        argv = ["sh", "-c", test[1]]
    else:
        assert test[0] == "CMD", test
        argv = list(test[1:])

    def healthy() -> bool:
        try:
            return ns.run(argv, env, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    wait_until(healthy, "its health check passing", ns, name, timeout=300)
