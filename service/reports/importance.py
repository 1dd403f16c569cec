"""Parameter importances as optuna-dashboard 0.21 computes them, so the report and the dashboard
agree on the same study.

The dashboard (``optuna_dashboard._importance.get_param_importance_from_trials_cache``) calls
``optuna.importance.get_param_importances`` on every trial of the study, one objective at a
time, with ``PedAnovaImportanceEvaluator()`` at its defaults, no ``params`` (every parameter a
completed trial has, conditional ones included) and a target that is the objective's value,
negated when the objective is maximized (PED-ANOVA takes lower as better). PED-ANOVA is
deterministic: no seed, no random forest.
"""

import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

METHOD = (
    "PED-ANOVA importances (Optuna's PedAnovaImportanceEvaluator at its defaults, as "
    "optuna-dashboard computes them): how much each parameter decides whether a trial reaches "
    "the best 10% of {metric}; they sum to 1."
)


def importance_target(study: optuna.Study, objective: int) -> Callable[[FrozenTrial], float]:
    """The dashboard's target for objective ``objective``: lower is better."""
    if study.directions[objective] == StudyDirection.MAXIMIZE:
        return lambda t: -t.values[objective]
    return lambda t: t.values[objective]


def _quietly(compute: Callable[[], Any]) -> Any:
    # PED-ANOVA warns whenever it is given a target, though this one is negated already where
    # higher is better; the dashboard silences the same warning.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="PedAnovaImportanceEvaluator computes the importances"
        )
        return compute()


def importance_figure(study: optuna.Study, objective: int, metric: str) -> Any:
    """Optuna's bar chart of the importances for objective ``objective``, largest on top,
    titled with the method: the values are exactly the dashboard's."""
    fig = _quietly(
        lambda: optuna.visualization.plot_param_importances(
            study,
            evaluator=PedAnovaImportanceEvaluator(),
            target=importance_target(study, objective),
            target_name=metric,
        )
    )
    fig.update_layout(title=f"PED-ANOVA importance for {metric}")
    return fig
