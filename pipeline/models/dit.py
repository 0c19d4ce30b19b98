"""The conditional diffusion transformer with Dynamic Modality Gating (Dai et al., section 3.2).

eps_theta(x_t, t | c): x_t is the noisy target feature (D dims, unit per-dimension variance),
c the available modality's feature; the output is the noise eps, or the velocity v when the
diffusion config says `v_prediction` (the model is the same either way). Both are cut into
`n_tokens` feature patches of D / n_tokens dims and projected to `width`. The gating variant
is one switch:

- `gating` (ours): C = cond_emb + MLP_time(t_emb); learned probe queries pool C by attention
  (eq. 2), MLP_gate maps the pooled vector to G (eq. 3), and each block turns G into sigmoid
  gates on its self-attention and MLP branches (eqs. 4-6; gate biases start at -5).
- `adaln`: DiT's adaLN-Zero modulation from the pooled condition + time, instead of gates.
- `concat`: condition patches concatenated to the input patches, an MLP to width, plain blocks.
- `none`: plain residual blocks (still cross-attending to C).

Retrieval-augmented condition (`retrieved` = k > 0; ours, not the paper's): c is followed by the
missing-modality features of the k corpus pairs whose available feature is nearest c, and
each becomes one more condition token (Blattmann et al. 2022 condition a diffusion model on
retrieved CLIP neighbours the same way). A habit of the corpus (a kind of object's usual
colour) is a lookup the DiT learns slowly from gradients; read off retrieved partners, it is
an attention pattern (BENCHMARKS.md, "A retrieval-augmented DiT").
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from pipeline.errors import ConfigError

Gating = Literal["gating", "adaln", "concat", "none"]


class DiTConfig(BaseModel):
    """Architecture of one direction's denoiser. Named presets live in `DIT_PRESETS`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # D, the encoder's feature width: None in presets and configs, set from the feature store when
    # a restorer is trained (`with_feature_dim`), so one preset serves a 128-, 512- or 768-d encoder.
    feature_dim: int | None = Field(None, ge=2)
    n_tokens: int = Field(16, ge=1)
    width: int = Field(448, ge=8)
    depth: int = Field(20, ge=1)
    heads: int = Field(7, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    n_probes: int = Field(4, ge=1)
    gating: Gating = "gating"
    gate_bias_init: float = -5.0
    retrieved: int = Field(0, ge=0)  # retrieved corpus partners as condition tokens; 0 = the paper's

    @model_validator(mode="after")
    def _shapes_divide(self) -> DiTConfig:
        if self.feature_dim is not None and self.feature_dim % self.n_tokens:
            raise ValueError(f"feature_dim {self.feature_dim} is not divisible by n_tokens {self.n_tokens}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        return self

    @property
    def dim(self) -> int:
        """D, which a model needs: set by `with_feature_dim` before one is built."""
        if self.feature_dim is None:
            raise ValueError("the DiT's feature_dim is not set: train it on stored features (with_feature_dim)")
        return self.feature_dim

    @property
    def patch_dim(self) -> int:
        return self.dim // self.n_tokens

    @property
    def condition_dim(self) -> int:
        """Width of c: the available feature and its retrieved partners, one after the other."""
        return self.dim * (1 + self.retrieved)


def with_feature_dim(config: DiTConfig, feature_dim: int) -> DiTConfig:
    """`config` for features of width `feature_dim`; one error line when its tokens do not divide it."""
    if config.feature_dim not in (None, feature_dim):
        raise ConfigError(
            f"the DiT config fixes feature_dim {config.feature_dim}, the features are {feature_dim}-d: "
            "drop restorer.dit.feature_dim from the config (it follows the encoder)"
        )
    if feature_dim % config.n_tokens:
        divisors = [n for n in range(1, min(feature_dim, 64) + 1) if feature_dim % n == 0]
        raise ConfigError(
            f"the encoder's feature width {feature_dim} is not divisible by the DiT's n_tokens {config.n_tokens}: "
            f"set restorer.dit.n_tokens in the config to one of {', '.join(map(str, divisors[-6:]))}"
        )
    return config.model_copy(update={"feature_dim": feature_dim})


# Sizes only: D comes from the encoder. `paper`: depth 20 as in the paper; width/heads/tokens
# chosen for ~2 GFLOPs per sample per sampling step at D = 512 (the paper's cost; docs/design.md).
# `demo`: CPU-sized.
DIT_PRESETS: dict[str, dict[str, object]] = {
    "paper": {"n_tokens": 16, "width": 448, "depth": 20, "heads": 7},
    "demo": {"n_tokens": 8, "width": 128, "depth": 4, "heads": 4},
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DiT / ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, width: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_dim))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Attention(nn.Module):
    """Multi-head attention of queries `x` over keys/values `context` (self-attention if None)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch, n_q, width = x.shape
        q = self.q(x).view(batch, n_q, self.heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(batch, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_q, width))


class GatePooling(nn.Module):
    """G = MLP_gate(softmax(Q_probe (W_K C)^T / sqrt(d_k)) (W_V C)): eqs. 2 and 3."""

    def __init__(self, width: int, n_probes: int) -> None:
        super().__init__()
        self.probes = nn.Parameter(torch.randn(n_probes, width) * 0.02)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.mlp_gate = nn.Sequential(nn.Linear(n_probes * width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        keys, values = self.key(condition), self.value(condition)
        scores = self.probes @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1])  # (B, P, n_cond)
        pooled = scores.softmax(dim=-1) @ values  # (B, P, width)
        return self.mlp_gate(pooled.flatten(1))


class DiTBlock(nn.Module):
    """Self-attention, cross-attention to the condition tokens, MLP; how residuals are scaled
    depends on the variant (gates, adaLN-Zero, or plain)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        width = config.width
        self.variant = config.gating
        self.norm_attn = nn.LayerNorm(width, elementwise_affine=self.variant != "adaln", eps=1e-6)
        self.attn = Attention(width, config.heads)
        self.cross = config.gating != "concat"
        if self.cross:
            self.norm_cross = nn.LayerNorm(width, eps=1e-6)
            self.cross_attn = Attention(width, config.heads)
        self.norm_mlp = nn.LayerNorm(width, elementwise_affine=self.variant != "adaln", eps=1e-6)
        self.mlp = Mlp(width, int(width * config.mlp_ratio))
        if self.variant == "gating":
            self.gate_attn = nn.Linear(width, width)  # Z_attn = sigmoid(W_attn G + b_attn)
            self.gate_mlp = nn.Linear(width, width)  # Z_mlp = sigmoid(W_mlp G + b_mlp)
        elif self.variant == "adaln":
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def gates(self, gate_vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z_attn, Z_mlp), each (B, 1, width): channel-wise, shared by all tokens."""
        z_attn = torch.sigmoid(self.gate_attn(gate_vector))
        z_mlp = torch.sigmoid(self.gate_mlp(gate_vector))
        return z_attn[:, None], z_mlp[:, None]

    def forward(
        self, x: torch.Tensor, condition: torch.Tensor | None, control: torch.Tensor | None
    ) -> torch.Tensor:
        if self.variant == "adaln":
            shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(control)[:, None].chunk(6, dim=-1)
            x = x + gate1 * self.attn(self.norm_attn(x) * (1 + scale1) + shift1)
            x = x + self.cross_attn(self.norm_cross(x), condition)
            return x + gate2 * self.mlp(self.norm_mlp(x) * (1 + scale2) + shift2)
        if self.variant == "gating":
            z_attn, z_mlp = self.gates(control)
            x = x + z_attn * self.attn(self.norm_attn(x))  # eq. 5
            x = x + self.cross_attn(self.norm_cross(x), condition)
            return x + z_mlp * self.mlp(self.norm_mlp(x))  # eq. 6
        x = x + self.attn(self.norm_attn(x))
        if self.cross:
            x = x + self.cross_attn(self.norm_cross(x), condition)
        return x + self.mlp(self.norm_mlp(x))


class ConditionalDiT(nn.Module):
    """eps_theta(x_t, t | c) (or v_theta) over feature-patch tokens."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        width, n_tokens, patch = config.width, config.n_tokens, config.patch_dim
        in_dim = (2 + config.retrieved) * patch if config.gating == "concat" else patch
        if config.gating == "concat":
            self.embed_x = nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width))
        else:
            self.embed_x = nn.Linear(in_dim, width)
            self.embed_cond = nn.Linear(patch, width)
            self.pos_cond = nn.Parameter(torch.zeros(1, n_tokens, width))
            self.mlp_time = nn.Sequential(nn.SiLU(), nn.Linear(width, width))
            if config.retrieved:
                self.embed_retrieved = nn.Linear(config.dim, width)  # a whole feature per token
                self.pos_retrieved = nn.Parameter(torch.zeros(1, config.retrieved, width))  # by rank
        self.pos_x = nn.Parameter(torch.zeros(1, n_tokens, width))
        self.time = TimestepEmbedder(width)
        if config.gating == "gating":
            self.gate_pooling = GatePooling(width, config.n_probes)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(width, eps=1e-6)
        self.final = nn.Linear(width, patch)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def basic(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        nn.init.normal_(self.pos_x, std=0.02)
        if hasattr(self, "pos_cond"):
            nn.init.normal_(self.pos_cond, std=0.02)
        if hasattr(self, "pos_retrieved"):
            nn.init.normal_(self.pos_retrieved, std=0.02)
        for layer in (self.time.mlp[0], self.time.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            if self.config.gating == "gating":
                # Gates start almost closed, sigmoid(-5) = 0.0067 (paper 4.2: numerical stability).
                for gate in (block.gate_attn, block.gate_mlp):
                    nn.init.zeros_(gate.weight)
                    nn.init.constant_(gate.bias, self.config.gate_bias_init)
            elif self.config.gating == "adaln":
                nn.init.zeros_(block.modulation[-1].weight)  # adaLN-Zero: blocks start as identity
                nn.init.zeros_(block.modulation[-1].bias)
        nn.init.zeros_(self.final.weight)  # start by predicting 0 (eps or v)
        nn.init.zeros_(self.final.bias)

    def _tokens(self, features: torch.Tensor) -> torch.Tensor:
        return features.view(features.shape[0], self.config.n_tokens, self.config.patch_dim)

    def _condition_patches(self, cond: torch.Tensor) -> torch.Tensor:
        """`concat`'s condition: patch j of the available feature and of every retrieved partner."""
        config = self.config
        patches = cond.view(cond.shape[0], 1 + config.retrieved, config.n_tokens, config.patch_dim)
        return patches.transpose(1, 2).flatten(2)

    def condition_tokens(self, cond: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        """C = cond_emb + MLP_time(t_emb), one vector per condition token: the available feature's
        patches, then one token per retrieved partner feature."""
        if cond.shape[-1] != self.config.condition_dim:
            raise ValueError(
                f"condition of width {cond.shape[-1]}, expected {self.config.condition_dim} "
                f"(feature_dim {self.config.dim} x (1 + retrieved {self.config.retrieved}))"
            )
        own, retrieved = cond.split([self.config.dim, cond.shape[-1] - self.config.dim], dim=-1)
        tokens = self.embed_cond(self._tokens(own)) + self.pos_cond
        if self.config.retrieved:
            partners = retrieved.reshape(cond.shape[0], self.config.retrieved, self.config.dim)
            tokens = torch.cat([tokens, self.embed_retrieved(partners) + self.pos_retrieved], dim=1)
        return tokens + self.mlp_time(t_emb)[:, None]

    def gate_vector(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """G for a batch (the `gating` variant): what the per-block gates are computed from."""
        return self.gate_pooling(self.condition_tokens(cond, self.time(t)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t_emb = self.time(t)
        condition = control = None
        if self.config.gating == "concat":
            x = (
                self.embed_x(torch.cat([self._tokens(x_t), self._condition_patches(cond)], dim=-1))
                + self.pos_x
            )
            x = x + t_emb[:, None]
        else:
            x = self.embed_x(self._tokens(x_t)) + self.pos_x
            condition = self.condition_tokens(cond, t_emb)
            if self.config.gating == "gating":
                control = self.gate_pooling(condition)
            elif self.config.gating == "adaln":
                control = condition.mean(dim=1) + t_emb
        for block in self.blocks:
            x = block(x, condition, control)
        return self.final(self.final_norm(x)).reshape(x_t.shape)


def flops_per_sample(config: DiTConfig) -> int:
    """Multiply-adds x 2 of one forward pass for one sample (linear layers and attention)."""
    n, d, hidden = config.n_tokens, config.width, int(config.width * config.mlp_ratio)
    n_cond = n + config.retrieved
    per_block = n * (4 * d * d) + 2 * n * n * d + n * 2 * d * hidden  # self-attention, MLP
    if config.gating != "concat":
        per_block += n * 2 * d * d + n_cond * 2 * d * d + 2 * n * n_cond * d  # cross-attn q/proj, k/v, scores
    if config.gating in ("gating", "adaln"):
        per_block += 2 * d * d if config.gating == "gating" else 6 * d * d
    patch = config.patch_dim
    # concat: the input MLP over [x; c; retrieved] patches; others: x and condition patches, MLP_time,
    # and the retrieved features.
    if config.gating == "concat":
        embed = n * ((2 + config.retrieved) * patch * d + d * d)
    else:
        embed = 2 * n * patch * d + n * d * d + config.retrieved * config.dim * d
    return 2 * (config.depth * per_block + embed + n * d * patch)  # + final projection
