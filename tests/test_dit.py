"""The conditional DiT: gate initialisation, every variant trains, configs validate."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from pipeline.models.dit import DIT_PRESETS, ConditionalDiT, DiTConfig, flops_per_sample

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
    paper = DiTConfig(**DIT_PRESETS["paper"])
    assert paper.depth == 20
    assert 1.8e9 < flops_per_sample(paper) < 2.4e9
