"""The pipeline's steps as plain functions of ids and paths, for the Prefect flows to call.

Every step reads its inputs from the store and writes its output there under a content id, so
it can run in any process or on any machine that sees the store, and running it again finds
the finished artefact instead of recomputing it. Steps return small JSON-able dicts (ids, URLs,
counts), never tensors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pipeline.reporting import AblationKeys

from pipeline.ablations import NO_CHANGE, AblationRow, DitChange, ablation_rows
from pipeline.config import PipelineConfig, load_config, restorer_settings
from pipeline.data.adapter import DatasetAdapter
from pipeline.data.demo import DEMO_DATASETS
from pipeline.data.registry import configured_adapter, corpus_dataset, downstream, expand
from pipeline.encoders.frozen import EncoderConfig, FrozenEncoder
from pipeline.encoders.warmup import load_encoder, stored_encoder_id
from pipeline.errors import DatasetLayoutError, StoreMismatchError
from pipeline.hashing import content_id
from pipeline.masks import MissingType
from pipeline.restoration import RestoreSettings, restorer_store
from pipeline.training.restorer import TrainConfig
from pipeline.version import code_version
from stores.restorer_store import RestorerStore

log = logging.getLogger(__name__)


class RunSpec(BaseModel):
    """What every step of one benchmark shares: the store, the encoder and the config preset, and
    what an ablation changes in the DiT restorers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str
    model: str = "mmr-tiny"
    pretrained: str = "demo"
    config: str | None = None
    device: str = "cpu"
    recentre: bool | None = None  # None: the config's
    change: DitChange = NO_CHANGE  # to both DiT restorers' training and sampling

    def settings(self) -> PipelineConfig:
        return load_config(self.config, self.recentre)

    def encoder(self) -> FrozenEncoder:
        settings = self.settings()
        return load_encoder(
            EncoderConfig(model=self.model, pretrained=self.pretrained),
            self.store,
            warmup=settings.warmup,
            demo=settings.demo,
            device=self.device,
            workers=settings.extraction.workers,
        )

    def adapter(self, dataset: str, root: str | None) -> DatasetAdapter:
        """The dataset's adapter with the config's options (its `demo` or `datasets` section)."""
        return configured_adapter(dataset, root, self.settings())


def prepare_encoder(spec: RunSpec) -> str:
    """The encoder's id (the demo encoder is warmed up and cached on first use; once it is, its
    id is read off its stored weights without building it)."""
    settings = spec.settings()
    config = EncoderConfig(model=spec.model, pretrained=spec.pretrained)
    return stored_encoder_id(config, spec.store, settings.warmup, settings.demo) or spec.encoder().encoder_id


def plan_extraction(spec: RunSpec, dataset: str, root: str | None) -> dict[str, Any]:
    """Create (or check) the dataset's feature store; list the shards still to encode."""
    from pipeline.extraction import plan_store

    encoder = spec.encoder()
    store, _ = plan_store(
        spec.adapter(dataset, root), encoder, spec.store, spec.settings().extraction.chunk_rows
    )
    done = store.committed_shards()
    todo = [shard for shard in range(store.n_shards()) if shard not in done]
    return {"dataset": dataset, "encoder_id": encoder.encoder_id, "url": store.url,
            "shards_total": store.n_shards(), "todo": todo}  # fmt: skip


def extract_shards(spec: RunSpec, dataset: str, shards: list[int]) -> int:
    """Encode and commit `shards` of a planned store (each shard its own chunk range); rows written."""
    import torch

    from pipeline.extraction import encode_shards, stored_rows
    from stores.feature_store import FeatureStore

    encoder = spec.encoder()
    store = FeatureStore(spec.store, dataset, encoder.encoder_id)
    todo = [shard for shard in shards if shard not in store.committed_shards()]  # a retry skips done ones
    rows = stored_rows(store, todo)  # from the listing the plan step stored: no second listing
    with torch.inference_mode():
        encode_shards(store, encoder, rows, todo, spec.settings().extraction, progress=False)
    return len(rows)


