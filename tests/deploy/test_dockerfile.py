"""The container deployment's image: the Dockerfile and .dockerignore.

No Docker runs here: the Dockerfile is parsed with the small parser below and checked for a
multi-stage, non-root image that checks its health and serves by default, a base chosen by
the DEVICE argument, torch installed before the project, and a build context without local
state or secrets.
"""

import re
from dataclasses import dataclass, field

import pytest

from tests.deploy._deploy_files import DOCKERFILE, ROOT


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
