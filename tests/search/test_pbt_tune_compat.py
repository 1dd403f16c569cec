"""The contract of ``search/pbt/tune_compat.py`` with the pinned Ray release.

Each Ray Tune internal the population driver touches is checked here by name against the
installed Ray, without starting it, so an upgrade that moves one fails here rather than in a
running population (the populations themselves run in ``test_pbt.py`` and end to end).
"""

import inspect
from typing import Any

import ray
from ray.tune.execution.tune_controller import TrialRunnerWrapper, TuneController
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.tuner import Tuner
from ray.tune.utils.object_cache import _ObjectCache

from search.pbt import tune_compat as compat


def test_the_installed_ray_is_the_pinned_release() -> None:
    installed = ".".join(ray.__version__.split(".")[:2])
    assert installed == compat.PINNED, (
        f"Ray {ray.__version__} is installed; search/pbt/tune_compat.py is written against "
        f"{compat.PINNED}: check each function, then update PINNED"
    )


def test_tune_caches_a_paused_actor_only_within_the_allowance_while_the_search_is_open() -> None:
    # What the two classes steer: the controller's decision to keep a stopped trial's actor.
    source = inspect.getsource(TuneController._maybe_cache_trial_actor)
    assert "self._search_alg.is_finished() and not self._staged_trials" in source
    assert "self._actor_cache.cache_object(" in source
    assert "self._actor_cache = _ObjectCache(may_keep_one=True)" in inspect.getsource(
        TuneController.__init__
    )
    # Schedulers are handed Tune's wrapper, which holds the controller itself.
    wrapped = TrialRunnerWrapper.__new__(TrialRunnerWrapper)
    wrapped.__dict__["_tune_controller"] = controller = _Controller()
    assert compat.actor_cache(wrapped) is controller._actor_cache
    assert compat.actor_cache(controller) is controller._actor_cache


class _Controller:
    search_alg = None

    def __init__(self) -> None:
        self._actor_cache = _ObjectCache(may_keep_one=True)


def _population(size: int) -> tuple[compat.Population, list[Any]]:
    """A population search and the members it hands out (Tune's own Trial objects)."""
    search = compat.Population(points_to_evaluate=[{"member": m} for m in range(size)])
    experiment = {"run": lambda config: None, "num_samples": size, "config": {"member": None}}
    search.add_configurations({"members": experiment})
    members = [search.next_trial() for _ in range(size)]
    assert all(m is not None for m in members)
    return search, members


def test_a_live_member_keeps_one_cached_actor_and_an_ended_one_gives_it_back() -> None:
    scheduler = compat.PBTKeepingActors(
        time_attr="epoch",
        metric="loss",
        mode="min",
        perturbation_interval=2,
        custom_explore_fn=lambda config: config,
    )
    _, members = _population(3)
    controller = _Controller()
    cache, resources = controller._actor_cache, members[0].placement_group_factory
    for member in members:
        scheduler.on_trial_add(controller, member)
    # Three members paused at once: each one's actor is kept, none killed.
    assert [cache.cache_object(resources, f"actor-{i}") for i in range(3)] == [True] * 3
    assert list(cache.flush_cached_objects()) == []
    scheduler.on_trial_complete(controller, members[0], {"loss": 1.0, "epoch": 4})
    scheduler.on_trial_error(controller, members[1])
    # Two members ended: the cache gives back all but the last live member's actor.
    assert len(list(cache.flush_cached_objects())) == 2
    scheduler.on_trial_remove(controller, members[2])
    assert cache.total_max_objects == 0
    assert issubclass(compat.PBTKeepingActors, PopulationBasedTraining)


def test_the_population_search_stays_open_while_a_member_lives() -> None:
    search, members = _population(2)
    assert search.next_trial() is None  # every member handed out ...
    assert not search.is_finished()  # ... but they live
    for member in members:
        search.on_trial_complete(member.trial_id, result={"loss": 1.0})
    assert search.is_finished()
    stopped, _ = _population(2)
    stopped.set_finished()  # what Tune does when the experiment stops early
    assert stopped.is_finished()


def test_a_restored_tuner_takes_live_hooks_and_goes_asynchronous() -> None:
    source = inspect.getsource(Tuner)
    assert "self._local_tuner" in source
    from ray.tune.impl.tuner_internal import TunerInternal

    assert "def get_run_config" in inspect.getsource(TunerInternal)
    assert "self._tune_config" in inspect.getsource(TunerInternal)
    assert "self._synch = synch" in inspect.getsource(PopulationBasedTraining.__init__)