def train_restorer(spec: RunSpec, corpus: str, encoder_id: str, restorer: str = "dit") -> dict[str, Any]:
    """Train (or resume, or find) DiT restorer `restorer`'s pair on the corpus features: its id
    and what was done."""
    from pipeline.restoration import train

    trained, result = train(spec.store, corpus, encoder_id, training_config(spec, restorer), device=spec.device,
                            progress=True)  # fmt: skip
    if result is None:
        return {"restorer_id": trained.restorer_id, "trained_now": False}
    log.info("restorer %s: steps %d -> %d in %.1f s", trained.restorer_id, result.resumed_from,
             result.steps, result.seconds)  # fmt: skip
    return {"restorer_id": trained.restorer_id, "trained_now": True, "resumed_from": result.resumed_from,
            "steps": result.steps, "seconds": result.seconds}  # fmt: skip


def training_config(spec: RunSpec, restorer: str) -> TrainConfig:
    """DiT restorer `restorer`'s training config in this run: the config's, changed as the spec says."""
    return spec.change.training(restorer_settings(spec.settings(), restorer)[0])


def distinct_restorers(spec: RunSpec, restorers: list[str]) -> list[str]:
    """`restorers` without `dit` where this run's config makes it the paper's method (the `paper`
    preset does): `dit-paper` already trains and samples exactly that DiT."""
    if not {"dit", "dit-paper"} <= set(restorers):
        return restorers
    if restorer_settings(spec.settings(), "dit") != restorer_settings(spec.settings(), "dit-paper"):
        return restorers
    log.info("dit is the paper's method under config %s: its row is dit-paper", spec.config)
    return [name for name in restorers if name != "dit"]


def check_feature_width(spec: RunSpec, restorers: list[str]) -> None:
    """Each DiT's tokens divide the encoder's feature width: one line now, not at the first step."""
    from pipeline.encoders.frozen import EncoderConfig
    from pipeline.models.dit import with_feature_dim
    from pipeline.restorers import DIT_RESTORERS

    width = EncoderConfig(model=spec.model, pretrained=spec.pretrained).embed_dim
    for restorer in set(restorers) & set(DIT_RESTORERS):
        with_feature_dim(training_config(spec, restorer).dit, width)


def check_choices(restorers: list[str], missing_types: list[str], missing_rates: list[float]) -> None:
    """One error line for a bad choice before any step runs, not after extraction and training."""
    from pipeline.errors import ConfigError
    from pipeline.masks import MISSING_TYPES, check_missing_rate
    from pipeline.restorers import RESTORER_NAMES

    unknown = [name for name in restorers if name not in RESTORER_NAMES]
    if unknown:
        raise ConfigError(f"unknown restorer {unknown[0]!r}: choose from {', '.join(RESTORER_NAMES)}")
    wrong = [name for name in missing_types if name not in MISSING_TYPES]
    if wrong:
        raise ConfigError(f"unknown missing type {wrong[0]!r}: choose from {', '.join(MISSING_TYPES)}")
    for eta in missing_rates:
        check_missing_rate(eta)


