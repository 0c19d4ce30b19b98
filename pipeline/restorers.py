"""Restorers: every way of filling a missing modality, behind one interface.

`restore(available, direction, rows)` takes L2-normalised features of the available modality
(N x D) and the samples' store rows, and returns features for the missing one in CLIP scale.
Rows make restorations reproducible: the DiT seeds each sample's noise from (seed, row).
Direction `i2t` restores text from image, `t2i` image from text. Statistics-based restorers are fitted on the mid-stage
corpus (`knn`, `regression`, like the DiT) or on the downstream train split (`mean`,
`swap_gap`: see docs/design.md); `oracle` is handed the true features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from pipeline.diffusion.core import DiffusionConfig, Sampler, from_diffusion_space, sample, to_diffusion_space
from pipeline.retrieval import nearest_rows, with_retrieved

Direction = Literal["i2t", "t2i"]
DIRECTIONS: tuple[Direction, ...] = ("i2t", "t2i")
# The two diffusion restorers: `dit-paper`, the paper's method as written, and `dit`, this
# project's variant of it (each config says how each is trained and sampled: `pipeline.config`).
DIT_RESTORERS = ("dit-paper", "dit")
RESTORER_NAMES = (*DIT_RESTORERS, "zero", "mean", "swap", "swap_gap", "knn", "regression", "oracle")


def missing_and_available(direction: Direction) -> tuple[str, str]:
    """(missing modality, available modality) of a direction."""
    return ("text", "image") if direction == "i2t" else ("image", "text")


class Restorer(Protocol):
    name: str

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray: ...


class ZeroRestorer:
    name = "zero"

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        return np.zeros_like(available)


class MeanRestorer:
    """The mean feature of the missing modality."""

    name = "mean"

    def __init__(self, mean_image: np.ndarray, mean_text: np.ndarray) -> None:
        self.means = {"image": mean_image, "text": mean_text}

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        missing, _ = missing_and_available(direction)
        return np.broadcast_to(self.means[missing], available.shape).astype(np.float32)


class SwapRestorer:
    """The available feature itself (CLIP's spaces are aligned), optionally shifted across the
    modality gap mu_missing - mu_available."""

    def __init__(self, mean_image: np.ndarray | None = None, mean_text: np.ndarray | None = None) -> None:
        self.gap = (
            None if mean_image is None else {"i2t": mean_text - mean_image, "t2i": mean_image - mean_text}
        )
        self.name = "swap" if self.gap is None else "swap_gap"

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        if self.gap is None:
            return available.astype(np.float32, copy=True)
        return (available + self.gap[direction]).astype(np.float32)


class KnnRestorer:
    """Retrieval (RAGPT-style): the mean partner feature of the k nearest corpus neighbours."""

    name = "knn"

    def __init__(
        self, corpus_image: np.ndarray, corpus_text: np.ndarray, k: int = 10, chunk: int = 4096
    ) -> None:
        self.features = {"image": torch.from_numpy(corpus_image), "text": torch.from_numpy(corpus_text)}
        self.k, self.chunk = k, chunk

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        missing, present = missing_and_available(direction)
        nearest = nearest_rows(torch.from_numpy(available), self.features[present], self.k, chunk=self.chunk)
        return (
            self.features[missing][nearest].mean(dim=1).numpy() if len(nearest) else np.zeros_like(available)
        )


class RegressionRestorer:
    """An MLP per direction, fitted on corpus pairs with an MSE loss (a deterministic mapping)."""

    name = "regression"

    def __init__(self, models: dict[str, nn.Module]) -> None:
        self.models = models

    @staticmethod
    def fit(
        corpus_image: np.ndarray, corpus_text: np.ndarray, epochs: int = 30, hidden: int = 512, seed: int = 0
    ) -> RegressionRestorer:
        dim = corpus_image.shape[1]
        pairs = {"i2t": (corpus_image, corpus_text), "t2i": (corpus_text, corpus_image)}
        models = {}
        # Initialised from its own generator, not torch's global one: restore tasks run in
        # threads side by side, and a DiT restore reseeds the global RNG when it builds its models.
        initial = torch.Generator().manual_seed(seed)
        for direction, (source, target) in pairs.items():
            model = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, dim))  # fmt: skip
            for layer in model:
                if isinstance(layer, nn.Linear):  # torch's default init of nn.Linear, drawn from `initial`
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=initial)
                    bound = 1 / math.sqrt(layer.in_features)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=initial)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
            x, y = torch.from_numpy(source), torch.from_numpy(target)
            generator = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                for batch in torch.randperm(len(x), generator=generator).split(256):
                    loss = nn.functional.mse_loss(model(x[batch]), y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            models[direction] = model.eval().requires_grad_(False)
        return RegressionRestorer(models)

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        with torch.no_grad():
            return self.models[direction](torch.from_numpy(available)).numpy()


class RecentredRestorer:
    """A corpus-trained restorer plus a constant shift per missing modality: swap_gap's
    correction (`pipeline.restoration.recentring_shift`), fitted on the downstream train
    features that `mean` and `swap_gap` are fitted on, so that every restorer sees the same
    downstream data."""

    def __init__(self, inner: Restorer, shift_image: np.ndarray, shift_text: np.ndarray) -> None:
        self.inner, self.name = inner, inner.name
        self.shifts = {"image": shift_image.astype(np.float32), "text": shift_text.astype(np.float32)}

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        missing, _ = missing_and_available(direction)
        return self.inner.restore(available, direction, rows) + self.shifts[missing]


class OracleRestorer:
    """The true missing feature: the complete-data upper bound."""

    name = "oracle"

    def __init__(self, true_image: np.ndarray, true_text: np.ndarray) -> None:
        self.true = {"image": true_image, "text": true_text}

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        missing, _ = missing_and_available(direction)
        return self.true[missing][np.asarray(rows, dtype=np.int64)].astype(np.float32)


class DiffusionRestorer:
    """The trained conditional DiTs, sampled with S deterministic steps, batched.

    `clip_x0` (by direction): DDIM clips its x0 estimate to +- that, in diffusion space; pass
    the trained restorer's `x0_range`, within which every training target lies, or None.

    A retrieval-augmented DiT (trained with `retrieved` = k > 0) is handed k and the corpus it
    was trained on: each condition is followed by the partner features of its k nearest pairs.
    With k = 0 a corpus is not needed, and one passed is not kept.
    """

    name = "dit"

    def __init__(
        self,
        models: dict[str, nn.Module],
        diffusion: DiffusionConfig,
        steps: int = 50,
        sampler: Sampler = "ddim",
        batch_size: int = 1024,
        device: torch.device | str = "cpu",
        seed: int = 0,
        clip_x0: dict[str, float] | None = None,
        n_samples: int = 1,
        temperature: float = 1.0,
        corpus: tuple[np.ndarray, np.ndarray] | None = None,
        retrieved: int = 0,
    ) -> None:
        if retrieved and corpus is None:
            raise ValueError("a retrieval-augmented DiT restores with its corpus: pass corpus")
        self.models, self.diffusion, self.seed, self.clip_x0 = models, diffusion, seed, clip_x0
        self.n_samples, self.temperature = n_samples, temperature
        self.steps, self.sampler, self.batch_size = steps, sampler, batch_size
        self.device, self.retrieved = torch.device(device), retrieved
        self.corpus = (
            None
            if not retrieved or corpus is None
            else {
                modality: to_diffusion_space(torch.from_numpy(np.ascontiguousarray(features, np.float32)))
                for modality, features in zip(("image", "text"), corpus, strict=True)
            }
        )

    def condition(self, available: np.ndarray, direction: Direction) -> torch.Tensor:
        """The model's condition for a batch: the available features in diffusion space, and the
        retrieved corpus partners if the model reads them."""
        cond = to_diffusion_space(torch.from_numpy(available))
        if self.corpus is not None:  # set exactly when the model retrieves
            missing, present = missing_and_available(direction)
            nearest = nearest_rows(cond, self.corpus[present], self.retrieved)
            cond = with_retrieved(cond, self.corpus[missing], nearest)
        return cond.to(self.device)

    def restore(self, available: np.ndarray, direction: Direction, rows: Sequence[int]) -> np.ndarray:
        model = self.models[direction]
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        out = []
        for start in range(0, available.shape[0], self.batch_size):
            cond = self.condition(available[start : start + self.batch_size], direction)
            batch_rows = rows[start : start + len(cond)]
            draws = []
            for draw in range(self.n_samples):
                seeds = [(self.seed, int(row), draw) for row in batch_rows]
                with torch.inference_mode(), autocast:
                    draws.append(
                        sample(
                            model,
                            cond,
                            seeds,
                            self.diffusion,
                            self.steps,
                            self.sampler,
                            self.clip_x0[direction] if self.clip_x0 else None,
                            self.temperature,
                            available.shape[1],
                        )
                    )
            # n_samples > 1 averages independent DDIM draws: a Monte-Carlo posterior mean.
            out.append(from_diffusion_space(torch.stack(draws).float().mean(dim=0)).cpu())
        return torch.cat(out).numpy() if out else np.zeros_like(available)


def mean_cosine(restored: np.ndarray, true: np.ndarray) -> float:
    """Mean cosine similarity of restored and true features (rows)."""
    numerator = (restored * true).sum(axis=1)
    denominator = np.linalg.norm(restored, axis=1) * np.linalg.norm(true, axis=1)
    return float(np.mean(numerator / np.maximum(denominator, 1e-12)))
