"""The search space of a study: its parameters, each a float, int or categorical range,
active under conditions on earlier ones."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from service.api.schemas.base import Scalar, Strict

MAX_CHOICES = 1024


class ConditionIn(Strict):
    """A parameter is active only when an earlier parameter's value is ``in`` a list and/or
    within bounds; e.g. ``{"param": "training.optimizer", "in": ["sgd"]}`` or
    ``{"param": "model.hidden_layers", "gt": 1}``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    param: str
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1)
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _something(self) -> "ConditionIn":
        if self.in_ is None and all(b is None for b in (self.gt, self.ge, self.lt, self.le)):
            raise ValueError("a condition needs `in` or a bound (gt, ge, lt, le)")
        return self


class _ParamBase(Strict):
    when: list[ConditionIn] = Field(
        default_factory=list, max_length=8, description="Active only when all of these hold."
    )


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step)
        return self


class IntParam(_ParamBase):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, self.step if self.step != 1 else None)
        return self


class CategoricalParam(_ParamBase):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1, max_length=MAX_CHOICES)

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Scalar]) -> list[Scalar]:
        seen = [repr(c) for c in choices]
        if len(set(seen)) != len(seen):
            raise ValueError("choices must be distinct")
        return choices


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not be greater than high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scaled range needs low > 0, got low={low}")
    if log and step is not None:
        raise ValueError("log and step cannot be combined")


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
