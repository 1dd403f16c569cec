"""Fair share of a full cluster between tenants: who gets the next free trial slots.

The scheduler starts a trial only where the cluster has room for it (its CPUs and GPUs), so Ray
never queues trials in submission order behind one tenant's backlog. Each pass it hands out the
free room one trial at a time: to the tenant with the fewest trials in flight per unit of
weight (a weighted fair queue: weight 2 gets twice the slots of weight 1 while both have work),
within it to its study furthest below its parallelism; never beyond a tenant's quota of trials
in flight. A tenant with one study thus gets the next freed slot even while another has twenty
studies waiting.

With several scheduler replicas, each runs only the studies it holds, but the cluster and the
tenants' shares are common: at every sync a replica reads the other live replicas' studies (their
trials RUNNING in Optuna's tables, their parallelism) and shares the room out over every study
of every replica, as one scheduler would; it starts only its own studies' grants and leaves the
others' room to them. A tenant whose studies another replica holds thus keeps its share. Between
two syncs (``TUNEFORGE_SCHEDULER_POLL_S``) that view can be out of date by the trials started or
ended in the meantime.
"""

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import ray
from sqlalchemy.orm import Session

from search.algorithm import Run
from search.spec import StudySpec
from service.store import crud, leases, optuna_sql
from service.store.orm import StudyRow
from service.store.quotas import Quota


@dataclass(frozen=True)
class Demand:
    """One run's side of a pass: who it belongs to, what one of its trials takes, what it has
    in flight and how many more it would start."""

    key: int  # the study's id
    tenant: str
    cpu: float
    gpu: float
    in_flight: int
    wanted: int
    parallelism: int
    # Run by another scheduler replica: granted room is left to it (it starts the trial at
    # its next pass); among a tenant's equally served studies this replica's own go first.
    elsewhere: bool = False


@dataclass(frozen=True)
class Room:
    """CPUs and GPUs: the cluster's free room, or what trials hold."""

    cpu: float
    gpu: float


def allocate(
    demands: Sequence[Demand],
    room: Room,
    caps: Mapping[str, int],
    weights: Mapping[str, float],
) -> dict[int, int]:
    """How many trials each run may start now (study id → count; absent: none).

    Args:
        demands: every run of this pass.
        room: what the cluster has free for new trials.
        caps: each tenant's quota of trials in flight (a tenant not named: no cap).
        weights: each tenant's weight (a tenant not named: 1).
    """
    in_flight: dict[str, int] = defaultdict(int)
    for d in demands:
        in_flight[d.tenant] += d.in_flight
    granted: dict[int, int] = defaultdict(int)
    cpu, gpu = room.cpu, room.gpu
    open_runs = [d for d in demands if d.wanted > 0]
    while open_runs:
        fits = [
            d
            for d in open_runs
            if d.cpu <= cpu + 1e-9
            and d.gpu <= gpu + 1e-9
            and in_flight[d.tenant] < caps.get(d.tenant, 1 << 62)
        ]
        if not fits:
            break
        tenant = min(
            {d.tenant for d in fits},
            key=lambda t: (in_flight[t] / weights.get(t, 1.0), t),
        )
        run = min(
            (d for d in fits if d.tenant == tenant),
            key=lambda d: ((d.in_flight + granted[d.key]) / d.parallelism, d.elsewhere, d.key),
        )
        granted[run.key] += 1
        in_flight[tenant] += 1
        cpu, gpu = cpu - run.cpu, gpu - run.gpu
        open_runs = [d for d in open_runs if granted[d.key] < d.wanted]
    return {key: n for key, n in granted.items() if n}


class FairShare:
    """The scheduler's side: each pass, every run's :attr:`~search.algorithm.Run.limit` from
    the cluster's size (read every ``refresh_s``), the tenants' quotas and weights."""

    def __init__(self, default_cap: int, refresh_s: float = 5.0) -> None:
        self._default_cap = default_cap
        self._refresh_s = refresh_s
        self._caps: dict[str, int] = {}
        self._weights: dict[str, float] = {}
        self._size = Room(0.0, 0.0)
        self._sized_at = -math.inf
        self._elsewhere: list[Demand] = []
        # (id, version) of another replica's study → its cpu, gpu per trial and parallelism
        self._specs: dict[tuple[int, int], tuple[float, float, int]] = {}

    def set_quotas(self, quotas: Mapping[str, Quota]) -> None:
        """The tenants an admin set limits for (the others: the default cap, weight 1)."""
        self._caps = {t: q.trials_in_flight for t, q in quotas.items()}
        self._weights = {t: q.weight for t, q in quotas.items()}

    def see_elsewhere(self, session: Session, rows: Iterable[StudyRow], owner: str) -> None:
        """Read the demands of the studies other live replicas hold (``rows``: the active
        studies; ``owner``: this replica): their trials in flight, and how many more each
        would start (up to its parallelism; its budget's end is not read)."""
        others = {r.optuna_study_name: r for r in rows if leases.held_by_another(r, owner)}
        running = optuna_sql.running_by_study(session, others)
        demands = []
        for name, row in others.items():
            key = (row.id, row.version)
            if key not in self._specs:
                spec = crud.study_spec(row)
                self._specs[key] = (spec.resources.cpu, spec.resources.gpu, spec.parallelism)
            cpu, gpu, parallelism = self._specs[key]
            n = running.get(name, 0)
            wanted = max(0, parallelism - n) if not row.stop_requested else 0
            demands.append(Demand(row.id, row.tenant, cpu, gpu, n, wanted, parallelism, True))
        self._elsewhere = demands
        seen = {(r.id, r.version) for r in others.values()}
        for key in set(self._specs) - seen:
            del self._specs[key]

    @property
    def elsewhere(self) -> list[Demand]:
        """The other replicas' studies as of the last :meth:`see_elsewhere`."""
        return list(self._elsewhere)

    def apply(
        self, runs: Mapping[int, Run], specs: Mapping[int, StudySpec], tenants: Mapping[int, str]
    ) -> None:
        """Set each run's limit: the room of the cluster shared out over every study of every
        replica (the others' grants are left to them)."""
        demands = [
            Demand(
                key=study_id,
                tenant=tenants[study_id],
                cpu=specs[study_id].resources.cpu,
                gpu=specs[study_id].resources.gpu,
                in_flight=run.n_in_flight,
                wanted=run.wanted(),
                parallelism=specs[study_id].parallelism,
            )
            for study_id, run in runs.items()
        ]
        every = demands + [d for d in self._elsewhere if d.key not in runs]
        size = self._cluster()
        room = Room(
            size.cpu - sum(d.cpu * d.in_flight for d in every),
            size.gpu - sum(d.gpu * d.in_flight for d in every),
        )
        caps = {d.tenant: self._caps.get(d.tenant, self._default_cap) for d in every}
        granted = allocate(every, room, caps, self._weights)
        for d in demands:
            runs[d.key].limit = d.in_flight + granted.get(d.key, 0)

    def _cluster(self) -> Room:
        now = time.monotonic()
        if now - self._sized_at >= self._refresh_s:
            total = ray.cluster_resources()
            self._size = Room(float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0)))
            self._sized_at = now
        return self._size
