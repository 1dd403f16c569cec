"""The macro family's graph stages: on graph data each stage is a message-passing layer type
with its own width, depth, activation, norm and shortcut; a macro architecture search over
graphs searches the layer type per stage."""

import math
from typing import Any

import pytest
import torch

from models.data import dataset_info, load_dataset
from models.families import build_model, check_model, model_genotype
from models.families.macro_graph import GRAPH_BLOCKS, GraphMacroNet
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train

SMALL = {"n_samples": 60}


def macro(blocks: list[str], **fields: Any) -> dict[str, Any]:
    n = len(blocks)
    return {
        "family": "macro",
        "blocks": blocks,
        "widths": fields.pop("widths", [16] * n),
        "depths": fields.pop("depths", [1] * n),
        "activations": fields.pop("activations", ["relu"] * n),
        "norms": fields.pop("norms", ["batch"] * n),
        "skips": fields.pop("skips", [True] * n),
        **fields,
    }


@pytest.mark.parametrize("block", GRAPH_BLOCKS)
def test_every_graph_stage_builds_and_trains(block: str) -> None:
    model = macro([block, "gin"], widths=[16, 32], depths=[2, 1], norms=["layer", "batch"])
    info = dataset_info("motifs", SMALL)
    assert check_model(model, info) == []
    net = build_model(model, info.input_shape, info.n_outputs)
    assert isinstance(net, GraphMacroNet) and len(net.stages) == 2
    assert len(net.stages[0].convs) == 2
    x = torch.tensor(load_dataset("motifs", options=SMALL).x_train[:4])
    net(x).square().mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
    *_, result = train(model, TrainConfig(epochs=1), load_dataset("motifs", options=SMALL), 0)
    assert isinstance(result, TrainResult) and math.isfinite(result.metrics["val_loss"])
    assert model_genotype(model) == f"{block}:16:2:relu:layer:skip|gin:32:1:relu:batch:skip"


def test_graph_stages_only_on_graphs() -> None:
    graphs, images = dataset_info("motifs", SMALL), dataset_info("digits")
    assert check_model(macro(["plain", "residual"]), graphs) == [
        ("blocks", "stage 0: plain is no graph layer; graph stages take gcn, sage, gat, gin")
    ]
    assert check_model(macro(["gcn", "plain"]), graphs)[0] == (
        "blocks",
        "stage 1: plain is no graph layer; graph stages take gcn, sage, gat, gin",
    )
    assert check_model(macro(["plain", "gat"]), images) == [
        ("blocks", "stage 1: gat is a graph layer; this dataset is image")
    ]
    assert check_model(macro(["gat"], widths=[10], heads=4), graphs) == [
        ("heads", "4 heads do not divide stage 0's width 10")
    ]
    assert check_model(macro(["gcn"], widths=[10], heads=4), graphs) == []


def test_a_node_task_reads_its_node() -> None:
    data = load_dataset("karate")
    model = macro(["sage", "gcn"], norms=["none", "none"])
    *_, result = train(model, TrainConfig(epochs=3, lr=0.01, batch_size=8), data, 0)
    assert isinstance(result, TrainResult) and math.isfinite(result.metrics["val_loss"])
