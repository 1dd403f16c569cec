"""``/api/v1/catalog``: what a study's task may name, with every field's rules."""

from fastapi import APIRouter

from models.data import dataset_info, dataset_options, dataset_plugin, list_datasets
from models.families import family_fields, family_plugin, get_family, list_families
from models.fewshot import fewshot_fields
from models.fields import describe
from models.layers import list_activations, list_inits, list_norms
from models.metrics import METRICS
from models.plugins import Plugin
from models.training.config import TrainConfig
from search.functions import all_functions, function_plugin
from service.api.schemas.responses import (
    CatalogPublic,
    DatasetEntry,
    FamilyPublic,
    FunctionEntry,
    MetricPublic,
    PluginPublic,
)

router = APIRouter(tags=["catalog"])


def _plugin(origin: Plugin | None) -> PluginPublic | None:
    return None if origin is None else PluginPublic(package=origin.package, version=origin.version)


def _dataset(name: str) -> DatasetEntry:
    info = dataset_info(name)
    options = {
        key: {
            "type": d.type_name,
            "default": d.default,
            "low": d.rules.low,
            "high": d.rules.high,
            "doc": d.rules.doc,
        }
        for key, d in dataset_options(name).items()
    }
    return DatasetEntry(
        task=info.task,
        kind=info.kind,
        input_shape=list(info.input_shape),
        n_outputs=info.n_outputs,
        n_samples=info.n_samples,
        options=options,
        plugin=_plugin(dataset_plugin(name)),
    )


@router.get("/catalog")
def catalog() -> CatalogPublic:
    return CatalogPublic(
        families={
            name: FamilyPublic(
                description=get_family(name).description,
                data_kinds=list(get_family(name).kinds),
                fields=family_fields(name),
                plugin=_plugin(family_plugin(name)),
            )
            for name in list_families()
        },
        functions={
            f.name: FunctionEntry(
                doc=f.description,
                domain={k: list(v) for k, v in f.domain.items()},
                optimum=f.optimum,
                plugin=_plugin(function_plugin(f.name)),
            )
            for f in all_functions().values()
        },
        training=describe(TrainConfig),
        fewshot=fewshot_fields(),
        datasets={name: _dataset(name) for name in list_datasets()},
        metrics={
            m.name: MetricPublic(
                tasks=list(m.tasks), per_epoch=m.per_epoch, direction=m.direction, doc=m.doc
            )
            for m in METRICS.values()
        },
        activations=list_activations(),
        norms=list_norms(),
        inits=list_inits(),
    )
