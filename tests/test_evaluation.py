"""The decoder learns from [image; text] tokens and model selection uses the val split."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline.evaluation import DecoderTraining, decoder_pool, train_and_score
from pipeline.models.decoder import DecoderConfig, RestorationDecoder

FAST = DecoderTraining(decoder=DecoderConfig(width=32, heads=2, dropout=0.0), epochs=6, batch_size=32)


def _synthetic(
    n: int, dim: int = 16, n_classes: int = 4, seed: int = 0
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Class k puts a bump on dimension k of the text feature; the image feature is noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    text = rng.normal(0, 0.3, (n, dim)).astype(np.float32)
    text[np.arange(n), labels] += 2.0
    filled = {
        "image_emb": rng.normal(0, 1, (n, dim)).astype(np.float32),
        "text_emb": text,
        "image_restored": np.zeros(n, bool),
        "text_restored": rng.random(n) < 0.5,
    }
    splits = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    return filled, labels, splits


def test_single_label_decoder_learns_a_text_borne_label() -> None:
    filled, labels, splits = _synthetic(800)
    result = train_and_score(filled, [[int(y)] for y in labels], splits, "single", "accuracy", 4, FAST)
    assert result.test_scores["accuracy"] > 0.9  # chance is 0.25
    assert result.n_test == 200 and 0 <= result.best_epoch < FAST.epochs


def test_multi_label_decoder_reports_all_f1_averages() -> None:
    filled, labels, splits = _synthetic(800, seed=1)
    multi = [[int(y), (int(y) + 1) % 4] for y in labels]
    result = train_and_score(filled, multi, splits, "multi", "f1_macro", 4, FAST)
    assert set(result.test_scores) == {"f1_macro", "f1_micro", "f1_weighted", "f1_samples"}
    assert result.test_scores["f1_macro"] > 0.8


def test_the_restored_flag_changes_the_decoders_input() -> None:
    torch.manual_seed(0)
    model = RestorationDecoder(16, 3, DecoderConfig(width=32, heads=2, dropout=0.0)).eval()
    image, text = torch.randn(4, 16), torch.randn(4, 16)
    observed = model(image, text, torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    restored = model(image, text, torch.zeros(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
    assert not torch.allclose(observed, restored)


def test_decoders_trained_side_by_side_in_threads_match_those_trained_one_by_one() -> None:
    # Where decoders train in task threads (a Dask worker's, or a caller's own), each result must
    # still depend on its own inputs and seed only (dropout and initialisation draw random numbers).
    recipe = FAST.model_copy(update={"decoder": DecoderConfig(width=32, heads=2, dropout=0.1)})
    jobs = [(_synthetic(600, seed=seed), recipe.model_copy(update={"seed": seed})) for seed in range(4)]

    def scores(job: tuple) -> dict[str, float]:
        (filled, labels, splits), config = job
        multi = [[int(y), (int(y) + 1) % 4] for y in labels]
        result = train_and_score(filled, multi, splits, "multi", "f1_macro", 4, config)
        return {**result.test_scores, "val": result.val_headline}

    one_by_one = [scores(job) for job in jobs]
    with ThreadPoolExecutor(2) as pool:
        side_by_side = list(pool.map(scores, jobs))
    assert side_by_side == one_by_one


def test_decoders_trained_in_worker_processes_match_those_trained_here() -> None:
    # The pipeline trains decoders in `decoder_pool()`'s processes, two or more at once: a score
    # must not depend on where, beside what, or in which worker the decoder trained.
    recipe = FAST.model_copy(update={"decoder": DecoderConfig(width=32, heads=2, dropout=0.1)})
    jobs = []
    for seed in range(3):
        filled, labels, splits = _synthetic(600, seed=seed)
        multi = [[int(y), (int(y) + 1) % 4] for y in labels]
        jobs.append((filled, multi, splits, "multi", "f1_macro", 4, recipe.model_copy(update={"seed": seed})))
    here = [train_and_score(*job).test_scores for job in jobs]
    pool = decoder_pool()
    assert pool is not None  # pytest's process is not daemonic
    futures = [pool.submit(train_and_score, *job) for job in jobs]
    assert [future.result().test_scores for future in futures] == here
    assert len({tuple(scores.values()) for scores in here}) == 3  # the seeds do change the scores