def check_run(spec: RunSpec, datasets: list[str], corpus: str, restorers: list[str], missing_types: list[str],
              missing_rates: list[float], roots: Mapping[str, str] | None = None,
              corpus_root: str | None = None) -> None:  # fmt: skip
    """Every choice of a run, checked before any step: a bad one fails in one line now, not after
    extraction or training (and, from the command line, before Prefect's server starts)."""
    check_choices(restorers, missing_types, missing_rates)
    names = downstream(datasets)
    corpus_name = corpus_dataset(corpus)
    expand(corpus_name)
    check_feature_width(spec, restorers)
    # Each adapter as extraction will build it: a missing --root, a layout file that is not there
    # or an option value out of range shows now, not after the demo encoder's minutes of warm-up.
    settings = spec.settings()
    strays = sorted(set(roots or {}) - set(names))
    if strays:
        raise DatasetLayoutError(
            f"--root {strays[0]}={(roots or {})[strays[0]]}: {strays[0]} is not a dataset of this run "
            f"({', '.join(names)}): fix the name, or add it to --dataset (a flow: roots and datasets)"
        )
    for name in names:
        root = (roots or {}).get(name)
        if root is None and name not in DEMO_DATASETS:
            raise DatasetLayoutError(
                f"dataset {name} reads raw files: pass the folder you downloaded, --root {name}=PATH "
                "(a flow: its root parameter)"
            )
        configured_adapter(name, root, settings)
    if corpus_root is None and corpus_name not in DEMO_DATASETS:
        raise DatasetLayoutError(
            f"corpus {corpus_name} reads raw files: pass the folder you downloaded, --corpus-root PATH "
            "(a flow: corpus_root)"
        )
    configured_adapter(corpus_name, corpus_root, settings)


def restore_settings(spec: RunSpec, restorer: str) -> RestoreSettings:
    """How `restorer` restores in this run: `dit-paper` samples as the paper does, every other
    restorer as the config says; a DiT changed as the spec says."""
    return spec.change.sampling(restorer_settings(spec.settings(), restorer)[1])


def restore(spec: RunSpec, dataset: str, encoder_id: str, restorer: str, eta: float,
            missing_type: MissingType, seed: int, corpus: str) -> dict[str, Any]:  # fmt: skip
    """Fill the masked modalities of `dataset` with `restorer`; returns the restoration's manifest."""
    from pipeline.restoration import restore as run_restore

    trained = _trained(spec, restorer, corpus, encoder_id)
    if trained is not None and not trained.is_complete():
        raise RuntimeError(f"restorer {trained.restorer_id} is not trained: run train-restorer first")
    result = run_restore(spec.store, dataset, encoder_id, restorer, eta, missing_type, seed,
                         restore_settings(spec, restorer), corpus=corpus, trained=trained,
                         device=spec.device)  # fmt: skip
    return {**result.manifest, "cached": result.cached}


def _trained(spec: RunSpec, restorer: str, corpus: str, encoder_id: str) -> RestorerStore | None:
    """The DiT checkpoints a `dit` or `dit-paper` restoration samples from (None for other restorers)."""
    from pipeline.restorers import DIT_RESTORERS

    if restorer not in DIT_RESTORERS:
        return None
    return restorer_store(spec.store, corpus, encoder_id, training_config(spec, restorer))


def restoration_key(spec: RunSpec, restorer: str, corpus: str, encoder_id: str) -> str:
    """The key of `restorer`'s restorations in this run (what the results' `variant` column holds)."""
    from pipeline.restoration import restoration_key as key_of

    trained = _trained(spec, restorer, corpus, encoder_id)
    return key_of(spec.store, encoder_id, restorer, restore_settings(spec, restorer), trained, corpus)


def restoration_stored(spec: RunSpec, dataset: str, encoder_id: str, restorer: str, eta: float,
                       missing_type: MissingType, seed: int, corpus: str) -> bool:  # fmt: skip
    """Whether `restore` with these arguments would find its restoration in the store, made from
    the features the store holds now."""
    from pipeline.restoration import restoration_output
    from stores.feature_store import FeatureStore

    trained = _trained(spec, restorer, corpus, encoder_id)
    output = restoration_output(spec.store, dataset, encoder_id, restorer, eta, missing_type, seed,
                                restore_settings(spec, restorer), trained, corpus)  # fmt: skip
    features = FeatureStore(spec.store, dataset, encoder_id).manifest()
    return features is not None and output.finished(features["dataset_fingerprint"]) is not None


def evaluation_stored(spec: RunSpec, restoration: dict[str, Any]) -> bool:
    """Whether `evaluate` of this restoration would find its results in the store."""
    from stores.fs import exists
    from stores.results_store import metrics_url

    return exists(metrics_url(spec.store, evaluation_id(spec, restoration, restoration["mask_seed"])))


