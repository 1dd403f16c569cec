"""``/api/v1/algorithms``: the registered search algorithms and their settings."""

from fastapi import APIRouter

from search.registry import list_algorithms
from service.schemas import AlgorithmPublic, SettingPublic

router = APIRouter(tags=["algorithms"])


@router.get("/algorithms")
def algorithms() -> list[AlgorithmPublic]:
    return [
        AlgorithmPublic(
            name=a.name,
            kind=a.kind,
            description=a.description,
            multi_objective=a.multi_objective and a.kind == "sampler",
            settings=[
                SettingPublic(
                    name=s.name,
                    type=s.type.__name__,
                    default=s.default,
                    description=s.description,
                    minimum=s.minimum,
                    choices=None if s.choices is None else list(s.choices),
                )
                for s in a.settings
            ],
        )
        for a in list_algorithms()
    ]
