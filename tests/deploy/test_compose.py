"""The container deployment's wiring: docker-compose.yml, the Dockerfile and .env.example.

No Docker runs here: the files are parsed (compose with PyYAML, the Dockerfile with the small
parser below) and checked against each other and against the code they start: one database
URL for every service that needs it, one data volume at one path, health checks that gate the
start order, the Ray addresses, the commands (which must exist in the `tuneforge` CLI), a
multi-stage non-root image, and every setting documented in .env.example.
"""

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from service.cli import app
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

NEEDS_DATABASE = ("migrate", "api", "scheduler", "dashboard")
WRITES_DATA = ("ray-head", "ray-worker", "scheduler", "api")
RAY_PROCESSES = ("ray-head", "ray-worker", "scheduler")  # Ray nodes and the Ray driver
TUNEFORGE_SERVICES = ("migrate", "ray-head", "ray-worker", "api", "scheduler", "dashboard")


# --- docker-compose.yml --------------------------------------------------------------------


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


def _env_example() -> dict[str, str]:
    """The variables .env.example sets (not the commented ones), as docker compose reads them."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match[1]] = match[2]
    return values


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alternative}``, ``${VAR+alternative}``,
    ``$VAR``; ``$$`` is a literal ``$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        op, arg = match[2], match[3]
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise KeyError(f"${{{name}}} is required: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        if op is not None and op.endswith("+"):
            return "" if unset else arg
        return value or ""

    return _VARIABLE.sub(one, text)


def compose_variables(text: str) -> set[str]:
    """The variables compose substitutes in a file (``$${X}`` is left to the container)."""
    return {m[1] or m[4] for m in _VARIABLE.finditer(text) if m[0] != "$$"}


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
    for name in TUNEFORGE_SERVICES:  # every tuneforge container agrees on the path
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


def test_ray_auth_is_off_only_on_the_closed_compose_network(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in RAY_PROCESSES:
        assert environment(services[name]).get("RAY_AUTH_MODE") == "disabled", name
    published = {"api": "8000", "dashboard": "8080", "ray-head": "8265"}  # Ray: its dashboard
    for name, service in services.items():
        for port in service.get("ports", []):
            target = str(port).rsplit(":", 1)[-1] if isinstance(port, str) else port["target"]
            assert published.get(name) == str(target), f"{name} publishes {port}"
            assert isinstance(port, str) and port.startswith("${TUNEFORGE_"), port
            host_ip = interpolate(port, {}).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", f"{name} is published beyond loopback by default"


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
    assert checked >= {"serve", "scheduler", "migrate", "dashboard"}


def test_the_cpu_override_drops_the_gpu_reservation() -> None:
    override = _load(COMPOSE_CPU)
    reservations = override["services"]["ray-worker"]["deploy"]["resources"]["reservations"]
    assert reservations == {"devices": []}
    assert isinstance(reservations["devices"], Reset), "merged, [] would keep the GPUs: !reset"


# --- Dockerfile ----------------------------------------------------------------------------


@dataclass
class Stage:
    """One FROM ... [AS name] of a Dockerfile and its instructions, in order."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions per stage: comments dropped, continued lines joined, keywords uppercased."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(global_args, stages)


def resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], image)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_the_image_is_multi_stage_and_runs_as_a_user(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    final = dockerfile.stages[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    # The runtime takes the virtual environment the builder stage made; no build tools.
    copies = final.all("COPY")
    sources = [c.split("--from=")[1].split()[0] for c in copies if "--from=" in c]
    assert "builder" in sources, "the runtime copies nothing from the builder stage"
    assert any("--from=builder" in c and "/opt/venv" in c for c in copies)
    builder = dockerfile.stage("builder")
    assert any("venv /opt/venv" in run for run in builder.all("RUN"))
    assert not any("pip install" in run for run in final.all("RUN")), "installs in the runtime"


def test_the_final_stage_checks_health_and_serves_by_default(dockerfile: Dockerfile) -> None:
    final = dockerfile.stages[-1]
    checks = final.all("HEALTHCHECK")
    assert checks and "NONE" not in checks[-1].upper()
    assert "/healthz" in checks[-1] and "urllib" in checks[-1]
    assert "curl" not in checks[-1]
    commands = " ".join(final.all("ENTRYPOINT") + final.all("CMD"))
    assert '"tuneforge", "serve"' in commands
    env = " ".join(final.all("ENV"))
    assert "TUNEFORGE_DATA_DIR=/data" in env


def test_the_device_argument_picks_a_cuda_base(dockerfile: Dockerfile) -> None:
    assert dockerfile.global_args.get("DEVICE") == "cpu", "a CPU image by default"
    selecting = [s for s in dockerfile.stages if "${DEVICE}" in s.image or "$DEVICE" in s.image]
    assert selecting, "no FROM chooses its base by DEVICE"
    for device in ("cpu", "cuda"):
        chosen = resolve(selecting[0].image, {**dockerfile.global_args, "DEVICE": device})
        assert chosen in {s.name for s in dockerfile.stages}, f"DEVICE={device}: no {chosen}"
    cuda = resolve(dockerfile.stage("base-cuda").image, dockerfile.global_args)
    assert cuda.startswith("nvidia/cuda:") and "runtime" in cuda
    cpu = resolve(dockerfile.stage("base-cpu").image, dockerfile.global_args)
    assert cpu.startswith("python:3.11")
    text = DOCKERFILE.read_text()
    assert "https://download.pytorch.org/whl/cpu" in text
    assert "TORCH_VERSION=2.13.0" in text


def test_the_builder_installs_torch_then_the_project_with_constraints(
    dockerfile: Dockerfile,
) -> None:
    runs = [(s.name, args) for s in dockerfile.stages for kw, args in s.instructions if kw == "RUN"]
    torch = next(i for i, (_, run) in enumerate(runs) if "torch==" in run)
    project = next(i for i, (_, run) in enumerate(runs) if "-c constraints.txt ." in run)
    assert torch < project, "torch first, so the project's range keeps the chosen build"
    assert runs[torch][0] == runs[project][0] == "builder"


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    ignored = {line for line in lines if line and not line.startswith("#")}
    assert ignored >= {".venv", ".git", ".tuneforge", ".env", "tests", "benchmarks"}
    assert "README.md" not in ignored, "pyproject.toml's readme: the build needs it"


# --- .env.example --------------------------------------------------------------------------


def _documented(name: str) -> str | None:
    """The value .env.example gives ``name`` (set or commented), or None if it is not there."""
    match = re.search(rf"^#? ?{name}=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return match[1] if match else None


def _as_env(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    variable = f"TUNEFORGE_{name.upper()}"
    documented = _documented(variable)
    assert documented is not None, f"{variable} is missing from .env.example"
    assert documented == _as_env(Settings.model_fields[name].default), variable


def test_every_variable_compose_reads_is_documented() -> None:
    for path in (COMPOSE, COMPOSE_CPU):
        for variable in compose_variables(path.read_text()):
            assert _documented(variable) is not None, f"{path.name}: {variable} undocumented"
    assert _documented("COMPOSE_FILE") is not None, "the CPU-only switch"
    assert "POSTGRES_PASSWORD" in _env_example(), "compose refuses to start without it"
