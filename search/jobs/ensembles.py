"""An ensemble of a study's finished trials, as Ray builds it: the members' exports in, the
ensemble's scores and TorchScript out (the scheduler reads and writes the files: workers need
no shared disk)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.data import Dataset
from models.ensemble import Method, build, rebuild
from search.artifacts import data_facts


@dataclass(frozen=True)
class Member:
    """One finished trial: its number, value, spec.json's ``model`` and ``training``, and its
    ``weights.pt``."""

    trial: int
    value: float
    model: Mapping[str, Any]
    training: Mapping[str, Any]
    weights: bytes = field(repr=False)


@dataclass(frozen=True)
class EnsembleJob:
    """Combine ``members`` (best first) by ``method`` on the study's validation split."""

    members: tuple[Member, ...]
    method: Method

    def run(self, data: Dataset) -> tuple[dict[str, Any], tuple[bytes, bytes]]:
        """The ensemble's result (``members`` with their weights and scores, ``metrics``,
        ``best_member``: the best single member's scores), its TorchScript and its
        state_dict.

        Raises:
            ValueError: a member's weights do not fit its network, or a regression dataset.
        """
        nets = [rebuild(m.model, m.training, data.info, m.weights) for m in self.members]
        built = build(
            nets, self.method, data.info, self.members[0].training, data.x_val, data.y_val
        )
        members = [
            {"trial": m.trial, "value": m.value, "weight": w, "metrics": scores}
            for m, w, scores in zip(self.members, built.weights, built.member_metrics, strict=True)
        ]
        best = min(built.member_metrics, key=lambda s: s["nll"])
        result = {
            "method": self.method,
            "members": members,
            "metrics": built.metrics,
            "best_member": best,
        }
        return result, (built.torchscript, built.state_dict)


def run_ensemble(
    job: EnsembleJob, data: Dataset, cpus: float, gpus: float, facts: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[bytes, bytes]]:
    """The body of the Ray task: size torch for the reservation, build, and add the
    ``spec`` to write beside model.ts (``facts``: the study's id, objective, ``top_k``)."""
    from search.trials.worker import start

    start(cpus, gpus)
    result, blobs = job.run(data)
    n = data.info.n_outputs
    result["spec"] = {
        **facts,
        "method": job.method,
        "members": [
            {**m, "model": dict(member.model), "training": dict(member.training)}
            for m, member in zip(result["members"], job.members, strict=True)
        ],
        "metrics": result["metrics"],
        "dataset": data_facts(data.info),
        "input": {
            "shape": ["batch", *data.info.input_shape],
            "dtype": "float32",
            "note": "Raw values, as in the dataset: each member scales its own inputs.",
        },
        "output": {
            "shape": ["batch", n],
            "dtype": "float32",
            "values": "scores" if job.method == "vote" else "log-probabilities",
            "classes": list(range(n)),
        },
        "usage": USAGE,
    }
    return result, blobs


USAGE = (
    "model = torch.jit.load('model.ts'); y = model(x), x raw float32 inputs of input.shape: "
    "argmax(y, 1) gives the class; for average and greedy, exp(y) are the ensemble's class "
    "probabilities (for vote, y counts each class's votes, ties broken by confidence)."
)
