"""The request bodies the API documentation shows: each one valid, as sent by the docs page's
"Try it out" (``tests/service/api/test_examples.py`` posts every one and gets a 2xx)."""

from typing import Any

from fastapi import Body

# The README's quickstart (examples/digits-mlp.yaml, which the test compares it with).
STUDY: dict[str, Any] = {
    "name": "digits-mlp",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "algorithm": {"name": "tpe", "settings": {"seed": 0, "n_startup_trials": 5}},
    "search_space": {
        "model.hidden_layers": {"type": "int", "low": 1, "high": 3},
        "model.width": {"type": "int", "low": 32, "high": 256, "log": True},
        "model.activation": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.4},
        "training.lr": {"type": "float", "low": 0.0003, "high": 0.03, "log": True},
        "training.batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    },
    "budget": {"max_trials": 12, "max_failed_trials": 4, "timeout_s": 900},
    "parallelism": 2,
    "resources": {"cpu": 1, "gpu": 0},
    "task": {
        "dataset": {"name": "digits", "val_fraction": 0.2, "split_seed": 0},
        "model": {"family": "mlp"},
        "training": {"epochs": 15, "optimizer": "adam"},
    },
}


def examples(**named: tuple[str, dict[str, Any]]) -> Any:
    """A request body's documented examples: name -> (summary, value)."""
    return Body(
        openapi_examples={name: {"summary": s, "value": v} for name, (s, v) in named.items()}
    )


# An external study (docs/external.md): its clients evaluate the trials (examples/external/).
EXTERNAL_STUDY: dict[str, Any] = {
    "name": "sgd-digits",
    "task": {"kind": "external", "metrics": ["val_loss", "val_accuracy"], "lease_s": 60},
    "objective": {"metric": "val_loss", "direction": "minimize"},
    "algorithm": {"name": "tpe", "settings": {"seed": 0}},
    "pruner": {"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 3}},
    "search_space": {
        "alpha": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "eta0": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    },
    "budget": {"max_trials": 20},
    "parallelism": 3,
}
QUICKSTART = ("The quickstart: an MLP on digits, TPE, 12 trials", STUDY)
CHECK_BODY = examples(quickstart=QUICKSTART)  # a pre-flight check trains: no external study
STUDY_BODY = examples(
    quickstart=QUICKSTART,
    external=("Trials evaluated by clients (ask/tell), TPE and ASHA", EXTERNAL_STUDY),
)
PATCH_BODY = examples(
    extend=("Twelve more trials (a finished study resumes)", {"budget": {"max_trials": 24}}),
    parallelism=("Four trials at a time", {"parallelism": 4}),
)
KEY_BODY = examples(tenant=("A key for tenant alice", {"tenant": "alice", "name": "laptop"}))
QUOTA_BODY = examples(
    limits=(
        "Five active studies, 16 trials in flight",
        {"active_studies": 5, "trials_in_flight": 16},
    ),
    weight=("Twice the share of a full cluster", {"weight": 2.0}),
)
ENQUEUE_BODY = examples(
    point=(
        "Two hidden layers of 128, lr 0.003; the rest sampled",
        {
            "params": {"model.hidden_layers": 2, "model.width": 128, "training.lr": 0.003},
            "note": "from last week's best",
        },
    ),
)
# The lease token of an external trial, as its ask answered (the tests put a real one here).
LEASE = "the lease token the ask answered"
REPORT_BODY = examples(
    step=(
        "Step 3 of a trial: its metrics so far",
        {"lease": LEASE, "step": 3, "metrics": {"val_loss": 0.41, "val_accuracy": 0.88}},
    ),
)
TELL_BODY = examples(
    complete=(
        "The trial's final metrics",
        {"lease": LEASE, "state": "complete", "metrics": {"val_loss": 0.35, "val_accuracy": 0.9}},
    ),
    failed=(
        "It failed on its client",
        {"lease": LEASE, "state": "fail", "reason": "CUDA out of memory"},
    ),
)
RENEW_BODY = examples(heartbeat=("Still working: extend the lease", {"lease": LEASE}))
