"""Downstream evaluation: train the light decoder on restored features, score the test split.

The restorer stays frozen. The decoder is trained on the train split under the same missing
protocol as the test split, with the same restorer filling the gaps (so training and test
inputs come from one distribution); the epoch with the best validation headline metric is
kept (model selection on val), then the test split is scored once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from pipeline.hashing import content_id
from pipeline.metrics import task_scores
from pipeline.models.decoder import DecoderConfig, RestorationDecoder
from pipeline.restoration import RestoreResult
from pipeline.restorers import DIT_RESTORERS
from pipeline.version import code_version
from pipeline.workers import FORK_SERVER, exit_when_gone
from stores.feature_store import FeatureStore
from stores.results_store import append_metrics


class DecoderTraining(BaseModel):
    """The paper's recipe: AdamW 5e-4, x0.1 at the midpoint, 20 epochs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decoder: DecoderConfig = DecoderConfig()
    epochs: int = Field(20, ge=1)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = 0.01
    batch_size: int = Field(64, ge=1)
    seed: int = 0

    def recipe_id(self) -> str:
        """Content id of the recipe without its seed: the seeds of one benchmark cell share it."""
        return "dec-" + content_id(self.model_dump(mode="json", exclude={"seed"}), length=12)


@dataclass
class EvaluationResult:
    test_scores: dict[str, float]
    best_epoch: int
    val_headline: float
    n_test: int
    seconds: float


def label_targets(labels: list[list[int]], label_kind: str, n_classes: int) -> np.ndarray:
    """Multi-label: a dense 0/1 matrix. Otherwise class indices, -1 for a sample without a label."""
    if label_kind == "multi":
        targets = np.zeros((len(labels), n_classes), np.float32)
        for row, positives in enumerate(labels):
            targets[row, positives] = 1.0
        return targets
    return np.array([positives[0] if positives else -1 for positives in labels], np.int64)


def _probabilities(model: RestorationDecoder, inputs: list[torch.Tensor], label_kind: str) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [model(*(x[i : i + 1024] for x in inputs)) for i in range(0, len(inputs[0]), 1024)]
        )
    return (torch.sigmoid(logits) if label_kind == "multi" else logits.softmax(dim=-1)).numpy()


# Decoder training draws from torch's global RNG (initialisation, dropout) and sets the
# process-wide intra-op thread count. Two decoders trained at once in threads (Prefect's thread
# runner, `run --workers 2`) interleaved their draws and changed each other's scores, by up to
# 4 points on the demo, so within one process they take turns; the pipeline trains them in
# worker processes instead (`decoder_pool`).
_DECODER_TRAINING = threading.Lock()


@contextlib.contextmanager
def _alone_on_one_intra_op_thread() -> Iterator[None]:
    """The decoder's ops are tiny: one thread skips OpenMP hand-offs (about 20% faster on 2 cores)."""
    with _DECODER_TRAINING:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@_alone_on_one_intra_op_thread()
