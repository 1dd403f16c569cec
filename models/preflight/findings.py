"""From a pre-flight check's measurements to findings: each a plain sentence saying what was
seen and what to change. Thresholds are deliberately coarse: a finding must be worth acting on.
"""

import math
from typing import Any

from models.preflight.report import Finding, PreflightReport
from models.training.config import TrainConfig

DEAD = 0.3  # a layer with this fraction of dead ReLU units (or more) is broken (healthy: ~0)
SATURATED = 0.5  # tanh/sigmoid outputs within 1% of an end
EXPLODING_GRAD = 1e3  # a parameter's gradient norm on one batch
EXPLODING_ACT = 1e3  # an activation's standard deviation
UNSCALED = 100.0  # inputs beyond ±this after preprocessing
MEMORIZED = 0.9  # training accuracy on the tiny subset that counts as memorized
NEAR_CHANCE = 0.1  # validation accuracy within this of chance learned nothing


def _g(x: float) -> str:
    return f"{x:.3g}"


def conclude(
    report: PreflightReport, cfg: TrainConfig, loss: str, chance: float | None
) -> list[Finding]:
    """Every finding the measurements in ``report`` support, errors first.

    Args:
        report: a check's measurements.
        cfg: the training it checked.
        loss: the loss it trains with (``cross_entropy``, ``bce``, ``mse``, ...).
        chance: the validation accuracy of always predicting the most frequent class
            (classification), else None.
    """
    found = [
        *_data(report.data),
        *_initial(report.initial_loss, loss),
        *_layers(report.layers, report.step),
        *_lr(report, cfg),
        *_fit(report, loss, chance),
    ]
    if not any(f.severity == "error" for f in found):
        lo, hi = report.lr_range["suggested"]
        found.append(
            Finding(
                "lr_range",
                "ok",
                f"The learning-rate range test finds the loss lowest near lr "
                f"{_g(report.lr_range['best_lr'])}: search training.lr log-uniform in "
                f"[{_g(lo)}, {_g(hi)}] (now {_g(cfg.lr)}).",
                "training.lr",
            )
        )
    if not any(f.severity != "ok" for f in found):
        found.insert(
            0,
            Finding(
                "healthy",
                "ok",
                "No problem found: the loss starts where it should, gradients and activations "
                "are in range, a tiny subset is memorized and validation improves on chance.",
            ),
        )
    order = {"error": 0, "warning": 1, "ok": 2}
    return sorted(found, key=lambda f: order[f.severity])


def _data(data: dict[str, Any]) -> list[Finding]:
    out = []
    if data["non_finite_inputs"]:
        out.append(
            Finding(
                "data_non_finite",
                "error",
                f"{data['non_finite_inputs']} input values are NaN or infinite after "
                "preprocessing: clean the dataset (replace or drop them) before training.",
                "task.dataset",
            )
        )
    reach = max(abs(data["x_min"]), abs(data["x_max"]))
    if math.isfinite(reach) and reach > UNSCALED:
        out.append(
            Finding(
                "inputs_unscaled",
                "warning",
                f"Inputs range from {_g(data['x_min'])} to {_g(data['x_max'])} as the network "
                "sees them: set training.preprocess: standardize so they are about ±1.",
                "training.preprocess",
            )
        )
    if data.get("majority_fraction", 0.0) > 0.9:
        out.append(
            Finding(
                "class_imbalance",
                "warning",
                f"One class holds {data['majority_fraction']:.0%} of the training labels: "
                "accuracy rewards predicting it always; optimize val_f1_macro instead.",
                "objective.metric",
            )
        )
    return out


def _initial(initial: dict[str, float], loss: str) -> list[Finding]:
    start, expected = initial["loss"], initial.get("expected")
    if not math.isfinite(start):
        return [
            Finding(
                "initial_loss_non_finite",
                "error",
                "The untrained network's loss is not finite: the inputs or the initialization "
                "overflow; standardize the inputs (training.preprocess: standardize).",
                "training.preprocess",
            )
        ]
    if expected is not None and start > expected + max(0.5, 0.5 * expected):
        why = "ln C" if loss == "cross_entropy" else "its chance level"
        return [
            Finding(
                "initial_loss_high",
                "warning",
                f"The untrained network's loss is {_g(start)}, expected about {_g(expected)} "
                f"({why}): its outputs start far too large; standardize the inputs or use a "
                "smaller initialization (model.init).",
                "model.init",
            )
        ]
    return []


