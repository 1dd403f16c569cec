"""A fuzz run of the whole OpenAPI document with schemathesis, against a real server.

Every operation the service documents gets generated requests, valid and invalid (the
coverage, fuzzing and stateful phases of schemathesis's engine), and every response is checked
against the document: no 5xx, only documented status codes, content types, headers and bodies
that match their schemas. The run is deterministic (a fixed seed), goes only to the server on
127.0.0.1, and must send at least ``MIN_REQUESTS`` requests with zero failures.

The server first runs a small study with its scheduler, so that the trial, best and artifact
routes answer with real trials (times written by Optuna, artifacts on disk); then it restarts
without the scheduler on the same database, so that the studies the fuzzer creates or resumes
stay pending instead of training on the machine's two cores while it runs.

Checks left out, and why:

- ``positive_data_acceptance`` expects every schema-valid request to be accepted. A study is
  checked beyond its JSON Schema (a dataset by name *or* by upload id, search-space keys that
  name fields of the chosen model family, settings against the algorithm's registry entry, a
  study id that must exist): schema-valid specs are rightly answered 422, each reason at its
  field, which this check would call failures.
- ``max_response_time``: timing on a shared two-core machine is no property of the spec.

Every other check schemathesis has runs, ``negative_data_rejection`` included.

One request is never sent: revoking the fuzzer's own key (``DELETE /api/v1/keys/{own id}``).
It would answer 200 and turn every later request into a 401, ending the run; revoking every
other key, the admin key the server wrote included, is fuzzed.
"""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import schemathesis
from schemathesis.engine import StopReason, events, from_schema

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

SEED = 20_260_101
# Examples per operation in the fuzzing phase (the coverage phase adds its own, from the
# schema's boundaries, and the stateful phase runs scenarios across operations).
MAX_EXAMPLES = 40
MIN_REQUESTS = 1000

# Everything schemathesis checks except the two explained in the module's docstring.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
]

KEY_PATH = "/api/v1/keys/{key_id}"


def seed_study(server: Server) -> None:
    """A finished two-trial study of the fuzzer's tenant, with learning curves and artifacts."""
    spec = {
        "name": "fuzz-seed",
        "search_space": {"training.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
        "budget": {"max_trials": 2},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 2}},
    }
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=120)
    assert study["status"] == "completed", study


def seed_dataset(server: Server, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.normal(size=(40, 3)), y=rng.integers(0, 2, 40))
    with path.open("rb") as f:
        uploaded = server.api.post("/datasets", files={"file": ("tiny.npz", f)})
    assert uploaded.status_code == 201, uploaded.text


def fuzzer_key(server: Server) -> tuple[int, str]:
    """An admin key of the default tenant for the fuzzer alone: (id, key)."""
    resp = server.api.post("/keys", json={"tenant": "default", "name": "fuzz", "admin": True})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"]), str(resp.json()["key"])


def revokes(key_id: int) -> Callable[[Any, schemathesis.Case], bool]:
    """A ``filter_case`` hook that drops exactly the requests revoking key ``key_id``."""

    def keep(_context: Any, case: schemathesis.Case) -> bool:
        if case.operation.method.upper() != "DELETE" or case.operation.path != KEY_PATH:
            return True
        raw = str((case.path_parameters or {}).get("key_id", "")).strip()
        try:
            # As the server would read it: "2", " 2", "+2" and "02" are all key 2.
            return int(raw) != key_id
        except ValueError:
            return True

    return keep


@dataclass
class Run:
    """What the engine reported, collected from its events."""

    requests: int = 0
    by_phase: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None

    def record(self, phase: str, recorder: Any) -> None:
        for case_id, interaction in recorder.interactions.items():
            if interaction.response is None:
                request = interaction.request
                self.errors.append(f"no response to {request.method} {request.uri}")
                continue
            label = recorder.cases[case_id].value.operation.label
            self.requests += 1
            self.by_phase[phase] += 1
            self.by_operation[label] += 1
            self.statuses.setdefault(label, Counter())[interaction.response.status_code] += 1
            self.hosts.add(urlsplit(interaction.request.uri).netloc)
        for nodes in recorder.checks.values():
            for node in nodes:
                info = node.failure_info
                if info is None:
                    continue
                # The requests that reproduce it (a stateful failure needs those before it).
                curls = [step.curl for step in info.steps] or [info.code_sample]
                self.failures.append(
                    f"[{node.name}] {recorder.label}: {info.failure.title}\n"
                    f"{info.failure.message}\nReproduce with:\n" + "\n".join(curls)
                )


def fuzz(url: str, key: str, own_key_id: int) -> Run:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            "headers": {"Authorization": f"Bearer {key}"},
            "workers": 1,  # one request at a time: the server's state, and so the run, repeat
            "request-timeout": 60,
            # Hypothesis's too_slow measures how fast cases are generated: the load of a shared
            # two-core machine, not a property of the API.
            "suppress-health-check": ["too_slow"],
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    schema.hook("filter_case")(revokes(own_key_id))
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            run.record(str(event.phase), event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.stop_reason = event.stop_reason
            run.failures += [f"{f.title}: {f.message}" for f in event.failures]
    return run


def test_fuzz_the_whole_api(
    server_factory: Callable[..., Server], sqlite_url: str, tmp_path: Path
) -> None:
    seeding = server_factory(sqlite_url)
    seed_study(seeding)
    seed_dataset(seeding, tmp_path)
    seeding.stop()
    # Event streams last as long as their study (pending forever here): each closes after a
    # tenth of a second, as every stream does after TUNEFORGE_EVENT_STREAM_MAX_S.
    server = server_factory(
        sqlite_url,
        env={"TUNEFORGE_RUN_SCHEDULER": "false", "TUNEFORGE_EVENT_STREAM_MAX_S": "0.1"},
    )
    own_key_id, key = fuzzer_key(server)

    started = time.monotonic()
    run = fuzz(server.url, key, own_key_id)
    took = time.monotonic() - started

    summary = (
        f"{run.requests} requests in {took:.0f} s, by phase {dict(run.by_phase)}; "
        f"stop: {run.stop_reason}\n"
        + "\n".join(f"  {op}: {dict(codes)}" for op, codes in sorted(run.statuses.items()))
    )
    print(summary)
    failures = "\n\n".join(dict.fromkeys(run.failures))  # a failure once, however often found
    assert not run.failures, f"{len(run.failures)} failed checks:\n\n{failures}\n\n{summary}"
    assert not run.errors, "\n".join(run.errors)
    assert run.stop_reason == StopReason.COMPLETED, summary
    assert run.requests >= MIN_REQUESTS, summary
    assert run.hosts == {urlsplit(server.url).netloc}, run.hosts
    # Had the fuzzer revoked its own key, every later answer would be a (documented) 401.
    assert server.client(key).get("/keys").status_code == 200
    # Every documented operation was exercised; the seeded study's trials were read.
    documented = {
        f"{method.upper()} {path}"
        for path, ops in httpx.get(f"{server.url}/openapi.json").json()["paths"].items()
        for method in ops
    }
    assert documented <= set(run.by_operation), documented - set(run.by_operation)
    assert run.statuses["GET /api/v1/studies/{study_id}/trials"][200] > 0, summary
