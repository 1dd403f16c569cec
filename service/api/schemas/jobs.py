"""Jobs: a study's pre-flight check and its ensembles, run by the scheduler on Ray."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.api.schemas.base import Strict
from service.api.schemas.responses import UtcDatetime

JobStatus = Literal["pending", "running", "done", "failed"]


class JobPublic(BaseModel):
    """A job as the API shows it: ``result`` once ``done``, ``error`` once ``failed``."""

    id: int
    kind: Literal["preflight", "ensemble"]
    status: JobStatus
    study_id: int | None = Field(description="The study (an ensemble's); null for a check.")
    request: dict[str, Any] = Field(description="What was asked (a check's spec left out).")
    result: dict[str, Any] | None
    error: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class EnsembleCreate(Strict):
    """Combine a study's best finished trials into one model."""

    top_k: int = Field(5, ge=2, le=50, description="The best completed trials to combine.")
    method: Literal["average", "vote", "greedy"] = Field(
        "average",
        description="average: mean of the members' class probabilities; vote: majority of "
        "their predicted classes; greedy: Caruana's forward selection (with replacement) "
        "of the top_k on validation NLL.",
    )


class EnsemblePage(BaseModel):
    items: list[JobPublic]
