"""A pre-flight check of one network on its data: measure, then conclude in sentences.

Nothing is stored: the network is built as a trial would build it (:class:`Trainer`), probed
on a batch, trained briefly on copies, and thrown away.
"""

import math
from collections.abc import Mapping
from typing import Any

import torch

from models.data import Dataset
from models.preflight.findings import conclude
from models.preflight.fits import lr_range_test, overfit_tiny, short_fit
from models.preflight.report import PreflightReport
from models.preflight.stats import data_summary, expected_initial_loss, layer_stats
from models.training.config import TrainConfig
from models.training.trainer import Trainer

TINY = 32  # samples the network must be able to memorize
PROBE_BATCH = 256  # samples of the batch whose activations and gradients are measured


def check_point(
    model_spec: Mapping[str, Any],
    training: Mapping[str, Any],
    data: Dataset,
    seed: int = 0,
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
) -> PreflightReport:
    """Check one network (``model_spec`` trained with ``training``) on ``data``.

    Args:
        model_spec: ``{"family": ..., **fields}``, as a trial gets it.
        training: the training fields (defaults where absent).
        data: the study's train/validation split.
        seed: seeds the network's init, the subsets and the batches.
        device: ``"cpu"`` or a CUDA device.
        params: the point of the search space this network is (reported as given).

    Raises:
        ValueError: the spec does not build on this data (checked specs always do).
    """
    cfg = TrainConfig(**training)
    t = Trainer(model_spec, cfg, data, seed, device)
    report = PreflightReport(params=dict(params or {}))
    report.data = data_summary(data, t.x_tr)
    gen = torch.Generator().manual_seed(seed)
    n = len(t.x_tr)
    order = torch.randperm(n, generator=gen).to(t.x_tr.device)
    probe = order[: min(n, PROBE_BATCH)]
    y_va = t.y_va if t.target_scaler is None else t.target_scaler(t.y_va)

    expected = expected_initial_loss(t.loss_name, data)
    t.net.train(False)
    with torch.no_grad():
        start = float(t.loss_fn(t.net(t.x_tr[order[:1024]]).float(), t.y_tr[order[:1024]]))
    report.initial_loss = {"loss": start}
    if expected is not None:
        report.initial_loss["expected"] = expected

    loss, rows, grads = layer_stats(t.net, t.x_tr[probe], t.y_tr[probe], t.loss_fn)
    finite = [g for g in grads.values() if math.isfinite(g)]
    report.step = {
        "loss": loss,
        "grad_norm": math.sqrt(sum(g * g for g in finite)) if finite else math.nan,
        "non_finite_grads": len(grads) - len(finite),
    }
    report.layers = rows + [{"layer": name, "grad_norm": g} for name, g in grads.items()]

    tiny = order[: min(n, TINY)]
    report.overfit = overfit_tiny(
        t.net, cfg, t.x_tr[tiny], t.y_tr[tiny], t.loss_fn, t.loss_name, x_val=t.x_va, y_val=y_va
    )
    report.short_fit = short_fit(
        t.net, cfg, t.x_tr, t.y_tr, t.x_va, y_va, t.loss_fn, t.loss_name, gen=gen
    )
    report.lr_range = lr_range_test(t.net, cfg, t.x_tr, t.y_tr, t.loss_fn, gen=gen)
    val_counts = torch.bincount(t.y_va_labels.long()) if data.info.task != "regression" else None
    chance = None if val_counts is None else float(val_counts.max() / val_counts.sum())
    report.findings = conclude(report, cfg, t.loss_name, chance)
    return report
