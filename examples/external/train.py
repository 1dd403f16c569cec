"""A real objective of your own: scikit-learn's MLPClassifier on the 8x8 digits, one epoch per
step, as ``tuneforge agent`` runs it (docs/external.md).

    tuneforge agent ID -- python examples/external/train.py

It reads its parameters from ``TUNEFORGE_PARAMS`` (JSON; each missing one has a default, so
``python examples/external/train.py`` runs alone) and its seed from ``TUNEFORGE_SEED``, and
prints one JSON line per epoch, ``{"step": 3, "val_loss": 0.21, "val_accuracy": 0.94}``,
flushed at once: the agent reports each line as it comes, and the study's pruner may stop
the run after any of them. ``objective.py`` runs the same training with the Python client.
"""

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

DEFAULTS: dict[str, Any] = {"lr": 0.003, "alpha": 1e-4, "width": 64, "batch_size": 64}
EPOCHS = 20


def fit(
    params: Mapping[str, Any], seed: int = 0, epochs: int = EPOCHS
) -> Iterator[dict[str, float]]:
    """Train an MLP with ``params`` (over :data:`DEFAULTS`); yields each epoch's validation
    loss and accuracy (the split is fixed, the network's initialization follows ``seed``)."""
    p = {**DEFAULTS, **params}
    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0  # pixels 0..16 -> 0..1
    y = np.asarray(digits.target)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    model = MLPClassifier(
        hidden_layer_sizes=(int(p["width"]),),
        learning_rate_init=float(p["lr"]),
        alpha=float(p["alpha"]),
        batch_size=int(p["batch_size"]),
        random_state=seed,
    )
    classes = np.unique(y)
    for _ in range(epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)  # one epoch of minibatches
        probabilities = model.predict_proba(x_val)
        yield {
            "val_loss": float(log_loss(y_val, probabilities, labels=classes)),
            "val_accuracy": float(model.score(x_val, y_val)),
        }


def main() -> None:
    params = json.loads(os.environ.get("TUNEFORGE_PARAMS") or "{}")
    seed = int(os.environ.get("TUNEFORGE_SEED") or 0)
    for step, metrics in enumerate(fit(params, seed), start=1):
        print(json.dumps({"step": step, **metrics}), flush=True)


if __name__ == "__main__":
    main()
