"""What a spec may name: ``/algorithms`` lists every algorithm with its kind and settings, and
``/catalog`` the datasets, model families, fields, activations and metrics a task may use.

Both are read from an in-process app (real SQLite, real migrations, no scheduler).
"""

from fastapi.testclient import TestClient


def test_algorithms_lists_random_and_tpe_with_settings(client: TestClient) -> None:
    response = client.get("/api/v1/algorithms")

    assert response.status_code == 200
    algorithms = {a["name"]: a for a in response.json()}
    assert {"random", "tpe"} <= set(algorithms)
    for algorithm in algorithms.values():
        assert algorithm["kind"] in ("sampler", "pruner", "population", "oneshot")
        assert algorithm["description"]
    tpe = {s["name"]: s for s in algorithms["tpe"]["settings"]}
    assert tpe["seed"] == {**tpe["seed"], "type": "int", "default": None}
    assert tpe["n_startup_trials"] == {**tpe["n_startup_trials"], "type": "int", "default": 10}
    assert tpe["multivariate"] == {**tpe["multivariate"], "type": "bool", "default": True}
    assert [s["name"] for s in algorithms["random"]["settings"]] == ["seed"]
    kinds = {name: a["kind"] for name, a in algorithms.items()}
    assert kinds == {
        **{
            n: "sampler"
            for n in (
                "grid",
                "random",
                "qmc",
                "tpe",
                "gp",
                "cmaes",
                "nsga2",
                "nsga3",
                "evolution",
                "reinforce",
                "local_search",
                "predictor",
                "bohb",
            )
        },
        **{
            n: "pruner"
            for n in (
                "asha",
                "hyperband",
                "median",
                "percentile",
                "patient",
                "threshold",
                "curve",
                "mo_asha",
                "mo_median",
            )
        },
        "pbt": "population",
        "pb2": "population",
        "darts": "oneshot",
    }
    assert algorithms["pbt"]["multi_objective"] is False
    pbt = {s["name"]: s for s in algorithms["pbt"]["settings"]}
    assert pbt["population_size"] == {**pbt["population_size"], "type": "int", "default": 4}
    assert "resample_probability" in pbt
    assert "resample_probability" not in {s["name"] for s in algorithms["pb2"]["settings"]}
    assert algorithms["cmaes"]["multi_objective"] is False
    assert algorithms["nsga2"]["multi_objective"] is True
    assert algorithms["mo_asha"]["multi_objective"] is True  # a pruner of several objectives
    assert algorithms["curve"]["multi_objective"] is False
    qmc = {s["name"]: s for s in algorithms["qmc"]["settings"]}
    assert qmc["qmc_type"]["choices"] == ["sobol", "halton"]


def test_catalog_lists_what_a_task_may_name(client: TestClient) -> None:
    response = client.get("/api/v1/catalog")

    assert response.status_code == 200
    catalog = response.json()
    assert catalog["datasets"]["digits"] == {
        "task": "multiclass",
        "kind": "image",
        "input_shape": [1, 8, 8],
        "n_outputs": 10,
        "n_samples": 1797,
        "options": {},
        "plugin": None,  # built in
    }
    assert catalog["datasets"]["waveforms"]["options"]["length"]["default"] == 64
    assert {"relu", "gelu", "tanh"} <= set(catalog["activations"])
    assert catalog["training"]["optimizer"]["choices"] == ["sgd", "rmsprop", "adam", "adamw"]
    assert catalog["training"]["lr"]["default"] == 0.001
    assert catalog["training"]["mc_samples"]["searchable"] is False
    assert {"ways", "shots", "inner_lr", "inner_steps"} <= set(catalog["fewshot"])
    assert catalog["fewshot"]["method"]["choices"] == ["protonet", "maml"]
    assert {"val_accuracy", "val_f1", "val_rmse", "param_count", "mc_ece"} <= set(
        catalog["metrics"]
    )
    assert catalog["metrics"]["val_rmse"]["tasks"] == ["regression"]
    families = catalog["families"]
    assert {"mlp", "cnn", "resnet", "densenet", "inception", "conv1d", "transformer"} <= set(
        families
    )
    assert families["resnet"]["fields"]["block"]["default"] == "residual"
    assert families["cnn"]["data_kinds"] == ["image"]
    assert families["mlp"]["fields"]["width"] == {
        "type": "int",
        "default": 128,
        "doc": "Units per hidden layer.",
        "low": 1,
        "high": 8192,
        "searchable": True,
    }
