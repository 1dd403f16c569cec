"""Shared fixtures: database URLs (SQLite file, PostgreSQL schema), live servers, the tiers.

A live server is the real thing: ``tuneforge serve`` in its own process on a free loopback
port, talking to a real database. It joins the session's Ray (:func:`ray_cluster`: a real head
node on loopback, as a compose deployment's scheduler joins its cluster) instead of starting
one of its own, which would cost every server start about 5 s. Where the point is the embedded
Ray of ``make run``, a server starts its own: the session's shared server and the restart
tests (``own_ray=True``); the multi-node tests bring their own cluster.

Tiers. ``make test-fast`` runs what needs no Ray, no server and no PostgreSQL
(``-m "not slow and not postgres and not gpu"``, with ``TUNEFORGE_TEST_TIER=fast``): there,
starting Ray or a server fails the test, so a test that needs one and is not marked ``slow``
is found at once. PostgreSQL tests skip with the reason where no server answers on
127.0.0.1:5432, unless ``TUNEFORGE_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it), where they fail.
"""

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import harness

# One copy of the server and the database code, the benchmarks' harness; tests import these
# names from here.
from benchmarks.harness import PG_ADMIN as PG_ADMIN
from benchmarks.harness import Server as Server
from benchmarks.harness import free_port as free_port

FAST_TIER = os.environ.get("TUNEFORGE_TEST_TIER") == "fast"
# What every test server runs with (``env`` of :func:`start_server` adds to it): workers are
# not warmed in advance, so a test's first trials import torch themselves instead of every
# server start paying for it; the scheduler rereads the studies often.
TEST_SERVER_ENV = {
    "TUNEFORGE_RAY_NUM_CPUS": "2",
    "TUNEFORGE_SCHEDULER_POLL_S": "0.2",
    "TUNEFORGE_WARM_WORKERS": "false",
    # A killed server's studies wait this long for the restarted one (its leases expire).
    "TUNEFORGE_LEASE_S": "5",
}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tuneforge.db'}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL's ``test`` database (its URL), dropped after.

    Skips the test with the reason when no PostgreSQL answers, unless
    ``TUNEFORGE_REQUIRE_POSTGRES=1``: then it fails.
    """
    if FAST_TIER:
        pytest.fail("the fast tier uses no PostgreSQL: mark the test postgres")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(harness.postgres_schema("tf_test"))
        except harness.PostgresUnavailable as exc:
            if os.environ.get("TUNEFORGE_REQUIRE_POSTGRES") == "1":
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (see :func:`postgres_schema`)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The session's Ray (its address): a real head node bound to 127.0.0.1 with 2 CPUs (the
    test servers' own size) that the test servers and the search tests join, each as a job
    of its own, started once instead of once per server or module. Shut down at the end."""
    if FAST_TIER:
        pytest.fail("the fast tier starts no Ray: mark the test slow")
    with harness.ray_head(num_cpus=2) as address:
        yield address


def start_server(
    database_url: str,
    data_dir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ray_address: str = "",
) -> Server:
    """Start ``tuneforge serve`` and wait until its scheduler has Ray running
    (:func:`benchmarks.harness.start_server` with :data:`TEST_SERVER_ENV`).

    Its scheduler joins the Ray at ``ray_address`` (empty: it starts a local Ray of its own,
    as ``make run`` does). ``env`` adds to (or overrides) the server's environment; with
    ``TUNEFORGE_RUN_SCHEDULER=false`` there it waits only until the API answers.
    """
    if FAST_TIER:
        pytest.fail("the fast tier starts no server: mark the test slow")
    joined = {"TUNEFORGE_RAY_ADDRESS": ray_address} if ray_address else {}
    return harness.start_server(
        database_url, data_dir, port, env={**TEST_SERVER_ENV, **joined, **(env or {})}, timeout=120
    )


@pytest.fixture
def server_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Server]]:
    """Start servers on demand, joined to the session's Ray (:func:`ray_cluster`) unless
    ``own_ray=True`` (a local Ray of their own) or ``env`` names a Ray; all are stopped at
    teardown."""
    started: list[Server] = []

    def make(database_url: str, own_ray: bool = False, **kwargs: Any) -> Server:
        address = "" if own_ray else str(request.getfixturevalue("ray_cluster"))
        server = start_server(database_url, tmp_path / "data", ray_address=address, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server (SQLite, scheduler on) for the tests that only need *a* server: each works
    on studies of its own and waits for them to end, so they can share it. It runs the
    embedded default (a local Ray of its own, as ``make run`` does): there a study no node
    can ever run fails at once, where a scheduler joined to a cluster waits for a node."""
    with embedded_server(tmp_path_factory, "shared-server") as server:
        yield server


@contextlib.contextmanager
def embedded_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Server]:
    """A server on SQLite in a fresh folder ``name`` with a local Ray of its own (the embedded
    default of ``make run``), stopped on exit."""
    data_dir = tmp_path_factory.mktemp(name)
    server = start_server(f"sqlite:///{data_dir / 'tuneforge.db'}", data_dir)
    try:
        yield server
    finally:
        server.stop()


def wait_for(
    client: httpx.Client, study_id: int, done: Callable[[dict], bool], timeout: float = 240
) -> dict:
    """Poll a study until ``done(study)`` holds; fail with its last state otherwise."""
    deadline = time.monotonic() + timeout
    study: dict = {}
    while time.monotonic() < deadline:
        study = client.get(f"/studies/{study_id}").raise_for_status().json()
        if done(study):
            return study
        time.sleep(0.25)
    pytest.fail(f"study {study_id} did not reach the expected state: {study}")


def finished(study: dict) -> bool:
    return study["status"] in ("completed", "failed", "stopped")


def digits_study(
    name: str, max_trials: int, epochs: int, lr: float, width_high: int = 32
) -> dict[str, Any]:
    """A study spec: random search of a one-layer MLP's width on digits, 2 trials at a time."""
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"model.width": {"type": "int", "low": 16, "high": width_high}},
        "budget": {"max_trials": max_trials},
        "parallelism": 2,
        "resources": {"cpu": 1},
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": epochs, "lr": lr},
        },
    }


def pytest_configure(config: pytest.Config) -> None:
    """In the fast tier, starting Ray fails the test that does it (see the module docstring)."""
    if not FAST_TIER:
        return
    import ray
    import ray._private.worker

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the fast tier starts no Ray: mark the test slow")

    ray.init = refuse  # what search.ray_runtime calls
    ray._private.worker.init = refuse  # what Ray's own auto-init calls


# A test that uses one of these fixtures needs Ray or a live server: it is ``slow``.
_SLOW_FIXTURES = frozenset(
    {"ray_cluster", "local_ray", "server_factory", "shared_server", "server"}
)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use (Ray or a server: ``slow``; PostgreSQL:
    ``postgres``); tests marked ``gpu`` run only where CUDA is available."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if "postgres_url" in fixtures:
            item.add_marker(pytest.mark.postgres)
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