def _layers(layers: list[dict[str, Any]], step: dict[str, Any]) -> list[Finding]:
    out = []
    for row in layers:
        dead = row.get("dead_fraction", 0.0)
        if dead >= DEAD:
            out.append(
                Finding(
                    "dead_relu",
                    "error",
                    f"{dead:.0%} of the ReLU units of layer {row['layer']} output zero for every "
                    "sample of a batch, so they never learn: their inputs are all negative "
                    "(large biases or unscaled inputs). Standardize the inputs "
                    "(training.preprocess: standardize), use model.init: kaiming_normal, or "
                    "model.activation: leaky_relu.",
                    "model.activation",
                )
            )
        if row.get("saturated_fraction", 0.0) >= SATURATED:
            out.append(
                Finding(
                    "saturated",
                    "warning",
                    f"{row['saturated_fraction']:.0%} of the {row['activation']} outputs of layer "
                    f"{row['layer']} sit at its flat ends, where gradients vanish: standardize "
                    "the inputs, use model.init: xavier_normal, or add model.norm: batch.",
                    "model.init",
                )
            )
        if row.get("std", 0.0) > EXPLODING_ACT:
            out.append(
                Finding(
                    "exploding_activations",
                    "warning",
                    f"Activations of layer {row['layer']} have a standard deviation of "
                    f"{_g(row['std'])}: they grow through the network; standardize the inputs "
                    "or add a normalization (model.norm: batch or layer).",
                    "model.norm",
                )
            )
    grads = [r["grad_norm"] for r in layers if "grad_norm" in r]
    if step["non_finite_grads"] or any(g > EXPLODING_GRAD for g in grads):
        worst = max((g for g in grads if math.isfinite(g)), default=math.inf)
        out.append(
            Finding(
                "exploding_gradients",
                "error",
                f"Gradient norms reach {_g(worst) if step['non_finite_grads'] == 0 else 'inf'} "
                "on one batch: clip them (training.clip_norm: 1.0), standardize the inputs or "
                "add a normalization (model.norm).",
                "training.clip_norm",
            )
        )
    elif grads and max(grads) > 0 and min(grads) / max(grads) < 1e-6:
        out.append(
            Finding(
                "vanishing_gradients",
                "warning",
                f"The smallest layer gradient is {_g(min(grads))} against {_g(max(grads))} for "
                "the largest: early layers barely learn; use relu-like activations, residual "
                "blocks or a normalization (model.norm).",
                "model.norm",
            )
        )
    return out


def _lr(report: PreflightReport, cfg: TrainConfig) -> list[Finding]:
    rng, tiny = report.lr_range, report.overfit
    diverge = rng["diverge_lr"]
    too_high = diverge is not None and cfg.lr >= diverge
    if not (tiny["diverged"] or report.short_fit["diverged"] or too_high):
        return []
    lo, hi = rng["suggested"]
    seen = (
        f"on {tiny['samples']} samples the loss went from {_g(tiny['loss_start'])} to "
        f"{_g(tiny['loss_end'])} in {tiny['steps']} steps"
        if tiny["diverged"]
        else "training on the whole split turned the loss non-finite"
        if report.short_fit["diverged"]
        else f"the range test's loss runs away from lr {_g(diverge)}"
    )
    above = f" and runs away above {_g(diverge)}" if diverge is not None else ""
    return [
        Finding(
            "lr_diverges",
            "error",
            f"training.lr = {_g(cfg.lr)} diverges: {seen}. The range test finds the loss lowest "
            f"near lr {_g(rng['best_lr'])}{above}: set training.lr in [{_g(lo)}, {_g(hi)}].",
            "training.lr",
        )
    ]


def _fit(report: PreflightReport, loss: str, chance: float | None) -> list[Finding]:
    tiny, fit = report.overfit, report.short_fit
    if tiny["diverged"] or fit["diverged"]:
        return []  # the learning rate explains it (see _lr)
    classify = loss in ("cross_entropy", "bce")
    memorized = (
        tiny.get("train_accuracy", 0.0) >= MEMORIZED
        if classify
        else tiny["loss_end"] <= 0.1 * max(tiny["loss_start"], 1e-12)
    )
    if not memorized:
        how = (
            f"training accuracy {tiny.get('train_accuracy', 0.0):.2f}"
            if classify
            else f"loss {_g(tiny['loss_start'])} → {_g(tiny['loss_end'])}"
        )
        return [
            Finding(
                "cannot_overfit",
                "error",
                f"The network cannot memorize {tiny['samples']} training samples in "
                f"{tiny['steps']} steps ({how}): a model or optimization problem, not the "
                "data's. Check the findings above, make the network larger or raise "
                "training.lr.",
                "model",
            )
        ]
    # Neither the memorized subset nor the short fit tells validation samples apart better
    # than chance: a slow optimizer can explain the short fit alone, not the pair.
    at_chance = chance is not None and all(
        acc <= chance + NEAR_CHANCE for acc in (fit["val_accuracy"], tiny.get("val_accuracy", 0.0))
    )
    if classify and at_chance:
        assert chance is not None
        return [
            Finding(
                "labels_unlearnable",
                "error",
                f"The network memorizes {tiny['samples']} training samples (accuracy "
                f"{tiny['train_accuracy']:.2f}), yet after {fit['steps']} steps on the whole "
                f"training split validation accuracy is {fit['val_accuracy']:.2f}, chance "
                f"{chance:.2f}: a data problem, not a model problem. The inputs do not predict "
                "the labels: check that each label belongs to its input (not shuffled).",
                "task.dataset",
            )
        ]
    if not classify and fit["val_loss"] >= 0.95:  # standardized targets: R² ≤ 0.05
        return [
            Finding(
                "targets_unlearnable",
                "error",
                f"The network memorizes {tiny['samples']} samples, yet validation loss stays "
                f"at {_g(fit['val_loss'])} (1 is predicting the mean): a data problem; check "
                "that each target belongs to its input.",
                "task.dataset",
            )
        ]
    return []
