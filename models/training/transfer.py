"""Start a training from another training's weights: which tensors carry over, which stay
fixed, and how fast the carried ones learn.

The source is an exported ``weights.pt`` (:class:`models.training.export.Exported`'s
state_dict: the network's tensors under ``net.``, the input scaling under ``pre.``). The
*head* of a network is every tensor whose shape depends on the number of outputs, found by
building the spec twice on PyTorch's meta device (no memory): it works for every family of the
catalog without naming layers. When the class count differs the head cannot carry over and
keeps its fresh initialization; ``layers: backbone`` leaves it fresh in any case.
"""

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from models.families import build_model

Layers = Literal["all", "backbone"]
GROUPS = ("backbone", "head")  # the layer groups ``freeze`` may name besides prefixes
MAX_FREEZE = 64  # the most entries ``freeze`` may list


@dataclass(frozen=True)
class InitSpec:
    """What a training starts from: ``weights`` (an exported state_dict's bytes), the
    ``layers`` loaded, the parameter prefixes or groups to ``freeze``, and the backbone's
    learning-rate multiplier."""

    weights: bytes = field(repr=False)
    layers: Layers = "all"
    freeze: tuple[str, ...] = ()
    lr_mult: float = 1.0


def head_names(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_out: int) -> set[str]:
    """The names of the tensors (parameters and buffers) whose shape depends on ``n_out``."""
    with torch.device("meta"):
        one = build_model(dict(spec), input_shape, n_out).state_dict()
        other = build_model(dict(spec), input_shape, n_out + 1).state_dict()
    return {k for k, v in one.items() if k not in other or other[k].shape != v.shape}


def tensor_shapes(
    spec: Mapping[str, Any], input_shape: tuple[int, ...], n_out: int
) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape of the network a spec builds (on the meta device: no memory)."""
    with torch.device("meta"):
        net = build_model(dict(spec), input_shape, n_out)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def carried(
    source: Mapping[str, tuple[int, ...]],
    target: Mapping[str, tuple[int, ...]],
    head: set[str],
    layers: Layers,
) -> tuple[list[str], list[str]]:
    """Which target tensors take the source's values, and the mismatches (as messages).

    The head carries over only with ``layers: all`` and equal shapes; every other tensor of
    the target must exist in the source with its shape.
    """
    take, problems = [], []
    for name, shape in target.items():
        if name in head:
            if layers == "all" and source.get(name) == shape:
                take.append(name)
            continue
        if name not in source:
            problems.append(f"the source network has no {name}")
        elif source[name] != shape:
            problems.append(f"{name} is {list(source[name])} there, {list(shape)} here")
        else:
            take.append(name)
    return take, problems


def freeze_errors(freeze: Sequence[str], names: Sequence[str]) -> list[tuple[int, str]]:
    """Entries of ``freeze`` that match no tensor (index, message)."""
    errors = []
    for i, entry in enumerate(freeze):
        if entry not in GROUPS and not any(_under(n, entry) for n in names):
            sample = ", ".join(sorted({n.split(".")[0] for n in names})[:8])
            errors.append((i, f"{entry!r} names no parameter (prefixes start with: {sample})"))
    return errors


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def load_weights(raw: bytes) -> dict[str, torch.Tensor]:
    """The network's tensors of an exported ``weights.pt`` (the ``net.`` prefix removed)."""
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}


def apply_init(net: nn.Module, init: InitSpec, head: set[str]) -> list[dict[str, Any]]:
    """Load the source weights into ``net``, freeze what ``init`` says, and return the
    optimizer's parameter groups: the head first at the base learning rate, then the
    backbone scaled by ``lr_mult`` (an ``lr_mult`` key the trainer's schedule reads).

    Raises:
        ValueError: the source weights do not fit ``net`` (outside the head).
    """
    source = load_weights(init.weights)
    own = net.state_dict()
    take, problems = carried(
        {k: tuple(v.shape) for k, v in source.items()},
        {k: tuple(v.shape) for k, v in own.items()},
        head,
        init.layers,
    )
    if problems:
        raise ValueError(f"the source weights do not fit this network: {problems[0]}")
    with torch.no_grad():
        for name in take:
            own[name].copy_(source[name])
    head_params: list[nn.Parameter] = []
    backbone: list[nn.Parameter] = []
    for name, p in net.named_parameters():
        in_head = name in head
        if any(_frozen(name, entry, in_head) for entry in init.freeze):
            p.requires_grad_(False)
            continue
        (head_params if in_head else backbone).append(p)
    groups = [
        {"params": head_params, "lr_mult": 1.0},
        {"params": backbone, "lr_mult": init.lr_mult},
    ]
    return [g for g in groups if g["params"]]


def _frozen(name: str, entry: str, in_head: bool) -> bool:
    if entry == "backbone":
        return not in_head
    if entry == "head":
        return in_head
    return _under(name, entry)
