"""The light downstream decoder (paper 4.2): two self-attention layers, one cross-attention
layer and a classifier over the tokens [z_img; z_txt].

Each feature becomes one token (a linear projection to `width`) plus a learned modality
embedding, plus a learned "restored" embedding when the restorer filled it in, so the decoder
can weigh restored features differently from observed ones. After the self-attention layers a
learned query cross-attends to both tokens, and a linear head reads it out.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DecoderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(256, ge=8)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class RestorationDecoder(nn.Module):
    def __init__(self, feature_dim: int, n_classes: int, config: DecoderConfig) -> None:
        super().__init__()
        width = config.width
        self.project = nn.Linear(feature_dim, width)
        self.modality = nn.Parameter(torch.zeros(2, width))  # image, text
        self.restored = nn.Parameter(torch.zeros(width))
        self.self_attention = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, config.heads, 4 * width, config.dropout, batch_first=True, norm_first=True
            )
            for _ in range(2)
        )
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        self.cross_norm = nn.LayerNorm(width)
        self.cross_attention = nn.MultiheadAttention(
            width, config.heads, dropout=config.dropout, batch_first=True
        )
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_classes))
        for parameter in (self.modality, self.restored, self.query):
            nn.init.normal_(parameter, std=0.02)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        image_restored: torch.Tensor,
        text_restored: torch.Tensor,
    ) -> torch.Tensor:
        tokens = self.project(torch.stack([image, text], dim=1)) + self.modality
        restored = torch.stack([image_restored, text_restored], dim=1).float()[..., None]
        tokens = tokens + restored * self.restored
        for layer in self.self_attention:
            tokens = layer(tokens)
        memory = self.cross_norm(tokens)
        pooled, _ = self.cross_attention(self.query.expand(len(tokens), -1, -1), memory, memory)
        return self.head(pooled[:, 0])
