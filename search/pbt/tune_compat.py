"""Ray Tune internals the population driver relies on, in one place (pinned to ray 2.60; the
contract test is ``tests/search/test_pbt_tune_compat.py``): plugging the live hooks into a
restored tuner, and making its scheduler asynchronous.
"""

from typing import Any

PINNED = "2.60"  # the Ray release these internals are checked against


def plug_hooks(tuner: Any, callback: Any, stopper: Any) -> None:
    """Give a restored tuner its live callback and stopper (``tuner.pkl`` holds them without
    their live run)."""
    restored = tuner._local_tuner.get_run_config()
    restored.callbacks, restored.stop = [callback], stopper


def go_asynchronous(tuner: Any) -> None:
    """Make a restored tuner's population scheduler asynchronous."""
    tuner._local_tuner._tune_config.scheduler._synch = False