def evaluation_id(spec: RunSpec, restoration: dict[str, Any], decoder_seed: int) -> str:
    """Content id of one evaluation: the restoration it scores, the decoder recipe, the code."""
    decoder = spec.settings().decoder.model_copy(update={"seed": decoder_seed})
    key = (restoration["dataset"], restoration["encoder_id"], restoration["restorer_key"],
           restoration["eta"], restoration["missing_type"], restoration["mask_seed"])  # fmt: skip
    # The features restored, where the restoration records them (older ones keep their ids), so
    # features encoded again from other raw data are evaluated again.
    made_from = (restoration["features"],) if "features" in restoration else ()
    return "eval-" + content_id(key + made_from, decoder, code_version())


def evaluate(spec: RunSpec, restoration: dict[str, Any], in_process: bool = False) -> dict[str, Any]:
    """Train and score the decoder on a stored restoration (seeded by its mask seed), once; in the
    pool of decoder processes unless `in_process` (one evaluation at a time, as the CLI runs)."""
    from pipeline.evaluation import decoder_pool, evaluate_restoration
    from pipeline.restoration import open_restoration
    from stores.results_store import read_run

    seed = restoration["mask_seed"]
    run_id = evaluation_id(spec, restoration, seed)
    finished = read_run(spec.store, run_id)
    if finished is not None:
        return {**finished, "cached": True}
    decoder = spec.settings().decoder.model_copy(update={"seed": seed})
    stored = open_restoration(spec.store, restoration)
    _, result = evaluate_restoration(spec.store, restoration["dataset"], restoration["encoder_id"], stored,
                                     decoder, run_id=run_id, pool=None if in_process else decoder_pool())  # fmt: skip
    return {"run_id": run_id, "scores": result.test_scores, "n": result.n_test, "cached": False,
            "best_epoch": result.best_epoch}  # fmt: skip


def report_folder(spec: RunSpec) -> str:
    """Where a report goes under the store: `reports` for the default selection; another config,
    a `--recentre/--no-recentre` or a `--steps` that differs from the config's own gets a folder
    of its own (`reports/paper`, `reports/zero-shot`, `reports/paper-S50`), so that reports of
    other selections of one store never overwrite each other's tables and figures."""
    restore = load_config(spec.config).restore
    config = spec.config
    parts = (
        [] if config in (None, "demo") else [re.sub(r"[^a-z0-9]+", "-", Path(config).stem.lower()).strip("-")]
    )
    if spec.recentre is not None and spec.recentre != restore.recentre:
        parts.append("recentred" if spec.recentre else "zero-shot")
    if spec.change.steps is not None and spec.change.steps != restore.steps:
        parts.append(f"S{spec.change.steps}")
    return f"reports/{'-'.join(parts)}" if parts else "reports"


def _trained_on(spec: RunSpec, corpus: str, encoder_id: str) -> bool:
    from stores.feature_store import FeatureStore

    return FeatureStore(spec.store, corpus, encoder_id).manifest() is not None


