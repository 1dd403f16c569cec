"""The pre-flight check: a network and its data probed before a study spends trials on them.

:func:`check_point` measures one network (data summary, initial loss, one batch's activations
and gradients, a tiny subset memorized, a short fit scored on validation, a learning-rate range
test) and concludes in :class:`Finding` sentences (:mod:`models.preflight.findings`).
"""

from models.preflight.report import Finding, PreflightReport
from models.preflight.run import check_point

__all__ = ["Finding", "PreflightReport", "check_point"]
