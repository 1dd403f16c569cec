"""DARTS as a study algorithm: one-shot differentiable search of a cell space, in one trial.

A study with ``algorithm: darts`` and a cell architecture runs exactly one trial. Inside it,
:func:`models.cells.darts_search` trains a supernet whose every edge mixes the candidate
operations with softmax weights (alpha), weights and alpha trained bi-level on the two halves
of the training split; the argmax operation of each edge is the derived cell. The same trial
then trains the derived architecture from scratch with the study's training settings, like
any trial, and its objective is the trial's value. What lands in Optuna: the trial's params
are the derived operation of each edge (set once the search ends), its intermediate values the
derived network's epochs; user attributes ``genotype``, ``darts_search`` (per search epoch:
supernet metrics and the cell it would derive) and ``darts_alpha`` (final probabilities,
one row an edge).
"""

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from models.cells import EDGES, DartsConfig, DartsEpoch, darts_search, edge_name, parse_genotype
from models.data import Dataset
from models.knobs import knobs
from search.registry import Algorithm, Setting, register
from search.spec import StudySpec
from search.trial import start_event, train_events

_SUPERNET_ONLY = ("ops",)  # taken from the architecture, not a setting
EDGE_PARAMS = tuple(f"model.{edge_name(e)}" for e in EDGES)


def _settings() -> tuple[Setting, ...]:
    out = []
    for name, (annotation, k, default) in knobs(DartsConfig).items():
        if name in _SUPERNET_ONLY:
            continue
        out.append(Setting(name, annotation, default, k.doc, k.low))
    return tuple(out)


SETTINGS = _settings()


def darts_ops(spec: StudySpec) -> list[str]:
    """The candidate operations of every edge (the study's cell space)."""
    first = next(p for p in spec.search_space if p.name in EDGE_PARAMS)
    return [str(c) for c in first.choices]


def check_darts(spec: StudySpec) -> list[str]:
    """Every reason ``spec`` cannot run as a DARTS search; empty when it can."""
    problems: list[str] = []
    if spec.task.model.get("family") != "nb201":
        return [
            "darts relaxes a cell space (architecture kind cell) into a continuous mixture of "
            "operations; this study's choices (a macro architecture or plain parameters) "
            "cannot be relaxed"
        ]
    if len(spec.objectives) != 1:
        n = len(spec.objectives)
        problems.append(f"darts optimizes a single objective; this study has {n}")
    names = {p.name for p in spec.search_space}
    other = sorted(names - set(EDGE_PARAMS))
    if other:
        problems.append(
            f"darts searches the cell in one trial; it cannot also search {', '.join(other)}"
        )
    fixed = [p for p in EDGE_PARAMS if p not in names]
    choices = {tuple(p.choices) for p in spec.search_space if p.name in EDGE_PARAMS}
    if fixed or len(choices) > 1:
        problems.append(
            "darts relaxes every edge over the same operations: give them with "
            "architecture.ops, without per-edge lists"
        )
    elif choices and set(next(iter(choices))) <= {"none"}:
        problems.append("darts needs an operation other than none")
    return problems


def run_darts_trial(
    data: Dataset,
    task: dict[str, Any],
    seed: int,
    cpus: float,
    gpus: float,
    monitor: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize"),
) -> Iterator[dict[str, Any]]:
    """The Ray task of a DARTS trial: search, derive, then train the derived network.

    ``task`` carries ``darts`` (the checked settings) and ``ops`` next to ``model`` and
    ``training``. Yields ``start``, one ``search`` event per search epoch, one
    ``architecture`` event (the derived op of each edge as params, the genotype, alpha, the
    search time), then the derived network's ``epoch`` events and ``result`` as
    :func:`search.trial.run_trial` does.
    """
    start = start_event(cpus, gpus)
    yield start
    config = DartsConfig(**task["darts"], ops=list(task["ops"]))
    result = None
    for item in darts_search(data, config, seed, start["device"]):
        if isinstance(item, DartsEpoch):
            yield {
                "event": "search",
                "epoch": item.epoch,
                "metrics": item.metrics,
                "genotype": item.genotype,
            }
        else:
            result = item
    assert result is not None
    derived = parse_genotype(result.genotype)
    params = {f"model.{edge_name(e)}": op for e, op in derived.edges.items()}
    yield {
        "event": "architecture",
        "params": params,
        "genotype": result.genotype,
        "alpha": result.alpha,
        "search_seconds": result.search_seconds,
    }
    model = {**task["model"], **{k.removeprefix("model."): v for k, v in params.items()}}
    yield from train_events(data, {**task, "model": model}, seed, start["device"], monitor)


def darts_task(spec: StudySpec, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the loop adds to a DARTS trial's task: the settings and the candidate ops."""
    return {"darts": dict(settings), "ops": darts_ops(spec)}


register(
    Algorithm(
        name="darts",
        kind="oneshot",
        description="DARTS (first order): one trial trains a supernet whose edges mix every "
        "candidate operation, weights and architecture bi-level on the two halves of the "
        "training split, derives the argmax cell and trains it. Cell architectures only.",
        settings=SETTINGS,
        factory=run_darts_trial,
        multi_objective=False,
        trial_cap=lambda _space: 1,
    )
)

__all__ = ["EDGE_PARAMS", "SETTINGS", "check_darts", "darts_task", "run_darts_trial"]