def table_dit_keys(spec: RunSpec, corpus: str, encoders: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(DiT restorer, dataset) -> the key of its restorations in this run, per (dataset, encoder)
    of `encoders` whose corpus features exist (a DiT trained on `corpus` could restore them)."""
    from pipeline.restorers import DIT_RESTORERS

    return {(restorer, dataset): restoration_key(spec, restorer, corpus, encoder_id)
            for dataset, encoder_id in encoders if _trained_on(spec, corpus, encoder_id)
            for restorer in distinct_restorers(spec, list(DIT_RESTORERS))}  # fmt: skip


def ablation_specs(spec: RunSpec, restorers: list[str]) -> list[tuple[str, AblationRow, RunSpec]]:
    """(DiT restorer, ablation row, the run spec that trains and samples it) for each DiT restorer
    of `restorers` and each row of the paper's ablation tables around it (the reference included)."""
    from pipeline.restorers import DIT_RESTORERS

    found = []
    for restorer in (name for name in DIT_RESTORERS if name in restorers):
        train, restore = restorer_settings(spec.settings(), restorer)
        for row in ablation_rows(spec.change.training(train), spec.change.sampling(restore)):
            change = spec.change.model_copy(update=row.change.model_dump(exclude_none=True))
            found.append((restorer, row, spec.model_copy(update={"change": change})))
    return found


def ablation_keys(spec: RunSpec, corpus: str, encoders: list[tuple[str, str]]) -> AblationKeys:
    """Each DiT restorer's ablation rows of this run, with their restoration keys per dataset."""
    from pipeline.restorers import DIT_RESTORERS

    found: AblationKeys = {}
    for restorer, row, changed in ablation_specs(spec, distinct_restorers(spec, list(DIT_RESTORERS))):
        keys = {dataset: restoration_key(changed, restorer, corpus, encoder_id)
                for dataset, encoder_id in encoders if _trained_on(spec, corpus, encoder_id)}  # fmt: skip
        found.setdefault(restorer, []).append((row, keys))
    return found


def write_report(spec: RunSpec, corpus: str, missing_rate: float | None = None,
                 encoder_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Benchmark tables (Markdown + CSV) and figures under `{store}/reports`, per evaluated eta.

    They show this code version's evaluations with the spec's config's decoder recipe, per
    dataset of `encoder_id` (None: the encoder of the dataset's newest such evaluation). Its DiT
    rows are the DiTs trained on `corpus` and sampled as the spec says; the DiTs of the paper's
    ablations fill the ablation tables, and other DiT evaluations go nowhere.
    """
    from pipeline.reporting import (
        benchmark_tables,
        evaluated_missing_rates,
        report_figures,
        robustness_markdown,
    )
    from pipeline.selection import select_results
    from stores.fs import is_local, join, write_bytes_atomic

    store, settings = spec.store, spec.settings()
    selection = select_results(store, settings.decoder.recipe_id(), encoder_id)
    if not selection.encoders:
        raise StoreMismatchError(
            f"no evaluations in {store} by code version {selection.code_version} with the decoder recipe of "
            f"--config {spec.config or 'demo'} ({selection.decoder_id})"
            + (f" and encoder {encoder_id}" if encoder_id else "")
            + ": evaluate with this code (`mmr-pipeline run` or `evaluate`), or pass the --config they used"
        )
    evaluated = evaluated_missing_rates(store, selection)
    if missing_rate is not None and not any(abs(missing_rate - eta) < 1e-9 for eta in evaluated):
        raise StoreMismatchError(
            f"--missing-rate {missing_rate}: nothing in {store} was evaluated at it; evaluated rates: "
            f"{', '.join(f'{eta:g}' for eta in evaluated)}"
        )
    encoders = list(selection.encoders)
    dit_keys, ablations = table_dit_keys(spec, corpus, encoders), ablation_keys(spec, corpus, encoders)
    rates = [missing_rate] if missing_rate is not None else evaluated
    tables, files, folder = {}, [], report_folder(spec)
    for eta in rates:
        markdown, table = benchmark_tables(store, eta, selection, dit_keys, ablations)
        stem = join(store, folder, f"benchmark-eta{eta:.2f}")
        write_bytes_atomic(f"{stem}.md", markdown.encode())
        write_bytes_atomic(f"{stem}.csv", table.encode())
        tables[str(eta)] = markdown
        files += [f"{stem}.md", f"{stem}.csv"]
        if is_local(store):
            files += [str(path) for path in report_figures(store, eta, selection, dit_keys, folder)]
    robustness = robustness_markdown(store, selection, dit_keys)
    if robustness:
        write_bytes_atomic(join(store, folder, "robustness.md"), robustness.encode())
        files.append(join(store, folder, "robustness.md"))
    return {"tables": tables, "robustness": robustness, "files": files, "folder": join(store, folder)}
