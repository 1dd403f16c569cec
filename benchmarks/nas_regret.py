"""NAS samplers against random search: regret against the number of trials on a tabular objective.

Every strategy searches :class:`search.nas.synthetic.SyntheticNAS` (6 decisions of 5 choices,
one of them an integer; a fixed random table of main effects and pairwise interactions whose
optimum is known by enumerating its 15,625 architectures), one trial at a time, with the sampler
tuneforge builds for ``algorithm: {name}`` (the registry's ``SamplerAlgorithm.sampler``, default
settings, the seed as the study's seed): ``evolution`` (regularized evolution, population 20,
tournament 5), ``reinforce`` (REINFORCE, learning rate 0.1), ``local_search`` (one-edit
neighbourhoods, first improvement, random restarts, 10 random start-up architectures),
``predictor`` (an ensemble of 5 small MLPs picking mutations of the best architectures, 10 random
start-up architectures), ``tpe`` (multivariate, grouped, 10 random start-up trials) and
``random``. Seed ``s`` builds table ``s`` and seeds the sampler with
``s``. The regret after ``n`` trials is the optimum minus the best value among the first ``n``
trials (values are accuracy-like, in [0.45, 0.95]); the table gives its mean and median over the
seeds, which strategies beat random search's mean at each count, and each strategy's mean regret
as a fraction of TPE's (issue 18 asks at most 0.7 at 100 trials, over at least 20 seeds).

Usage::

    .venv/bin/python benchmarks/nas_regret.py            # 20 seeds, up to 200 trials (~20 s)
    .venv/bin/python benchmarks/nas_regret.py --quick    # 10 seeds, up to 100 trials (~6 s)
    .venv/bin/python benchmarks/nas_regret.py --quick --seeds 20   # 20 seeds, up to 100 trials
    .venv/bin/python benchmarks/nas_regret.py --write    # also rewrite its RESULTS.md block
"""

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as `python benchmarks/nas_regret.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler

from benchmarks.harness import RESULTS, log, publish, report_head, versions
from search.nas.synthetic import SyntheticNAS
from search.registry import get_algorithm
from search.samplers.base import SamplerAlgorithm
from search.spec import ParamSpec

HEADING = "## NAS samplers: regret against trials (synthetic tabular NAS)"
BLOCK = "benchmarks/nas_regret.py"
STRATEGIES = ("local_search", "predictor", "evolution", "reinforce", "tpe", "random")
COUNTS = (25, 50, 100, 200)
QUICK_COUNTS = (25, 50, 100)


@dataclass
class Result:
    """One strategy's regrets: ``regrets[n]`` has one entry per seed."""

    name: str
    regrets: dict[int, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # per study

    def mean(self, n: int) -> float:
        return statistics.mean(self.regrets[n])

    def median(self, n: int) -> float:
        return statistics.median(self.regrets[n])


def param_specs(nas: SyntheticNAS) -> tuple[ParamSpec, ...]:
    """The objective's space as tuneforge's search-space entries."""
    out = []
    for name, dist in nas.space().items():
        if isinstance(dist, IntDistribution):
            out.append(ParamSpec(name, "int", low=dist.low, high=dist.high, step=dist.step))
        else:
            assert isinstance(dist, CategoricalDistribution)
            out.append(ParamSpec(name, "categorical", choices=tuple(dist.choices)))
    return tuple(out)


def create_sampler(name: str, space: tuple[ParamSpec, ...], seed: int) -> BaseSampler:
    """The sampler a study with ``algorithm: {name: ...}`` (default settings) and ``seed`` gets."""
    algorithm = get_algorithm(name, "sampler")
    assert isinstance(algorithm, SamplerAlgorithm)
    return algorithm.sampler({}, space, seed)


def run(name: str, seed: int, counts: tuple[int, ...]) -> tuple[dict[int, float], float]:
    """One study of ``max(counts)`` trials; the regret at each count and the study's seconds."""
    nas = SyntheticNAS(seed=seed)
    sampler = create_sampler(name, param_specs(nas), seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    t0 = time.perf_counter()
    study.optimize(nas.objective, n_trials=max(counts))
    seconds = time.perf_counter() - t0
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    assert all(v is not None for v in values)
    return {n: nas.regret(max(v for v in values[:n] if v is not None)) for n in counts}, seconds


def measure(seeds: list[int], counts: tuple[int, ...]) -> list[Result]:
    results = []
    for name in STRATEGIES:
        result = Result(name, {n: [] for n in counts})
        for seed in seeds:
            regrets, seconds = run(name, seed, counts)
            for n in counts:
                result.regrets[n].append(regrets[n])
            result.seconds.append(seconds)
        log(f"  {name}: {sum(result.seconds):.1f} s")
        results.append(result)
    return results


def table(results: list[Result], counts: tuple[int, ...]) -> str:
    head = "| strategy | " + " | ".join(f"{n} trials" for n in counts) + " | ms/trial |"
    lines = [head, "|---|" + "---:|" * (len(counts) + 1)]
    for r in results:
        cells = [f"{r.mean(n):.4f} ({r.median(n):.4f})" for n in counts]
        per_trial = 1000 * statistics.mean(r.seconds) / max(counts)
        lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {per_trial:.1f} |")
    return "\n".join(lines)


def versus_random(results: list[Result], counts: tuple[int, ...]) -> str:
    """Each strategy's mean regret / random search's, and the seeds where its final regret is
    below random's on the same table."""
    random = next(r for r in results if r.name == "random")
    last = max(counts)
    n_seeds = len(random.regrets[last])
    head = (
        "| strategy | "
        + " | ".join(f"mean regret / random's, {n} trials" for n in counts)
        + f" | seeds below random at {last} trials |"
    )
    lines = [head, "|---|" + "---:|" * (len(counts) + 1)]
    for r in results:
        if r is random:
            continue
        ratios = [f"{r.mean(n) / random.mean(n):.2f}" for n in counts]
        wins = sum(a < b for a, b in zip(r.regrets[last], random.regrets[last], strict=True))
        lines.append(f"| {r.name} | " + " | ".join(ratios) + f" | {wins}/{n_seeds} |")
    return "\n".join(lines)


def versus_tpe(results: list[Result], counts: tuple[int, ...]) -> str:
    """Each strategy's mean regret / TPE's, and the seeds where its regret at 100 trials (or the
    last count) is below TPE's on the same table."""
    tpe = next(r for r in results if r.name == "tpe")
    at = 100 if 100 in counts else max(counts)
    n_seeds = len(tpe.regrets[at])
    head = (
        "| strategy | "
        + " | ".join(f"mean regret / tpe's, {n} trials" for n in counts)
        + f" | seeds below tpe at {at} trials |"
    )
    lines = [head, "|---|" + "---:|" * (len(counts) + 1)]
    for r in results:
        if r is tpe:
            continue
        ratios = [f"{r.mean(n) / tpe.mean(n):.2f}" for n in counts]
        wins = sum(a < b for a, b in zip(r.regrets[at], tpe.regrets[at], strict=True))
        lines.append(f"| {r.name} | " + " | ".join(ratios) + f" | {wins}/{n_seeds} |")
    return "\n".join(lines)


def report(results: list[Result], seeds: list[int], counts: tuple[int, ...]) -> str:
    return "\n".join(
        [
            report_head(
                versions("optuna", "numpy"),
                f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), up to {max(counts)} trials; cells: "
                "mean (median) regret = optimum - best value among the first n trials; "
                "ms/trial: the study's wall time per trial.",
            ),
            "",
            table(results, counts),
            "",
            versus_random(results, counts),
            "",
            versus_tpe(results, counts),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 seeds, up to 100 trials")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (20)")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    counts = QUICK_COUNTS if args.quick else COUNTS
    seeds = list(range(args.seeds or (10 if args.quick else 20)))
    if len(seeds) < 2:
        parser.error("--seeds must be at least 2 (a median needs them)")
    results = measure(seeds, counts)
    publish(report(results, seeds, counts), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
