"""NAS samplers against random search: regret against the number of trials on a tabular objective.

Every strategy searches :class:`search.nas.synthetic.SyntheticNAS` (6 decisions of 5 choices,
one of them an integer; a fixed random table of main effects and pairwise interactions whose
optimum is known by enumerating its 15,625 architectures), one trial at a time, with the sampler
tuneforge builds for ``algorithm: {name}`` (``search.registry.create_sampler``, default
settings, the seed as the study's seed): ``evolution`` (regularized evolution, population 20,
tournament 5), ``reinforce`` (REINFORCE, learning rate 0.1), ``tpe`` (multivariate, grouped,
10 random start-up trials) and ``random``. Seed ``s`` builds table ``s`` and seeds the sampler
with ``s``. The regret after ``n`` trials is the optimum minus the best value among the first
``n`` trials (values are accuracy-like, in [0.45, 0.95]); the table gives its mean and median
over the seeds, and which strategies beat random search's mean at each count.

Usage::

    .venv/bin/python benchmarks/nas_regret.py            # 20 seeds, up to 200 trials (~20 s)
    .venv/bin/python benchmarks/nas_regret.py --quick    # 10 seeds, up to 100 trials (~6 s)
    .venv/bin/python benchmarks/nas_regret.py --write    # also rewrite its RESULTS.md section
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from optuna.distributions import CategoricalDistribution, IntDistribution  # noqa: E402

from benchmarks.results import RESULTS, machine_line, write_section  # noqa: E402
from search.nas.synthetic import SyntheticNAS  # noqa: E402
from search.registry import create_sampler  # noqa: E402
from search.spec import ParamSpec  # noqa: E402

SECTION = "## NAS samplers: regret against trials (synthetic tabular NAS)"
STRATEGIES = ("evolution", "reinforce", "tpe", "random")
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


def run(name: str, seed: int, counts: tuple[int, ...]) -> tuple[dict[int, float], float]:
    """One study of ``max(counts)`` trials; the regret at each count and the study's seconds."""
    nas = SyntheticNAS(seed=seed)
    sampler = create_sampler(name, {}, param_specs(nas), study_seed=seed)
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
        print(f"  {name}: {sum(result.seconds):.1f} s", flush=True)
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


def reading(results: list[Result], counts: tuple[int, ...]) -> str:
    random = next(r for r in results if r.name == "random")
    parts = []
    for n in counts:
        better = [
            f"{r.name} ({r.mean(n) / random.mean(n):.2f}x)"
            for r in results
            if r.name != "random" and r.mean(n) < random.mean(n)
        ]
        parts.append(f"at {n} trials {', '.join(better) if better else 'none'}")
    last = max(counts)
    n_seeds = len(random.regrets[last])
    wins = {
        r.name: sum(a < b for a, b in zip(r.regrets[last], random.regrets[last], strict=True))
        for r in results
        if r.name != "random"
    }
    won = ", ".join(f"{name} {k}/{n_seeds}" for name, k in wins.items())
    return (
        f"Reading: mean regret below random search's (ratio to random's mean): "
        f"{'; '.join(parts)}. Seeds where the final regret ({last} trials) is below "
        f"random's on the same table: {won}."
    )


def machine() -> str:
    return machine_line(f"optuna {md.version('optuna')}, numpy {md.version('numpy')}")


def section(results: list[Result], command: str, seeds: list[int], counts: tuple[int, ...]) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            f"- Date: {dt.date.today().isoformat()}",
            f"- Machine: {machine()}",
            f"- Command: `{command}`",
            f"- Method: `SyntheticNAS(seed=s)` (6 decisions x 5 choices, 6 interacting pairs, "
            f"values in [0.45, 0.95], optimum by enumeration) searched one trial at a time by "
            f"the sampler `create_sampler(name, {{}}, space, study_seed=s)` builds, seeds "
            f"{seeds[0]}-{seeds[-1]} ({len(seeds)}). Cells: mean (median) regret = optimum - "
            f"best value among the first n trials; ms/trial is the study's wall time per "
            f"trial (sampler and lookup). evolution's first 20 trials and tpe's first 10 are "
            f"random, so differences at 25 trials are mostly noise.",
            "",
            table(results, counts),
            "",
            reading(results, counts),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 seeds, up to 100 trials")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (20)")
    parser.add_argument("--write", action="store_true", help=f"rewrite its section of {RESULTS}")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    counts = QUICK_COUNTS if args.quick else COUNTS
    seeds = list(range(args.seeds or (10 if args.quick else 20)))
    if len(seeds) < 2:
        parser.error("--seeds must be at least 2 (a median needs them)")
    print(machine())
    results = measure(seeds, counts)
    command = "cd /work/main && .venv/bin/python benchmarks/nas_regret.py " + " ".join(sys.argv[1:])
    print()
    print(f"Command: `{command.rstrip()}`")
    print()
    print(table(results, counts))
    print()
    print(reading(results, counts))
    if args.write:
        write_section(SECTION, section(results, command.rstrip(), seeds, counts))
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
