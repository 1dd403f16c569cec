"""``/api/v1/catalog``: what a study's task may name."""

from fastapi import APIRouter

from models.builder import family_fields, list_families
from models.data import list_datasets
from models.layers import list_activations
from models.train import list_optimizers
from service.schemas import METRICS, CatalogPublic, searchable_names

router = APIRouter(tags=["catalog"])


@router.get("/catalog")
def catalog() -> CatalogPublic:
    return CatalogPublic(
        datasets=list_datasets(),
        model_families={f: family_fields(f) for f in list_families()},
        activations=list_activations(),
        optimizers=list_optimizers(),
        metrics=list(METRICS),
        searchable=searchable_names(),
    )
