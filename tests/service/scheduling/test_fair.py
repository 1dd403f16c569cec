"""Fair share of a full cluster (issue 15): the allocation the scheduler makes each pass."""

from service.scheduling.fair import Demand, Room, allocate


def demand(key: int, tenant: str, in_flight: int = 0, wanted: int = 2, cpu: float = 1.0) -> Demand:
    return Demand(key, tenant, cpu, 0.0, in_flight, wanted, parallelism=2)


def test_a_freed_slot_goes_to_the_tenant_with_fewer_trials_in_flight() -> None:
    # Tenant a: twenty studies, two trials in flight filling a 3-CPU cluster but one slot.
    crowd = [demand(i, "a", in_flight=1 if i < 2 else 0) for i in range(20)]
    late = demand(100, "b")
    granted = allocate([*crowd, late], Room(cpu=1.0, gpu=0.0), {}, {})
    assert granted == {100: 1}


def test_slots_go_round_robin_between_tenants_and_their_studies() -> None:
    demands = [demand(1, "a"), demand(2, "a"), demand(3, "b")]
    granted = allocate(demands, Room(cpu=4.0, gpu=0.0), {}, {})
    assert granted == {1: 1, 2: 1, 3: 2}  # two each: a's split over its studies


def test_weights_and_quotas_bound_a_tenant_s_share() -> None:
    demands = [demand(1, "a", wanted=8), demand(2, "b", wanted=8)]
    weighted = allocate(demands, Room(cpu=6.0, gpu=0.0), {}, {"a": 2.0})
    assert weighted == {1: 4, 2: 2}
    capped = allocate(demands, Room(cpu=6.0, gpu=0.0), {"a": 1}, {"a": 2.0})
    assert capped == {1: 1, 2: 5}


def test_nothing_starts_beyond_the_room_or_what_a_run_wants() -> None:
    gpu_run = Demand(1, "a", cpu=1.0, gpu=1.0, in_flight=0, wanted=3, parallelism=3)
    cpu_run = demand(2, "b", wanted=1, cpu=0.5)
    granted = allocate([gpu_run, cpu_run], Room(cpu=8.0, gpu=2.0), {}, {})
    assert granted == {1: 2, 2: 1}
    assert allocate([gpu_run], Room(cpu=0.5, gpu=2.0), {}, {}) == {}
