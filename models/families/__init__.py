"""Model families by name: the catalog's networks.

A model spec is ``{"family": name, **fields}``. :func:`check_model` tells, before anything
runs, whether a spec can build for a dataset (field errors by name); :func:`build_model`
instantiates it. Each family lives in a module of its own (``mlp``, ``conv``, ``transformer``,
``macro``, ``nb201``, ``gnn``); adding one is a module and a line in ``_MODULES``. Installed
packages add theirs through the ``tuneforge.families`` entry points (:mod:`models.plugins`),
found on first use.
"""

import functools
from collections.abc import Mapping
from typing import Any

from torch import nn

from models.data import DatasetInfo
from models.families import conv, gnn, macro, mlp, nb201, transformer
from models.families.base import Family
from models.fields import FieldErrors, check, describe
from models.layers import init_weights
from models.plugins import Plugin, entries

_MODULES = (mlp, conv, transformer, macro, nb201, gnn)
_BUILT_IN: dict[str, Family] = {f.name: f for module in _MODULES for f in module.FAMILIES}


@functools.cache
def _plugins() -> dict[str, tuple[Family, Plugin]]:
    return entries("families", Family, _BUILT_IN)


@functools.cache
def _families() -> dict[str, Family]:
    return {**_BUILT_IN, **{name: family for name, (family, _) in _plugins().items()}}


def list_families() -> list[str]:
    """Model family names accepted by :func:`build_model`."""
    return sorted(_families())


def family_plugin(name: str) -> Plugin | None:
    """The installed package that adds family ``name`` (None: a built-in one, or unknown)."""
    found = _plugins().get(name)
    return None if found is None else found[1]


def get_family(name: str) -> Family:
    """The family registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    families = _families()
    if name not in families:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(list_families())}")
    return families[name]


def family_fields(family: str) -> dict[str, dict[str, Any]]:
    """The configurable fields of a family: type, default, bounds, choices, doc."""
    f = get_family(family)
    fields = describe(f.config)
    for key, value in f.defaults.items():
        fields[key]["default"] = value
    return fields


def parse_model(spec: Mapping[str, Any]) -> tuple[Family, Any, FieldErrors]:
    """Check a model spec's fields and build its config (None when there are errors).

    Raises:
        ValueError: the family is unknown.
    """
    params = dict(spec)
    family = get_family(params.pop("family", "mlp"))
    cfg, errors = check(family.config, {**family.defaults, **params})
    return family, cfg, errors


def model_genotype(spec: Mapping[str, Any]) -> str | None:
    """The compact architecture string of a NAS family's model (None for other families or
    an invalid spec)."""
    try:
        family, cfg, errors = parse_model(spec)
    except ValueError:
        return None
    if errors or family.genotype is None:
        return None
    return family.genotype(cfg)


def check_model(spec: Mapping[str, Any], info: DatasetInfo) -> FieldErrors:
    """Every reason ``spec`` cannot build for ``info``'s data, as (field, message) pairs.

    Checks field types and bounds, the family against the data kind, and the constraints
    between fields (group counts, heads, kernel parity, how many stages the input allows, a
    cell's path from input to output).
    """
    try:
        family, cfg, errors = parse_model(spec)
    except ValueError as exc:
        return [("family", str(exc))]
    if errors:
        return errors
    if info.kind not in family.kinds:
        return [
            (
                "family",
                f"{family.name} needs {' or '.join(family.kinds)} data; dataset {info.name!r} is "
                f"{info.kind} with samples of shape {list(info.input_shape)}",
            )
        ]
    return family.check(cfg, info)


def build_model(spec: Mapping[str, Any], input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """Instantiate the network a (checked) model spec describes, with its initialization.

    Args:
        spec: ``{"family": ..., **fields}``.
        input_shape: one sample's shape.
        n_out: output units (classes, 1 for binary cross-entropy, or regression targets).

    Raises:
        ValueError: the spec has field errors (the message lists them).
    """
    family, cfg, errors = parse_model(spec)
    if errors:
        raise ValueError("; ".join(m for _, m in errors))
    model = family.build(cfg, input_shape, n_out)
    init_weights(model, cfg.init)
    return model


__all__ = [
    "Family",
    "build_model",
    "check_model",
    "family_fields",
    "family_plugin",
    "get_family",
    "list_families",
    "model_genotype",
    "parse_model",
]
