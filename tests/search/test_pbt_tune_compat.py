"""The contract of ``search/pbt/tune_compat.py`` with the pinned Ray release.

Each Ray Tune internal the population driver touches is checked here by name against the
installed Ray, without starting it, so an upgrade that moves one fails here rather than in a
running population (the populations themselves run in ``test_pbt.py`` and end to end).
"""

import inspect

import ray
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.tuner import Tuner

from search.pbt import tune_compat as compat


def test_the_installed_ray_is_the_pinned_release() -> None:
    installed = ".".join(ray.__version__.split(".")[:2])
    assert installed == compat.PINNED, (
        f"Ray {ray.__version__} is installed; search/pbt/tune_compat.py is written against "
        f"{compat.PINNED}: check each function, then update PINNED"
    )


def test_a_restored_tuner_takes_live_hooks_and_goes_asynchronous() -> None:
    source = inspect.getsource(Tuner)
    assert "self._local_tuner" in source
    from ray.tune.impl.tuner_internal import TunerInternal

    assert "def get_run_config" in inspect.getsource(TunerInternal)
    assert "self._tune_config" in inspect.getsource(TunerInternal)
    assert "self._synch = synch" in inspect.getsource(PopulationBasedTraining.__init__)
