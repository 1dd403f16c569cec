"""One member of a population, as it trains inside a Ray Tune worker.

A member trains ``training.epochs`` epochs with :class:`models.checkpointing.ResumableTrainer`,
reporting every epoch to Tune and checkpointing weights, optimizer moments, schedule and random
generators at every multiple of ``perturbation_interval`` (and at the last epoch, with the
exports). Started from another member's checkpoint, it is an exploit: its first result says
so (:data:`LINEAGE`), with the parent, the epoch and the hyperparameters that changed.
"""

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.checkpointing import ResumableTrainer, load_state, save_state
from models.data import Dataset
from models.training.config import TrainConfig
from search.pbt.explore import Plan
from search.spec import TrainTask

LINEAGE = "pbt_lineage"  # result key of the first result after a (re)start: JSON
MEMBER = "pbt_member"  # config key: the member a trial was created as
STATE, META = "state.pt", "meta.json"
WEIGHTS, TORCHSCRIPT, RESULT = "weights.pt", "model.ts", "result.json"


def member_index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def trial_name(trial: Any) -> str:
    # Called as Tune creates a trial, with the initial config: names say which member it is
    # (a trial's config is later replaced by its clone's).
    return f"member-{trial.config[MEMBER]}"


def _write_checkpoint(folder: Path, trainer: Any, member: int, params: dict[str, Any]) -> None:
    (folder / STATE).write_bytes(save_state(trainer.state()))
    meta = {"member": member, "epoch": trainer.epoch, "params": params}
    (folder / META).write_text(json.dumps(meta))


def train_member(config: dict[str, Any], data: Dataset, plan: Plan) -> None:
    """Train one member from its checkpoint (if any) to the last epoch, reporting each epoch."""
    from ray import tune

    # Tune logs every checkpoint saved and restored at INFO: a PBT study does it constantly.
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(max(1, int(plan.cpus)))
    device = "cuda" if plan.gpus > 0 and torch.cuda.is_available() else "cpu"
    member = member_index(tune.get_context().get_trial_name())
    seed = plan.spec.seed + member
    params = plan.decode(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_state((Path(folder) / STATE).read_bytes())
            meta = json.loads((Path(folder) / META).read_text())
        # The weights fix the network's shape: structural params come with them. (After a
        # restore, Tune can hand an exploited member its config from before the exploit.)
        params.update({k: v for k, v in meta["params"].items() if k not in plan.mutable})
    task = plan.spec.task.with_params(params)
    assert isinstance(task, TrainTask)
    cfg = TrainConfig(**task.training)
    lineage: dict[str, Any] = {"member": member, "params": params, "parent": None}
    if checkpoint is None:
        trainer = ResumableTrainer(task.model, cfg, data, seed, device)
        lineage["start"] = "fresh"
    else:
        trainer = ResumableTrainer(task.model, cfg, data, seed, device, state=state)
        if meta["member"] == member:
            lineage["start"] = "resume"  # paused, or retried: the same segment goes on
        else:
            lineage.update(
                start="exploit",
                parent=meta["member"],
                exploit_epoch=meta["epoch"],
                perturbation={
                    k: [meta["params"][k], v]
                    for k, v in params.items()
                    if meta["params"].get(k) != v
                },
            )
            trainer.reseed(seed + 1000 * trainer.epoch)
    first = True
    while trainer.epoch < plan.epochs:
        metrics = trainer.run_epoch().metrics
        result: dict[str, Any] = {**metrics, "epoch": trainer.epoch}
        if first:
            result[LINEAGE] = json.dumps({**lineage, "metrics": sorted(metrics)})
            first = False
        last = trainer.epoch == plan.epochs
        if trainer.epoch % plan.interval and not last:
            tune.report(result)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _write_checkpoint(folder, trainer, member, params)
            if last:
                final = trainer.result()
                (folder / WEIGHTS).write_bytes(final.state_dict)
                (folder / TORCHSCRIPT).write_bytes(final.torchscript)
                summary = {"metrics": final.metrics, "grad_norms": final.grad_norms}
                (folder / RESULT).write_text(json.dumps(summary))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
