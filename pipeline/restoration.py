"""From stored features to restored features: the steps `train` and `restore` run.

Each step reads its inputs from the stores, skips work whose output is already committed,
and writes its output back; callers (CLI, Prefect flows) pass ids and paths only.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.diffusion.core import Sampler
from pipeline.errors import ConfigError
from pipeline.hashing import content_id
from pipeline.masks import MissingType, draw_masks, mask_name
from pipeline.models.dit import with_feature_dim
from pipeline.restorers import (
    DIRECTIONS,
    DIT_RESTORERS,
    RESTORER_NAMES,
    DiffusionRestorer,
    Direction,
    KnnRestorer,
    MeanRestorer,
    OracleRestorer,
    RecentredRestorer,
    RegressionRestorer,
    Restorer,
    SwapRestorer,
    ZeroRestorer,
    mean_cosine,
    missing_and_available,
)
from pipeline.training.restorer import (
    TrainConfig,
    TrainResult,
    load_restorer_models,
    train_restorer,
    training_pairs,
)
from pipeline.version import code_version
from stores.feature_store import FeatureStore
from stores.fs import exists, read_parquet, write_parquet
from stores.restoration_store import RestorationStore, RestoredRows, all_rows_key, mask_url
from stores.restorer_store import RestorerStore

log = logging.getLogger(__name__)


class RestoreSettings(BaseModel):
    """How restoration runs: sampling for `dit`, k for `knn`; part of the restoration key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(50, ge=1)
    sampler: Sampler = "ddim"
    seed: int = 0
    # Samples per DDIM batch: 256 is the fastest on the 2-core CPU (BENCHMARKS.md); raise it on a GPU.
    batch_size: int = Field(256, ge=1)
    knn_k: int = Field(10, ge=1)
    # dit: clip DDIM's x0 estimate to the training targets' range (`TrainedRestorer.x0_range`),
    # which no feature like a trained one leaves; off, the paper's sampling, clips nothing.
    clip_x0: bool = False
    # dit: average this many independent DDIM draws per sample (1 = the paper's single draw).
    samples: int = Field(1, ge=1)
    # dit: scale of the starting noise z_T (1 = the paper's sampling). 0 starts from its mean:
    # at t = T, z_T says nothing about x0, so a v-predicting DiT's x0 estimate there is its
    # estimate of E[x0 | c], and at S = 1 that is what it restores, without the noise a finite
    # model's estimate picks up from a random z_T (BENCHMARKS.md, restorer quality).
    temperature: float = Field(1.0, ge=0, le=1)
    # dit, knn, regression: add swap_gap's correction to the output, so that its mean on the
    # downstream train rows is the missing modality's mean there (`recentring_shift`); off = the
    # paper's zero-shot restoration.
    recentre: bool = False

    @model_validator(mode="after")
    def _draws_differ(self) -> RestoreSettings:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(f"temperature 0 makes all {self.samples} draws identical: set samples to 1")
        return self


# Restorers whose output for a row depends only on that row's available feature (and seed), and
# that cost enough to restore every row once and let each mask select: see `RestoredRows`.
PER_ROW_RESTORERS = frozenset({*DIT_RESTORERS, "knn", "regression"})
# Restorers that learn from the mid-stage corpus (and so may be recentred on the downstream data).
CORPUS_RESTORERS = PER_ROW_RESTORERS


