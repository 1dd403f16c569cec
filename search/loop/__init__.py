"""The sampler loop (:class:`StudyLoop`) and the one wait point of every run (:func:`wait_any`)."""

from search.loop.loop import StudyLoop
from search.loop.outcomes import abandon, failure_reason, lost_worker
from search.loop.wait import wait_any

__all__ = ["StudyLoop", "abandon", "failure_reason", "lost_worker", "wait_any"]
