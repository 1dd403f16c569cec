"""Ray Tune internals the population driver relies on, in one place (pinned to ray 2.60; the
contract test is ``tests/search/test_pbt_tune_compat.py``): plugging live hooks into a
restored tuner, and keeping members' actors between segments.

Why keep actors: Ray Tune pauses every member at each perturbation step (all of them in
synchronous mode) and, out of the box, kills a paused member's actor unless a trial is already
staged for it. Each resumed segment then starts a new worker process, which imports torch and
Ray Tune again: about five CPU-seconds per member per perturbation interval, more than a small
member's training. Tune can keep such actors (``reuse_actors=True``), but caches only as many as the
trials it has staged, and none once its search algorithm has handed out every member. The
two classes here keep one actor per live member: the scheduler raises the actor cache's
allowance for each member while it lives, and the search algorithm counts as finished only
once every member has ended. A resumed segment then resets a waiting actor in place.
"""

from typing import Any

from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search.basic_variant import BasicVariantGenerator

PINNED = "2.60"  # the Ray release these internals are checked against


def plug_hooks(tuner: Any, callback: Any, stopper: Any) -> None:
    """Give a restored tuner its live callback and stopper (``tuner.pkl`` holds them without
    their live run)."""
    restored = tuner._local_tuner.get_run_config()
    restored.callbacks, restored.stop = [callback], stopper


def go_asynchronous(tuner: Any) -> None:
    """Make a restored tuner's population scheduler asynchronous."""
    tuner._local_tuner._tune_config.scheduler._synch = False


class Population(BasicVariantGenerator):  # type: ignore[misc]
    """The members as fixed points; once all are handed out it stays open until every
    member has ended (or Tune ends the experiment: a stop, a failure), so that Tune keeps a
    paused member's actor for its next segment."""

    _handed_out = False  # every member handed out (the base class would call itself finished)

    def next_trial(self) -> Any:
        if self._handed_out:
            return None
        was_finished = super().is_finished()
        trial = super().next_trial()
        if trial is None and super().is_finished() and not was_finished:
            self._handed_out = True
            self._finished = False  # the base class's flag: reopened until the members end
        return trial

    def is_finished(self) -> bool:
        return bool(super().is_finished()) or (self._handed_out and not self._live_trials)


def actor_cache(tune_controller: Any) -> Any:
    """The controller's cache of idle trainable actors (a scheduler may be handed the
    controller itself or Tune's restricted wrapper of it)."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    return controller._actor_cache


class _KeepActors:
    """Mixed into a Tune scheduler: one cached actor allowed per live member."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        actor_cache(tune_controller).increase_max(trial.placement_group_factory)

    def _member_ended(self, tune_controller: Any, trial: Any) -> None:
        actor_cache(tune_controller).decrease_max(trial.placement_group_factory)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: Any) -> None:
        super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]
        self._member_ended(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_error(tune_controller, trial)  # type: ignore[misc]
        self._member_ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        self._member_ended(tune_controller, trial)


class PBTKeepingActors(_KeepActors, PopulationBasedTraining):  # type: ignore[misc]
    """Ray Tune's PBT scheduler, keeping each member's actor between its segments."""


class PB2KeepingActors(_KeepActors, PB2):  # type: ignore[misc]
    """Ray Tune's PB2 scheduler, keeping each member's actor between its segments."""
