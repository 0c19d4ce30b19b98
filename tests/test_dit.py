"""The conditional DiT: gate initialisation, every variant trains, configs validate."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.models.dit import DIT_PRESETS, ConditionalDiT, DiTConfig, flops_per_sample, with_feature_dim

SMALL = DiTConfig(feature_dim=32, n_tokens=4, width=32, depth=3, heads=4)


def test_gates_start_at_sigmoid_minus_five_everywhere() -> None:
    model = ConditionalDiT(SMALL)
    x_t, cond, t = torch.randn(6, 32), torch.randn(6, 32), torch.randint(0, 1000, (6,))
    gate_vector = model.gate_vector(x_t, t, cond)
    assert gate_vector.abs().sum() > 0  # G itself depends on the input...
    for block in model.blocks:
        for gate in block.gates(gate_vector):
            # ...but with W = 0 and b = -5 every gate is sigmoid(-5), whatever G is.
            torch.testing.assert_close(gate, torch.full_like(gate, 1 / (1 + math.exp(5))))


@pytest.mark.parametrize("gating", ["gating", "adaln", "concat", "none"])
def test_every_variant_runs_forward_and_backward(gating: str) -> None:
    model = ConditionalDiT(SMALL.model_copy(update={"gating": gating}))
    torch.nn.init.normal_(model.final.weight, std=0.02)  # the zero init would hide gradients upstream
    x_t, cond = torch.randn(5, 32), torch.randn(5, 32, requires_grad=True)
    eps = model(x_t, torch.randint(0, 1000, (5,)), cond)
    assert eps.shape == x_t.shape
    eps.pow(2).mean().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0  # the condition reaches the output
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_output_starts_at_zero_so_training_starts_from_eps_hat_zero() -> None:
    model = ConditionalDiT(SMALL)
    assert model(torch.randn(3, 32), torch.tensor([1, 500, 999]), torch.randn(3, 32)).abs().max() == 0


def test_shapes_that_do_not_divide_are_refused() -> None:
    with pytest.raises(ValidationError, match="not divisible by n_tokens"):
        DiTConfig(feature_dim=100, n_tokens=16)
    with pytest.raises(ValidationError, match="not divisible by heads"):
        DiTConfig(width=100, heads=7)


def test_paper_preset_costs_about_two_gflops_per_sample_step() -> None:
    paper = with_feature_dim(DiTConfig(**DIT_PRESETS["paper"]), 512)
    assert paper.depth == 20
    assert 1.8e9 < flops_per_sample(paper) < 2.4e9


@pytest.mark.parametrize("preset", sorted(DIT_PRESETS))
def test_one_preset_builds_a_dit_for_128_512_and_768_dimensional_features(preset: str) -> None:
    """A preset holds sizes only: the feature width is the encoder's, set at training time."""
    for width in (128, 512, 768):
        config = with_feature_dim(DiTConfig(**DIT_PRESETS[preset]), width)
        model = ConditionalDiT(config.model_copy(update={"depth": 1}))  # one block: the shapes are the test
        x_t, cond = torch.randn(2, width), torch.randn(2, width)
        assert model(x_t, torch.tensor([0, 999]), cond).shape == (2, width)
        assert config.patch_dim * config.n_tokens == width


def test_a_width_the_tokens_do_not_divide_is_one_error_line_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"width 100 is not divisible by the DiT's n_tokens 16: set restorer"):
        with_feature_dim(DiTConfig(**DIT_PRESETS["paper"]), 100)
    with pytest.raises(ConfigError, match=r"drop restorer\.dit\.feature_dim"):
        with_feature_dim(DiTConfig(feature_dim=512), 768)
    with pytest.raises(ValueError, match="feature_dim is not set"):
        ConditionalDiT(DiTConfig(**DIT_PRESETS["demo"]))
