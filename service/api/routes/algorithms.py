"""``/api/v1/algorithms``: the registered search algorithms and their settings."""

from fastapi import APIRouter

from models.fields import declared
from search.registry import list_algorithms
from service.api.schemas.responses import AlgorithmPublic, SettingPublic

router = APIRouter(tags=["algorithms"])


@router.get("/algorithms")
def algorithms() -> list[AlgorithmPublic]:
    return [
        AlgorithmPublic(
            name=a.name,
            kind=a.kind,
            description=a.description,
            multi_objective=a.multi_objective,
            settings=[
                SettingPublic(
                    name=d.name,
                    type=d.base_type,
                    default=d.default,
                    description=d.rules.doc,
                    minimum=d.rules.low,
                    maximum=d.rules.high,
                    choices=d.rules.allowed(),
                )
                for d in declared(a.settings).values()
            ],
        )
        for a in list_algorithms()
    ]
