"""The paper's ablations as runs: each row changes one thing of the reference DiT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.ablations import NO_CHANGE, DitChange, ablation_rows, claims, dit_change
from pipeline.config import load_config, paper_method
from pipeline.errors import ConfigError
from pipeline.models.dit import DiTConfig
from stores.restorer_store import RestorerStore


def test_the_rows_are_the_papers_tables_around_the_reference() -> None:
    demo = load_config(None)
    rows = ablation_rows(demo.restorer, demo.restore)
    by_table: dict[str, list[str]] = {}
    for row in rows:
        by_table.setdefault(row.table, []).append(row.label)
    assert by_table == {
        "modules": ["base", "+ gating", "adaLN", "concat", "+ mutual", "all"],
        "corpus": ["25 %", "50 %", "100 %"],
        "depth": ["3", "4", "5"],  # the paper's 16 / 20 / 24 around its 20, scaled to the demo's 4
        "steps": ["1", "50", "100", "200", "500"],  # the demo's S = 1, then Table 5's
    }
    references = {row.label for row in rows if row.change == NO_CHANGE}
    assert references == {"all", "100 %", "4", "1"}  # one per table: the benchmark's own DiT
    paper_rows = ablation_rows(*paper_method(demo))
    assert [row.label for row in paper_rows if row.table == "steps"] == ["50", "100", "200", "500"]
    assert {claim.table for claim in claims(rows)} == {"modules", "corpus", "depth", "steps"}


def test_a_change_alters_only_what_it_names() -> None:
    train, _ = paper_method(load_config(None))
    base = DitChange(gating="none", stages=1).training(train)
    assert (base.dit.gating, base.stages) == ("none", 1)
    assert base.model_dump(exclude={"dit", "stages"}) == train.model_dump(exclude={"dit", "stages"})
    assert base.dit.model_dump(exclude={"gating"}) == train.dit.model_dump(exclude={"gating"})
    deeper = DitChange(depth=5).training(train)
    assert deeper.dit.depth == 5 and deeper.diffusion == train.diffusion
    assert NO_CHANGE.training(train) == train


def test_a_corpus_share_trains_on_its_pairs_for_as_many_steps_as_the_whole_corpus(tmp_path: Path) -> None:
    """Table 3 sets corpus sizes side by side: the same steps, so only the data differs."""
    from pipeline.training import restorer

    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(2, 64, 16)).astype(np.float32)
    tiny = DiTConfig(feature_dim=16, n_tokens=4, width=16, depth=1, heads=2)
    whole = restorer.TrainConfig(dit=tiny, stage1_epochs=1, stage2_epochs=1, batch_size=8, warmup_steps=1)
    share = DitChange(corpus_fraction=0.25).training(whole)
    assert share.model_dump(exclude={"corpus_fraction"}) == whole.model_dump(exclude={"corpus_fraction"})
    kept, _ = restorer.training_pairs(images, texts, share)
    assert len(kept) == 16 and all(any(np.array_equal(row, image) for image in images) for row in kept)
    seen: list[torch.Tensor] = []
    base_loss = restorer.base_loss

    def recording(model, scheduler, target, cond, t, noise):  # type: ignore[no-untyped-def]
        seen.append(cond)
        return base_loss(model, scheduler, target, cond, t, noise)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restorer, "base_loss", recording)
        result = restorer.train_restorer(share, images, texts, RestorerStore(str(tmp_path), "a"), progress=False)
    assert result.steps == whole.total_steps(64) == 16  # the whole corpus's steps
    # Every I2T condition (an image feature, in diffusion space) is one of the kept images.
    trained_on = {tuple(row) for row in restorer.to_diffusion_space(torch.from_numpy(kept)).numpy().round(4)}
    i2t_conditions = seen[0::2]
    assert all(tuple(row) in trained_on for cond in i2t_conditions for row in cond.numpy().round(4))


def test_bad_dit_options_are_one_line_naming_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--variant 'gated': choose one of gating, adaln, concat, none$"):
        dit_change("gated", None, None)
    with pytest.raises(ConfigError, match=r"^--stages 3: input should be less than or equal to 2$"):
        dit_change(None, 3, None)
    assert dit_change("adaln", 1, 50) == DitChange(gating="adaln", stages=1, steps=50)