def corpus_pairs(root: str, corpus: str, encoder_id: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Image and text features of the corpus samples that have both, and the store manifest."""
    store = FeatureStore(root, corpus, encoder_id)
    arrays = store.read_arrays()
    both = arrays["image_present"] & arrays["text_present"]
    return arrays["image_emb"][both], arrays["text_emb"][both], store.manifest()


def resolved_training(root: str, corpus: str, encoder_id: str, config: TrainConfig) -> TrainConfig:
    """`config` with the DiT's feature width D set to that of the stored corpus features."""
    manifest = FeatureStore(root, corpus, encoder_id).manifest()
    if manifest is None:
        raise ConfigError(f"no features of {corpus} by encoder {encoder_id} in {root}: extract them first")
    return config.model_copy(update={"dit": with_feature_dim(config.dit, manifest["embed_dim"])})


def restorer_store(root: str, corpus: str, encoder_id: str, config: TrainConfig) -> RestorerStore:
    """Where the DiT trained with `config` on `corpus` features lives (a content-addressed id)."""
    manifest = FeatureStore(root, corpus, encoder_id).manifest() or {}
    resolved = resolved_training(root, corpus, encoder_id, config)
    digest = content_id(
        resolved, corpus, manifest.get("dataset_fingerprint"), encoder_id, code_version(), length=12
    )
    return RestorerStore(root, f"dit-{config.dit.gating}-s{config.stages}-{digest}")


def train(
    root: str, corpus: str, encoder_id: str, config: TrainConfig, device: str = "cpu", progress: bool = True,
    stop_after: int | None = None,
) -> tuple[RestorerStore, TrainResult | None]:  # fmt: skip
    """Train the DiT pair on the corpus features, resuming a stopped run; skip a finished one."""
    store = restorer_store(root, corpus, encoder_id, config)
    if store.is_complete():
        log.info("restorer %s is trained already", store.restorer_id)
        return store, None
    images, texts, _ = corpus_pairs(root, corpus, encoder_id)
    result = train_restorer(
        resolved_training(root, corpus, encoder_id, config), images, texts, store, device=device,
        progress=progress, stop_after=stop_after,
    )  # fmt: skip
    return store, result


def corpus_label(root: str, corpus: str, encoder_id: str) -> str:
    """Which corpus features `knn` and `regression` learn from: its name and fingerprint (the
    DiT's restorer id already holds both)."""
    manifest = FeatureStore(root, corpus, encoder_id).manifest() or {}
    return f"{corpus}.{str(manifest.get('dataset_fingerprint', 'unknown'))[:8]}"


def restorer_key(
    name: str, settings: RestoreSettings, trained: RestorerStore | None, fitted_on: str | None = None
) -> str:
    """A restoration's name in the store: everything that decides the restored values except the
    mask (its own folder) and the features restored (recorded in its manifest). `fitted_on` is the
    `corpus_label` of a `knn` or `regression` restorer."""
    recentred = "-rc" if settings.recentre and name in CORPUS_RESTORERS else ""
    if name in DIT_RESTORERS:
        assert trained is not None
        clip = "-cliprange" if settings.clip_x0 else ""
        start = f"-T{settings.temperature:g}" if settings.temperature != 1 else ""
        draws = f"-avg{settings.samples}" if settings.samples > 1 else ""
        return (
            f"{trained.restorer_id}-S{settings.steps}-{settings.sampler}{clip}{start}{draws}{recentred}"
            f"-seed{settings.seed}"
        )
    if name in ("knn", "regression"):
        if fitted_on is None:
            raise ConfigError(f"restorer {name} learns from a mid-stage corpus: pass --corpus")
        return f"{f'knn-k{settings.knn_k}' if name == 'knn' else name}-{fitted_on}{recentred}"
    return name + recentred


def train_means(features: dict[str, np.ndarray], splits: np.ndarray) -> dict[str, np.ndarray]:
    """Mean image and text feature over the train rows where that modality is present."""
    train_rows = splits == "train"
    return {
        m: features[f"{m}_emb"][train_rows & features[f"{m}_present"]].mean(axis=0) for m in ("image", "text")
    }


def build_restorer(
    name: str,
    settings: RestoreSettings,
    features: dict[str, np.ndarray],
    splits: np.ndarray,
    corpus: tuple[np.ndarray, np.ndarray] | None,
    trained: RestorerStore | None,
    device: str = "cpu",
) -> Restorer:
    """A restorer fitted on what it may see: corpus pairs, or the downstream train split.

    `features` holds presence flags as the protocol leaves them: a feature the mask removes
    from a train row is not there to fit `mean`, `swap_gap` or the recentring on.
    """
    if name not in RESTORER_NAMES:
        raise ConfigError(f"unknown restorer {name!r}: choose one of {', '.join(RESTORER_NAMES)}")
    if name == "zero":
        return ZeroRestorer()
    if name == "oracle":
        return OracleRestorer(features["image_emb"], features["text_emb"])
    if name in ("mean", "swap_gap"):
        means = train_means(features, splits)
        return (
            MeanRestorer(means["image"], means["text"])
            if name == "mean"
            else SwapRestorer(means["image"], means["text"])
        )
    if name == "swap":
        return SwapRestorer()
    restorer: Restorer
    if name in ("knn", "regression"):
        if corpus is None:
            raise ConfigError(f"restorer {name} learns from a mid-stage corpus: pass --corpus")
        if name == "knn":
            restorer = KnnRestorer(*corpus, k=settings.knn_k)
        else:
            restorer = RegressionRestorer.fit(*corpus, seed=settings.seed)
    else:
        if trained is None:
            raise ConfigError(f"restorer {name} needs a trained restorer: run `mmr-pipeline train` first")
        loaded = load_restorer_models(trained, device)
        config = loaded.config
        if config.dit.retrieved and corpus is None:
            raise ConfigError(
                f"restorer {name} {trained.restorer_id} retrieves from its mid-stage corpus: pass --corpus"
            )
        restorer = DiffusionRestorer(
            loaded.models, config.diffusion, steps=settings.steps, sampler=settings.sampler,
            batch_size=settings.batch_size, device=device, seed=settings.seed,
            clip_x0=loaded.x0_range if settings.clip_x0 else None, n_samples=settings.samples,
            temperature=settings.temperature, corpus=training_pairs(*corpus, config) if corpus else None,
            retrieved=config.dit.retrieved,
        )  # fmt: skip
    if not settings.recentre:
        return restorer
    shifts = {
        missing_and_available(direction)[0]: recentring_shift(
            features, splits, direction, restored_by(restorer, features, direction)
        )
        for direction in DIRECTIONS
    }
    return RecentredRestorer(restorer, shifts["image"], shifts["text"])


def restored_by(
    restorer: Restorer, features: dict[str, np.ndarray], direction: Direction
) -> Callable[[np.ndarray], np.ndarray]:
    """`recentring_shift`'s restore_rows: the restorer run on those rows' available features."""
    available = missing_and_available(direction)[1]
    return lambda rows: restorer.restore(features[f"{available}_emb"][rows], direction, rows)


def recentring_shift(
    features: dict[str, np.ndarray],
    splits: np.ndarray,
    direction: Direction,
    restore_rows: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """What recentring adds to a restorer's output in `direction`: the downstream train mean of
    the missing modality minus the restorer's mean output on the train rows it restores from.

    It is `swap_gap`'s correction for a learned restorer (`swap`, the available feature as it
    is, recentred this way is `swap_gap`), and it takes what `swap_gap` takes: each modality's
    train features as the mask leaves them, unpaired. Subtracting the restorer's own mean output
    rather than its corpus's mean leaves alone what the restorer already adapts to (downstream
    images of other objects than the corpus's restore to other captions) and corrects only the
    offset it cannot see, such as caption templates the corpus never used.
    `restore_rows(rows)` restores the available features of those store rows.
    """
    missing, available = missing_and_available(direction)
    train = splits == "train"
    sources = np.flatnonzero(train & features[f"{available}_present"])
    targets = train & features[f"{missing}_present"]
    if not len(sources) or not targets.any():
        raise ConfigError(
            f"recentring {direction} needs train rows with {available} features and rows with {missing} "
            "features, and the mask leaves none: lower the missing rate, or turn recentring off "
            '(--no-recentre on restore and evaluate, or "recentre": false under "restore" in a --config file)'
        )
    restored_mean = restore_rows(sources).astype(np.float64).mean(axis=0)
    return (train_means(features, splits)[missing] - restored_mean).astype(np.float32)


def masks_for(
    root: str, dataset: str, eta: float, missing_type: MissingType, seed: int, encoder_id: str
) -> pa.Table:
    """The stored masks of (dataset, eta, type, seed), drawn and stored on first use."""
    store = FeatureStore(root, dataset, encoder_id)
    manifest = store.manifest() or {}
    url = mask_url(
        root, dataset, manifest.get("dataset_fingerprint", "unknown"), mask_name(eta, missing_type, seed)
    )
    if not exists(url):
        splits = np.asarray(store.read_samples().column("split").to_pylist())
        write_parquet(url, draw_masks(dataset, splits, eta, missing_type, seed))
    return read_parquet(url)


@dataclass
class RestoreResult:
    store: RestorationStore
    manifest: dict[str, Any]
    cached: bool


def restoration_output(
    root: str, dataset: str, encoder_id: str, name: str, eta: float, missing_type: MissingType, mask_seed: int,
    settings: RestoreSettings, trained: RestorerStore | None = None, corpus: str | None = None,
) -> RestorationStore:  # fmt: skip
    """Where `restore` with these arguments writes (and finds) its restoration."""
    key = restoration_key(root, encoder_id, name, settings, trained, corpus)
    return RestorationStore(root, dataset, encoder_id, key, mask_name(eta, missing_type, mask_seed))


def restoration_key(root: str, encoder_id: str, name: str, settings: RestoreSettings,
                    trained: RestorerStore | None = None, corpus: str | None = None) -> str:  # fmt: skip
    """`restorer_key` of restorer `name`, with the corpus a `knn` or `regression` is fitted on."""
    fitted_on = corpus_label(root, corpus, encoder_id) if corpus and name in ("knn", "regression") else None
    return restorer_key(name, settings, trained, fitted_on)


def restore(
    root: str,
    dataset: str,
    encoder_id: str,
    name: str,
    eta: float,
    missing_type: MissingType,
    mask_seed: int,
    settings: RestoreSettings,
    corpus: str | None = None,
    trained: RestorerStore | None = None,
    device: str = "cpu",
) -> RestoreResult:
    """Fill every masked (or raw-absent) modality of `dataset` with restorer `name`.

    Reports the mean cosine similarity of restored to true features per direction and split,
    over entries whose true feature exists.
    """
    output = restoration_output(
        root, dataset, encoder_id, name, eta, missing_type, mask_seed, settings, trained, corpus
    )
    feature_store = FeatureStore(root, dataset, encoder_id)
    fingerprint = feature_store.fingerprint()
    finished = output.finished(fingerprint)
    if finished is not None:
        return RestoreResult(output, finished, cached=True)
    started = time.perf_counter()
    features = feature_store.read_arrays()
    masks = masks_for(root, dataset, eta, missing_type, mask_seed, encoder_id)
    splits = np.asarray(masks.column("split").to_pylist())

    image_missing = masks.column("image_missing").to_numpy() | ~features["image_present"]
    text_missing = masks.column("text_missing").to_numpy() | ~features["text_present"]
    # What the protocol leaves: a train feature that the mask removes fits no statistic.
    left = {**features, "image_present": ~image_missing, "text_present": ~text_missing}
    # Every mask shares one array of a per-row restorer's rows, restored as trained; the
    # recentring depends on the mask (its train rows), so it is added per mask, after selection.
    unshifted = settings.model_copy(update={"recentre": False})

    @functools.cache
    def restorer() -> Restorer:  # built on first use: a per-row restorer may find every row stored
        fitted_on = (
            corpus_pairs(root, corpus, encoder_id)[:2] if corpus and name in CORPUS_RESTORERS else None
        )
        return build_restorer(name, unshifted, left, splits, fitted_on, trained, device)

    filled = {"image_emb": features["image_emb"].copy(), "text_emb": features["text_emb"].copy()}
    restored = {
        "image_restored": image_missing & ~text_missing,
        "text_restored": text_missing & ~image_missing,
    }
    quality: dict[str, float] = {}
    for direction, target, source, flag, present in (
        ("i2t", "text_emb", "image_emb", "text_restored", "text_present"),
        ("t2i", "image_emb", "text_emb", "image_restored", "image_present"),
    ):
        rows = np.flatnonzero(restored[flag])
        filled[target][rows] = 0.0
        if len(rows) and name in PER_ROW_RESTORERS:
            shared = RestoredRows(root, dataset, encoder_id, all_rows_key(output.restorer_key), direction)
            every_row = shared.read(fingerprint)
            if every_row is None:
                sources = np.flatnonzero(features[source.replace("emb", "present")])
                every_row = np.zeros_like(features[target])
                model = restorer()  # loaded (or fitted) before the clock starts: it times sampling
                sampling_started = time.perf_counter()
                every_row[sources] = model.restore(features[source][sources], direction, sources)  # type: ignore[arg-type]
                every_row = every_row.astype(np.float16)  # as stored, so a rerun scores the same values
                shared.write(every_row, {"rows": len(sources), "steps": settings.steps, "features": fingerprint,
                                         "seconds": time.perf_counter() - sampling_started})  # fmt: skip
            filled[target][rows] = every_row[rows]
            if settings.recentre:
                stored_rows = functools.partial(np.take, every_row, axis=0)
                filled[target][rows] += recentring_shift(left, splits, direction, stored_rows)
        elif len(rows):
            filled[target][rows] = restorer().restore(features[source][rows], direction, rows)  # type: ignore[arg-type]
        for split in np.unique(splits):
            scored = rows[(splits[rows] == split) & features[present][rows]]
            if len(scored):
                quality[f"cosine_{direction}_{split}"] = mean_cosine(
                    filled[target][scored], features[target][scored]
                )
    neither = image_missing & text_missing  # nothing to restore from: both stay zero
    filled["image_emb"][neither] = 0.0
    filled["text_emb"][neither] = 0.0
    manifest = {
        "dataset": dataset,
        "encoder_id": encoder_id,
        "restorer": name,
        "restorer_key": output.restorer_key,
        "settings": settings.model_dump(),
        "eta": eta,
        "missing_type": missing_type,
        "mask_seed": mask_seed,
        "features": fingerprint,
        "n_image_restored": int(restored["image_restored"].sum()),
        "n_text_restored": int(restored["text_restored"].sum()),
        "n_both_absent": int(neither.sum()),
        "quality": quality,
        "seconds": time.perf_counter() - started,
        "code_version": code_version(),
    }
    output.write({**filled, **restored}, manifest)
    return RestoreResult(output, manifest, cached=False)


def open_restoration(root: str, manifest: dict[str, Any]) -> RestoreResult:
    """A committed restoration, from the manifest `restore` returned."""
    store = RestorationStore(root, manifest["dataset"], manifest["encoder_id"], manifest["restorer_key"],
                             mask_name(manifest["eta"], manifest["missing_type"], manifest["mask_seed"]))  # fmt: skip
    return RestoreResult(store, store.manifest() or manifest, cached=True)