def train_and_score(
    filled: dict[str, np.ndarray],
    labels: list[list[int]],
    splits: np.ndarray,
    label_kind: str,
    metric: str,
    n_classes: int,
    config: DecoderTraining,
) -> EvaluationResult:
    """Train on `train`, select on `val`, score `test`. `filled` holds the restorer's output."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    targets = label_targets(labels, label_kind, n_classes)
    tensors = [
        torch.from_numpy(filled["image_emb"]),
        torch.from_numpy(filled["text_emb"]),
        torch.from_numpy(filled["image_restored"]),
        torch.from_numpy(filled["text_restored"]),
    ]
    rows = {split: np.flatnonzero(splits == split) for split in ("train", "val", "test")}
    if label_kind != "multi":  # a single-label sample without a label cannot be trained or scored
        rows = {split: r[targets[r] >= 0] for split, r in rows.items()}
    model = RestorationDecoder(filled["image_emb"].shape[1], n_classes, config.decoder)
    # fused: one kernel for all parameters; on this tiny model the per-tensor loop of the default
    # AdamW cost a quarter (batches of 64) to almost half (256) of every step (BENCHMARKS.md,
    # "The decoder's training").
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[config.epochs // 2], gamma=0.1)
    target_tensor = torch.from_numpy(targets)
    generator = torch.Generator().manual_seed(config.seed)
    best = (-np.inf, 0, None)
    for epoch in range(config.epochs):
        model.train()
        order = torch.from_numpy(rows["train"])[torch.randperm(len(rows["train"]), generator=generator)]
        for batch in order.split(config.batch_size):
            logits = model(*(x[batch] for x in tensors))
            if label_kind == "multi":
                loss = F.binary_cross_entropy_with_logits(logits, target_tensor[batch])
            else:
                loss = F.cross_entropy(logits, target_tensor[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        val = rows["val"]
        if len(val) == 0:  # no validation split: keep the last epoch
            best = (float("nan"), epoch, {k: v.clone() for k, v in model.state_dict().items()})
            continue
        val_probabilities = _probabilities(model, [x[val] for x in tensors], label_kind)
        val_scores = task_scores(label_kind, metric, targets[val], val_probabilities)
        if not val_scores[metric] <= best[0]:  # model selection on the val headline metric (NaN: keep)
            best = (val_scores[metric], epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    test = rows["test"]
    probabilities = _probabilities(model, [x[test] for x in tensors], label_kind)
    return EvaluationResult(
        test_scores=task_scores(label_kind, metric, targets[test], probabilities),
        best_epoch=best[1],
        val_headline=float(best[0]),
        n_test=len(test),
        seconds=time.perf_counter() - started,
    )


_POOL_GUARD = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def decoder_pool() -> ProcessPoolExecutor | None:
    """This process's pool of decoder-training processes (one per core, started on first use);
    None in a daemonic process (a Dask worker), which may not start children.

    A decoder trains on one intra-op thread, so decoders trained one at a time leave the other
    cores idle; task threads cannot share them either, since decoders in threads of one process
    must take turns (above). In processes each has its own RNG, and a decoder's scores depend on
    its inputs and seed only. Workers start from the fork server and end with this process.
    """
    global _pool
    if multiprocessing.current_process().daemon:
        return None
    with _POOL_GUARD:
        # A pool whose worker died (out of memory, say) refuses all further work: start anew.
        if _pool is None or getattr(_pool, "_broken", False):
            _pool = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 1, mp_context=FORK_SERVER, initializer=_decoder_worker,
                initargs=(os.getpid(),),
            )  # fmt: skip
        return _pool


def _decoder_worker(owner: int) -> None:
    """Worker init: end with the owner; leave Ctrl-C to the owner, which stops the run, so that
    one key press does not print a traceback from every idle worker too."""
    exit_when_gone(owner)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def evaluate_restoration(
    root: str, dataset: str, encoder_id: str, restoration: RestoreResult, config: DecoderTraining,
    run_id: str | None = None, pool: Executor | None = None,
) -> tuple[str, EvaluationResult]:  # fmt: skip
    """Train and score the decoder on one stored restoration; append the scores to the results.

    `run_id` names the results file: a content id makes the evaluation idempotent (a rerun finds it).
    `pool`: train the decoder there (e.g. `decoder_pool()`) instead of in this thread.
    """
    features = FeatureStore(root, dataset, encoder_id)
    info = features.manifest()["dataset_info"]
    samples = features.read_samples()
    arguments = (
        restoration.store.read(),
        samples.column("label").to_pylist(),
        np.asarray(samples.column("split").to_pylist()),
        info["label_kind"],
        info["metric"],
        len(info["classes"]),
        config,
    )
    result = pool.submit(train_and_score, *arguments).result() if pool else train_and_score(*arguments)
    manifest = restoration.manifest
    run = {
        "run_id": run_id,
        "dataset": dataset,
        "encoder_id": encoder_id,
        "restorer": manifest["restorer"],
        "variant": manifest["restorer_key"],
        "eta": manifest["eta"],
        "missing_type": manifest["missing_type"],
        "seed": manifest["mask_seed"],
        "split": "test",
        "n": result.n_test,
        "sampling_steps": manifest["settings"]["steps"] if manifest["restorer"] in DIT_RESTORERS else None,
        "restore_seconds": manifest["seconds"],
        "evaluate_seconds": result.seconds,
        "decoder_id": config.recipe_id(),
        "config_hash": content_id(config, manifest["settings"], manifest["restorer_key"]),
        "code_version": code_version(),
    }
    return append_metrics(root, run, result.test_scores), result
