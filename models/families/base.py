"""What every model family declares, and the checks families share.

A family is a config dataclass (its fields declared with :func:`models.fields.setting`), the
data kinds it accepts, the network it builds and the checks between its fields. The registry
(:mod:`models.families`) lists the families by name.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from models.data import DatasetInfo, Kind
from models.fields import FieldErrors
from models.layers import Dims, norm_error

Build = Callable[[Any, tuple[int, ...], int], nn.Module]
Check = Callable[[Any, DatasetInfo], FieldErrors]
ALL_KINDS: tuple[Kind, ...] = ("tabular", "sequence", "image")


def no_problems(cfg: Any, info: DatasetInfo) -> FieldErrors:
    return []


@dataclass(frozen=True)
class Family:
    """A model family: its config, the data kinds it accepts, how it builds and checks.

    ``defaults`` overrides some of the config's defaults (``resnet`` is ``cnn`` with residual
    blocks); ``check`` returns the constraints between fields that one field's rules cannot
    say; ``genotype`` gives a NAS family's compact architecture string (a trial's
    ``genotype``).
    """

    name: str
    description: str
    config: type
    kinds: tuple[Kind, ...]
    build: Build
    defaults: dict[str, Any] = field(default_factory=dict)
    check: Check = no_problems
    genotype: Callable[[Any], str] | None = None


def norm_errors(norm: str, groups: int, widths: list[int], dims: Dims) -> FieldErrors:
    """Why ``norm`` cannot normalize a layer of each width (group counts must divide)."""
    for width in widths:
        error = norm_error(norm, width, groups, dims)
        if error:
            return [("groups" if norm == "group" else "norm", error)]
    return []
