"""The pre-flight check of a study, as Ray runs it: a few points of its search space, each
network probed on the study's data (:mod:`models.preflight`); nothing is stored."""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from models.data import Dataset
from models.preflight import check_point
from search.space import suggest_all
from search.spec import StudySpec, TrainTask

MAX_POINTS = 8


def sample_points(spec: StudySpec, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points of the study's search space, drawn at random with ``seed`` (one empty
    point when nothing is searched: the task as written)."""
    if not spec.search_space:
        return [{}]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    points = []
    for _ in range(n):
        trial = study.ask()
        suggest_all(trial, spec.search_space)
        points.append(dict(trial.params))
        study.tell(trial, 0.0)
    return points


@dataclass(frozen=True)
class PreflightJob:
    """What a Ray worker checks: the study's task at each point."""

    spec: StudySpec
    points: tuple[Mapping[str, Any], ...]
    seed: int = 0

    def run(self, data: Dataset, device: str = "cpu") -> dict[str, Any]:
        """Every point's report, and a summary: ``passed`` when no point has an error,
        ``findings`` the distinct sentences across points (with how many points each)."""
        began = time.monotonic()
        reports = []
        for point in self.points:
            task = self.spec.task.with_params(point)
            assert isinstance(task, TrainTask)
            report = check_point(task.model, task.training, data, self.seed, device, point)
            reports.append(report)
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for report in reports:
            for f in report.findings:
                entry = seen.setdefault(
                    (f.code, f.severity),
                    {
                        "code": f.code,
                        "severity": f.severity,
                        "field": f.field,
                        "message": f.message,
                        "points": 0,
                    },
                )
                entry["points"] += 1
        order = {"error": 0, "warning": 1, "ok": 2}
        return {
            "passed": all(r.passed for r in reports),
            "findings": sorted(seen.values(), key=lambda f: order[f["severity"]]),
            "points": [r.to_dict() for r in reports],
            "seconds": round(time.monotonic() - began, 2),
        }


def run_preflight(job: PreflightJob, data: Dataset, cpus: float, gpus: float) -> dict[str, Any]:
    """The body of the Ray task: size torch for the reservation, then check."""
    from search.trials.worker import start

    return job.run(data, start(cpus, gpus).device)
