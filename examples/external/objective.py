"""``train.py``'s training tuned with the Python client: the loop asks a trial, runs it here,
reports each epoch and tells the outcome (docs/external.md).

    tuneforge submit examples/external/study.yaml      # prints its id
    python examples/external/objective.py ID [N_TRIALS]

It finds the server and the key as the ``tuneforge`` command does (``TUNEFORGE_URL``,
``TUNEFORGE_API_KEY`` or ``.tuneforge/admin.key``). Run it in several terminals at once to
evaluate several trials at a time (up to the study's ``parallelism``).
"""

import sys

from train import fit

from service.client.api import Client
from service.client.connection import find_key, server_url
from service.client.external import ExternalTrial, TrialPruned


def objective(trial: ExternalTrial) -> dict[str, float]:
    """One trial: train with its parameters, report each epoch, stop when the pruner says so."""
    metrics: dict[str, float] = {}
    for step, metrics in enumerate(fit(trial.params, seed=trial.seed), start=1):
        trial.report(metrics, step)  # val_loss and val_accuracy, the task's metrics
        if trial.should_prune():
            raise TrialPruned()
    return metrics  # the last epoch's: val_loss is the study's objective


def main() -> None:
    study_id = int(sys.argv[1])
    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else None
    with Client(server_url(), find_key().value) as client:
        study = client.study(study_id)
        for outcome in study.optimize(objective, n_trials=n_trials):
            value = outcome.metrics.get("val_loss")
            print(f"trial {outcome.number} {outcome.state}: val_loss={value}")
        print(f"done: {study.stop_reason}")


if __name__ == "__main__":
    main()
