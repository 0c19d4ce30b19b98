"""Retrieval: the nearest corpus rows, and the DiT that reads its retrieved partners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.diffusion.core import DiffusionConfig, from_diffusion_space, sample, to_diffusion_space
from pipeline.errors import ConfigError
from pipeline.models.dit import ConditionalDiT, DiTConfig
from pipeline.restoration import RestoreSettings, build_restorer
from pipeline.restorers import DiffusionRestorer
from pipeline.retrieval import nearest_rows, with_retrieved
from pipeline.training.restorer import TrainConfig, train_restorer
from stores.restorer_store import RestorerStore

RETRIEVING = DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=2, heads=2, retrieved=3)


def _unit(n: int, seed: int, dim: int = 16) -> np.ndarray:
    raw = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_nearest_rows_in_chunks_are_the_brute_force_ranking() -> None:
    queries, keys = torch.from_numpy(_unit(10, 0)), torch.from_numpy(_unit(40, 1))
    expected = np.argsort(-(queries @ keys.T).numpy(), axis=1)[:, :5]
    assert (nearest_rows(queries, keys, 5, chunk=3).numpy() == expected).all()


def test_a_corpus_row_never_retrieves_itself_and_otherwise_its_nearest() -> None:
    keys = torch.from_numpy(_unit(30, 2))
    similarity = (keys @ keys.T).numpy()
    np.fill_diagonal(similarity, -np.inf)
    nearest = nearest_rows(keys, keys, 4, leave_out_self=True, chunk=7).numpy()
    assert not (nearest == np.arange(30)[:, None]).any()
    assert (nearest == np.argsort(-similarity, axis=1)[:, :4]).all()
    # Without leaving itself out, every row's nearest key is itself: what training must not see.
    assert (nearest_rows(keys, keys, 1).numpy()[:, 0] == np.arange(30)).all()


def test_the_dit_reads_its_retrieved_partners_and_refuses_a_condition_without_them() -> None:
    for gating in ("gating", "concat"):
        torch.manual_seed(0)
        model = ConditionalDiT(RETRIEVING.model_copy(update={"gating": gating})).eval()
        torch.nn.init.normal_(model.final.weight, std=0.1)  # the zero init hides what the input does
        x_t, t, own = torch.randn(4, 16), torch.tensor([0, 300, 600, 999]), torch.randn(4, 16)
        partners = torch.randn(4, 3 * 16)
        out = model(x_t, t, torch.cat([own, partners], 1))
        other = model(x_t, t, torch.cat([own, partners.roll(1, dims=0)], 1))
        assert not torch.allclose(out, other), gating
    with pytest.raises(ValueError, match=r"condition of width 16, expected 64 .*retrieved 3"):
        ConditionalDiT(RETRIEVING)(x_t, t, own)


def test_restoring_retrieves_partners_of_the_missing_modality_by_the_available_one() -> None:
    corpus_image, corpus_text = _unit(50, 3), _unit(50, 4)
    torch.manual_seed(0)
    models = {"i2t": ConditionalDiT(RETRIEVING), "t2i": ConditionalDiT(RETRIEVING)}
    for model in models.values():
        torch.nn.init.normal_(model.final.weight, std=0.1)
        model.eval()
    diffusion = DiffusionConfig(prediction="v_prediction")
    restorer = DiffusionRestorer(
        models, diffusion, steps=1, temperature=0.0, corpus=(corpus_image, corpus_text), retrieved=3
    )
    available = _unit(6, 5)
    cond = to_diffusion_space(torch.from_numpy(available))
    for direction, keys, partners in (("i2t", corpus_image, corpus_text), ("t2i", corpus_text, corpus_image)):
        nearest = torch.from_numpy(np.argsort(-(available @ keys.T), axis=1)[:, :3])
        by_hand = with_retrieved(cond, to_diffusion_space(torch.from_numpy(partners)), nearest)
        seeds = [(0, row, 0) for row in range(6)]
        expected = sample(models[direction], by_hand, seeds, diffusion, 1, "ddim", None, 0.0, feature_dim=16)
        np.testing.assert_allclose(
            restorer.restore(available, direction, range(6)),
            from_diffusion_space(expected).numpy(),
            atol=1e-6,
        )
    with pytest.raises(ValueError, match="pass corpus"):
        DiffusionRestorer(models, diffusion, steps=1, temperature=0.0, retrieved=3)


def test_a_trained_retrieving_dit_restores_from_its_corpus_and_says_so_without_it(tmp_path: Path) -> None:
    images, texts = _unit(300, 6), _unit(300, 7)
    config = TrainConfig(
        dit=RETRIEVING, diffusion=DiffusionConfig(prediction="v_prediction"), stage1_epochs=2, stage2_epochs=1,
        batch_size=64, lr=1e-3, warmup_steps=2, tau=1000,  # tau 1000: every step's mutual term is used
    )  # fmt: skip
    store = RestorerStore(str(tmp_path), "dit-retrieving")
    result = train_restorer(config, images, texts, store, progress=False)
    assert result.steps == 12 and all(np.isfinite(list(result.final_losses.values())))
    assert result.final_losses["loss_mutual"] > 0
    features = {"image_emb": images[:8], "text_emb": texts[:8]}
    features |= {"image_present": np.ones(8, bool), "text_present": np.ones(8, bool)}
    settings = RestoreSettings(steps=1, temperature=0.0)
    splits = np.array(["train"] * 8)
    restored = build_restorer("dit", settings, features, splits, (images, texts), store).restore(
        images[:8], "i2t", range(8)
    )
    assert restored.shape == (8, 16) and np.isfinite(restored).all()
    with pytest.raises(ConfigError, match="retrieves from its mid-stage corpus: pass --corpus"):
        build_restorer("dit", settings, features, splits, None, store)
