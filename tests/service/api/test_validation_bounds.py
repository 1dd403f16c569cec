"""Specs a hostile tenant would send, each refused by a bound (issue 15's findings), and every
setting of the catalog bounded.

Checking a spec costs the API process no more than a bounded amount of time and memory: the
fixed model is built on PyTorch's meta device and its parameters capped, every list setting is
capped, a synthetic dataset's metadata comes from a small sample, and every numeric setting of
every algorithm, model family, the training, every dataset and every function has both bounds.
Every case posts a variant of ``examples/digits-mlp.yaml`` to an in-process app (real SQLite,
real migrations, no scheduler) and checks the 422's path and message, and that nothing was
written.
"""

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.data import dataset_options, list_datasets
from models.families import get_family, list_families
from models.fields import MAX_LIST_ITEMS, declared
from models.training.config import TrainConfig
from search import registry
from search.functions import FUNCTIONS
from search.pbt.settings import MAX_POPULATION
from search.spec import MAX_SEED
from search.trials.train_checks import MAX_PARAMETERS
from tests.service.api._validation import STUDIES, Spec, _assert_nothing_written, _detail_items


def _with(base: Spec, change: Callable[[Spec], None]) -> Spec:
    spec = copy.deepcopy(base)
    change(spec)
    return spec


def _pbt(spec: Spec) -> None:
    spec["algorithm"] = {"name": "pbt", "settings": {"population_size": 10**9}}
    spec["search_space"] = {"training.lr": spec["search_space"]["training.lr"]}


CASES: list[tuple[str, Callable[[Spec], None], str, tuple[str, ...]]] = [
    (
        # The finding: [8192] * 6 on iris took 4.9 s and +1.3 GB in the API process.
        "parameter-cap",
        lambda s: s["task"].update(
            {"dataset": {"name": "iris"}, "model": {"family": "mlp", "widths": [8192] * 6}}
        ),
        "task.model",
        (f"at most {MAX_PARAMETERS:,} are allowed", "335,"),
    ),
    (
        # The finding: [8192] * 1000 passed the checks (about 268 GB to build).
        "list-cap",
        lambda s: s["task"].update({"model": {"family": "mlp", "widths": [8192] * 1000}}),
        "task.model.widths",
        (f"at most {MAX_LIST_ITEMS} items", "got 1000"),
    ),
    (
        "population-size",
        _pbt,
        "algorithm.settings.population_size",
        (f"<= {MAX_POPULATION}",),
    ),
    ("study-seed", lambda s: s.update({"seed": 2**200}), "seed", (str(MAX_SEED),)),
    (
        "sampler-seed",
        lambda s: s["algorithm"]["settings"].update({"seed": 2**40}),
        "algorithm.settings.seed",
        (f"<= {MAX_SEED:g}",),
    ),
    (
        # The finding: answered 500 (the id overflowed the database's integer).
        "warm-start-id",
        lambda s: s.update({"warm_start": {"from_study": 2**63}}),
        "warm_start.from_study",
        ("2147483647",),
    ),
]


@pytest.mark.parametrize(
    ("change", "path", "needles"), [pytest.param(c, p, n, id=i) for i, c, p, n in CASES]
)
def test_a_spec_past_a_bound_is_refused_at_its_field(
    client: TestClient,
    tmp_path: Path,
    base_spec: Spec,
    change: Callable[[Spec], None],
    path: str,
    needles: tuple[str, ...],
) -> None:
    detail = _detail_items(client.post(STUDIES, json=_with(base_spec, change)))
    messages = {d["path"]: d["msg"] for d in detail}
    assert path in messages, messages
    for needle in needles:
        assert needle in messages[path], messages[path]
    _assert_nothing_written(client, tmp_path)


def test_a_large_synthetic_dataset_is_checked_without_generating_it(
    client: TestClient, base_spec: Spec
) -> None:
    # The finding: waveforms of 20,000 x 4,096 were generated in the request (8.3 s, +2.2 GB).
    # Its metadata now comes from a small sample generated with the same options: a model that
    # cannot take the data is still refused, one that can is accepted.
    options = {"n_samples": 20_000, "length": 4096}
    dataset = {"name": "waveforms", "options": options}
    wrong = _with(
        base_spec,
        lambda s: (
            s["task"].update({"dataset": dataset, "model": {"family": "cnn"}}),
            s.update({"search_space": {"training.lr": s["search_space"]["training.lr"]}}),
        ),
    )
    refused = {d["path"]: d["msg"] for d in _detail_items(client.post(STUDIES, json=wrong))}
    assert "task.model.family" in refused, refused  # a CNN takes images, not sequences
    fits = _with(base_spec, lambda s: s["task"].update({"dataset": dataset}))
    created = client.post(STUDIES, json=fits)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["task"]["dataset"]["options"] == options


def _settings() -> list[tuple[str, type]]:
    owners: list[tuple[str, type]] = [
        (f"algorithm {a.name}", a.settings) for a in registry.list_algorithms()
    ]
    owners += [(f"family {f}", get_family(f).config) for f in list_families()]
    owners += [("training", TrainConfig)]
    owners += [(f"function {name}", f.arguments) for name, f in FUNCTIONS.items()]
    return owners


@pytest.mark.parametrize(("owner", "cls"), _settings(), ids=[o for o, _ in _settings()])
def test_every_numeric_setting_has_both_bounds(owner: str, cls: type) -> None:
    unbounded = [
        name
        for name, d in declared(cls).items()
        if ("int" in d.type_name or "float" in d.type_name)
        and d.rules.choices is None
        and (d.rules.low is None or d.rules.high is None)
    ]
    assert unbounded == [], f"{owner}: {unbounded}"


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_option_has_both_bounds(name: str) -> None:
    unbounded = [
        option
        for option, d in dataset_options(name).items()
        if d.rules.low is None or d.rules.high is None
    ]
    assert unbounded == []
