"""The macro architecture family: every block type on every data kind, the per-stage checks,
and its compact genotype."""

import pytest
import torch

from models.families.macro import MACRO_BLOCKS, MacroConfig, MacroNet, genotype, macro_errors
from models.families.macro_graph import GRAPH_BLOCKS
from models.fields import check


def config(**fields: object) -> MacroConfig:
    cfg, errors = check(MacroConfig, fields)
    assert cfg is not None, errors
    return cfg


@pytest.mark.parametrize("block", MACRO_BLOCKS)
@pytest.mark.parametrize(
    "input_shape", [(1, 8, 8), (3, 16), (30,)], ids=["image", "sequence", "tabular"]
)
def test_every_block_builds_on_every_data_kind(block: str, input_shape: tuple[int, ...]) -> None:
    cfg = config(
        blocks=[block, block],
        widths=[8, 16],
        depths=[2, 1],
        activations=["relu", "gelu"],
        norms=["batch", "layer"],
        skips=[True, False],
        heads=4,
    )
    assert macro_errors(cfg, input_shape) == []
    net = MacroNet(cfg, input_shape, 5)
    out = net(torch.randn(4, *input_shape))
    assert out.shape == (4, 5)
    out.sum().backward()  # type: ignore[no-untyped-call]
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_skip_adds_a_projected_shortcut_only_when_asked() -> None:
    def count(skips: list[bool]) -> int:
        cfg = config(
            blocks=["plain", "plain"],
            widths=[8, 16],
            depths=[1, 1],
            activations=["relu", "relu"],
            norms=["none", "none"],
            skips=skips,
        )
        return sum(p.numel() for p in MacroNet(cfg, (1, 8, 8), 3).parameters())

    # Stage 0 maps 1 → 8 channels and stage 1 8 → 16: each shortcut is a 1x1 conv.
    assert count([True, True]) - count([False, False]) == (1 * 8 + 8) + (8 * 16 + 16)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"blocks": ["plain"], "widths": [8, 16]}, "blocks", "one element per stage"),
        ({"kernel_size": 4}, "kernel_size", "must be odd"),
        (
            {"blocks": ["attention", "plain"], "widths": [10, 16], "heads": 4},
            "heads",
            "do not divide stage 0's width 10",
        ),
    ],
)
def test_inconsistent_stages_are_named(fields: dict[str, object], field: str, words: str) -> None:
    errors = macro_errors(config(**fields), (1, 8, 8))
    assert errors and errors[0][0] == field and words in errors[0][1], errors


def test_choices_are_checked_per_element() -> None:
    cfg, errors = check(MacroConfig, {"blocks": ["plain", "lstm"]})
    assert cfg is None
    valid = ", ".join(MACRO_BLOCKS + GRAPH_BLOCKS)  # graph stages: tests/models/test_gnn_macro.py
    assert errors == [("blocks", f"unknown value 'lstm'; valid: {valid}")]


def test_genotype_names_every_stage_choice() -> None:
    cfg = config(
        blocks=["residual", "attention"],
        widths=[64, 64],
        depths=[2, 1],
        activations=["relu", "gelu"],
        norms=["batch", "layer"],
        skips=[True, False],
    )
    assert genotype(cfg) == "residual:64:2:relu:batch:skip|attention:64:1:gelu:layer:-"
