"""The Prefect flows: `extract`, `train-restorer`, `restore`, `evaluate`, `report` and `benchmark`.

Each flow is a thin arrangement of the tasks in `flows.tasks`; the work happens in
`pipeline.steps`. Parameters are plain JSON values so that every flow can be a deployment
(`prefect.yaml`). The store defaults to `$MMR_STORE`, then `./mmr-store`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture, as_completed

from flows import tasks
from pipeline import steps
from pipeline.ablations import NO_CHANGE, ROBUSTNESS_RATES, DitChange, dit_change
from pipeline.data.registry import corpus_dataset, downstream, expand
from pipeline.errors import ConfigError
from pipeline.masks import MISSING_TYPES
from pipeline.progress import progress_bar
from pipeline.restorers import DIT_RESTORERS
from pipeline.runtime import BENCHMARK_RESTORERS, default_store, resolve_device
from pipeline.steps import RunSpec, ablation_specs, check_run, distinct_restorers
from stores.fs import join


def _spec(store: str | None, model: str, pretrained: str, config: str | None, device: str,
          recentre: bool | None = None, change: DitChange = NO_CHANGE) -> RunSpec:  # fmt: skip
    return RunSpec(store=(store or default_store()), model=model, pretrained=pretrained, config=config,
                   device=resolve_device(device), recentre=recentre, change=change)  # fmt: skip


def extract_datasets(spec: RunSpec, encoder_id: str, datasets: list[tuple[str, str | None]],
                     shards_per_task: int) -> list[dict[str, Any]]:  # fmt: skip
    """Plan each dataset's store, then encode its missing shards as concurrent tasks."""
    plan_task, shard_task = tasks.plan_extraction, tasks.extract_shards
    plans = [plan_task(spec, name, root, encoder_id) for name, root in datasets]
    futures = []
    for plan, (name, _) in zip(plans, datasets, strict=True):
        todo = plan["todo"]
        for start in range(0, len(todo), shards_per_task):
            group = todo[start : start + shards_per_task]
            futures.append(shard_task.submit(spec, name, encoder_id, group))
    for future in _progress(futures, "extract shards"):
        future.result()
    return [{**plan, "shards_encoded": len(plan["todo"])} for plan in plans]


def _progress(futures: list[PrefectFuture], description: str) -> list[PrefectFuture]:
    """The futures as they finish, with a progress bar."""
    done = []
    with progress_bar(total=len(futures), desc=description, unit="task") as bar:
        for future in as_completed(futures):
            done.append(future)
            bar.update(1)
    return done


@flow(name="extract")
def extract_flow(dataset: str = "demo", root: str | None = None, store: str | None = None,
                 model: str = "mmr-tiny", pretrained: str = "demo", config: str | None = None,
                 device: str = "auto", shards_per_task: int = 4) -> list[dict[str, Any]]:  # fmt: skip
    """Extract frozen-encoder features of a dataset (or a group such as `demo`), shard by shard."""
    spec = _spec(store, model, pretrained, config, device)
    encoder_id = tasks.prepare_encoder(spec)
    plans = extract_datasets(spec, encoder_id, [(name, root) for name in expand(dataset)], shards_per_task)
    create_table_artifact(
        [{k: plan[k] for k in ("dataset", "encoder_id", "shards_total", "shards_encoded", "url")} for plan in plans],
        key="extract", description=f"Feature extraction of {dataset}",
    )  # fmt: skip
    return plans


@flow(name="train-restorer")
def train_restorer_flow(corpus: str = "demo", root: str | None = None, store: str | None = None,
                        model: str = "mmr-tiny", pretrained: str = "demo", config: str | None = None,
                        device: str = "auto", variant: str | None = None, stages: int | None = None,
                        restorer: str = "dit") -> str:  # fmt: skip
    """Train the I2T and T2I DiTs of `restorer` (`dit`, ours, or `dit-paper`, the paper's method) on a
    mid-stage corpus's features (extracting them if needed)."""
    if restorer not in DIT_RESTORERS:
        raise ConfigError(f"restorer {restorer!r}: choose one of {', '.join(DIT_RESTORERS)}")
    spec = _spec(store, model, pretrained, config, device, change=dit_change(variant, stages, None))
    check_run(spec, [], corpus, [restorer], [], [], None, root)
    encoder_id = tasks.prepare_encoder(spec)
    name = corpus_dataset(corpus)
    extract_datasets(spec, encoder_id, [(name, root)], shards_per_task=4)
    return tasks.train_restorer(spec, name, encoder_id, restorer)["restorer_id"]


def restore_all(spec: RunSpec, encoder_id: str, datasets: list[str], restorers: list[str], eta: float,
                missing_types: list[str], seeds: list[int], corpus: str,
                restorer_ids: dict[str, str]) -> list[PrefectFuture]:  # fmt: skip
    """Submit one restore task per (dataset, restorer, missing type, seed)."""
    restore_task = tasks.cached(tasks.restore, spec, tasks.restoration_stored)
    futures = []
    for dataset in datasets:
        for restorer in restorers:
            first: list[PrefectFuture] = []
            for missing_type in missing_types:
                for seed in seeds:
                    future = restore_task.submit(
                        spec, dataset, encoder_id, restorer, eta, missing_type, seed, corpus,
                        restorer_ids.get(restorer),
                        wait_for=first,
                    )  # fmt: skip
                    # The first DiT restoration of a dataset samples every row once; the rest reuse it.
                    first = first or [future]
                    futures.append(future)
    return futures


def _upstream(spec: RunSpec, datasets: list[str], roots: dict[str, str] | None, corpus: str,
              corpus_root: str | None, restorers: list[str]) -> tuple[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """Encoder, features of the datasets and the corpus, and each DiT restorer's training."""
    encoder_id = tasks.prepare_encoder(spec)
    pairs = [(name, (roots or {}).get(name)) for name in datasets] + [(corpus, corpus_root)]
    extract_datasets(spec, encoder_id, pairs, shards_per_task=4)
    # Not cached by Prefect: the step itself finds a finished restorer at once.
    trainings = {name: tasks.train_restorer(spec, corpus, encoder_id, name) for name in DIT_RESTORERS
                 if name in restorers}  # fmt: skip
    return encoder_id, trainings


def _restorer_ids(trainings: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: training["restorer_id"] for name, training in trainings.items()}


def _one_dataset_upstream(spec: RunSpec, dataset: str, root: str | None, restorers: list[str],
                          missing_types: list[str], missing_rate: float, corpus: str,
                          corpus_root: str | None) -> tuple[list[str], str, str, dict[str, str]]:  # fmt: skip
    """Checked choices, the dataset's members, the corpus, and their encoder and DiT ids."""
    names = downstream([dataset])
    roots = {name: root for name in names} if root else None
    check_run(spec, [dataset], corpus, restorers, missing_types, [missing_rate], roots, corpus_root)
    corpus = corpus_dataset(corpus)
    encoder_id, trainings = _upstream(spec, names, roots, corpus, corpus_root, restorers)
    return names, corpus, encoder_id, _restorer_ids(trainings)


@flow(name="restore")
def restore_flow(dataset: str = "demo", root: str | None = None, missing_rate: float = 0.7,
                 missing_types: list[str] | None = None, seeds: list[int] | None = None,
                 restorers: list[str] | None = None, corpus: str = "demo", corpus_root: str | None = None,
                 store: str | None = None, model: str = "mmr-tiny", pretrained: str = "demo",
                 config: str | None = None, device: str = "auto", variant: str | None = None,
                 stages: int | None = None, steps: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Restore the masked modalities of a dataset with each restorer; a table of cosine to truth."""
    missing_types, seeds, restorers = missing_types or ["both"], seeds or [0], restorers or ["dit"]
    spec = _spec(store, model, pretrained, config, device, change=dit_change(variant, stages, steps))
    names, corpus, encoder_id, restorer_ids = _one_dataset_upstream(
        spec, dataset, root, restorers, missing_types, missing_rate, corpus, corpus_root
    )
    futures = restore_all(spec, encoder_id, names, distinct_restorers(spec, restorers), missing_rate, missing_types,
                          seeds, corpus, restorer_ids)  # fmt: skip
    manifests = [future.result() for future in _progress(futures, "restore")]
    rows = [{"dataset": m["dataset"], "restorer": m["restorer"], "missing_type": m["missing_type"],
             "seed": m["mask_seed"], **{k: round(v, 4) for k, v in m["quality"].items() if "test" in k}}
            for m in manifests]  # fmt: skip
    create_table_artifact(rows, key="restore", description="Cosine similarity of restored to true features")
    return manifests


@flow(name="evaluate")
def evaluate_flow(dataset: str = "demo", root: str | None = None, missing_rate: float = 0.7,
                  missing_types: list[str] | None = None, seeds: list[int] | None = None,
                  restorers: list[str] | None = None, corpus: str = "demo", corpus_root: str | None = None,
                  store: str | None = None, model: str = "mmr-tiny", pretrained: str = "demo",
                  config: str | None = None, device: str = "auto", steps: int | None = None,
                  variant: str | None = None, stages: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Restore, train the decoder, score the test split and append the results, per restorer."""
    missing_types, seeds, restorers = missing_types or ["both"], seeds or [0], restorers or ["dit"]
    spec = _spec(store, model, pretrained, config, device, change=dit_change(variant, stages, steps))
    names, corpus, encoder_id, restorer_ids = _one_dataset_upstream(
        spec, dataset, root, restorers, missing_types, missing_rate, corpus, corpus_root
    )
    evaluations = evaluate_all(spec, encoder_id, names, distinct_restorers(spec, restorers), [missing_rate],
                               missing_types, seeds, corpus, restorer_ids)  # fmt: skip
    create_table_artifact(_score_rows(evaluations), key="evaluate", description="Test scores per restorer")
    return evaluations


def evaluate_all(spec: RunSpec, encoder_id: str, datasets: list[str], restorers: list[str],
                 missing_rates: list[float], missing_types: list[str], seeds: list[int], corpus: str,
                 restorer_ids: dict[str, str]) -> list[dict[str, Any]]:  # fmt: skip
    """Restore then evaluate every combination; evaluations start as their restorations finish."""
    evaluate_task = tasks.cached(tasks.evaluate, spec, tasks.evaluation_stored)
    futures = []
    for eta in missing_rates:
        restorations = restore_all(spec, encoder_id, datasets, restorers, eta, missing_types, seeds, corpus,
                                   restorer_ids)  # fmt: skip
        futures += [evaluate_task.submit(spec, restoration) for restoration in restorations]
    evaluations = []
    for future in _progress(futures, "restore + evaluate"):
        evaluation = future.result()
        # `cached`: found in the store by the step, or a Prefect cache hit (the task did not run).
        evaluations.append({**evaluation, "cached": evaluation["cached"] or future.state.name == "Cached"})
    return evaluations


def run_ablations(spec: RunSpec, encoder_id: str, datasets: list[str], restorers: list[str],
                  missing_rates: list[float], missing_types: list[str], seeds: list[int],
                  corpus: str) -> list[dict[str, Any]]:  # fmt: skip
    """Train and evaluate every changed DiT of the paper's Tables 2 to 5, for each DiT restorer run."""
    evaluations = []
    for restorer, row, changed in ablation_specs(spec, restorers):
        if row.change == NO_CHANGE:
            continue  # the reference: the benchmark's own row
        trained = tasks.train_restorer(changed, corpus, encoder_id, restorer)
        evaluations += evaluate_all(changed, encoder_id, datasets, [restorer], missing_rates, missing_types,
                                    seeds, corpus, {restorer: trained["restorer_id"]})  # fmt: skip
    return evaluations


def _score_rows(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for evaluation in evaluations:
        restoration = evaluation["restoration"]
        rows.append({"dataset": restoration["dataset"], "restorer": restoration["restorer"],
                     "eta": restoration["eta"], "missing_type": restoration["missing_type"],
                     "seed": restoration["mask_seed"],
                     **{k: round(v, 4) for k, v in evaluation["scores"].items()}})  # fmt: skip
    return rows


@flow(name="report")
def report_flow(store: str | None = None, missing_rate: float | None = None, dit_steps: int | None = None,
                config: str | None = None, encoder_id: str | None = None, recentre: bool | None = None,
                corpus: str = "demo") -> dict[str, Any]:  # fmt: skip
    """Write the benchmark tables and figures under the store; publish the table as an artifact.

    `config` names the preset the benchmark ran with: the tables show evaluations by its decoder
    recipe, and their DiTs are the ones trained on `corpus` and sampled as it says (with S =
    `dit_steps` where given). `encoder_id`: the features' encoder (None: per dataset, the encoder
    of its newest evaluation). `recentre`: the table's `dit` is the recentred one, or the
    zero-shot one (None: as the config says).
    """
    spec = RunSpec(store=store or default_store(), config=config, recentre=recentre,
                   change=dit_change(None, None, dit_steps))  # fmt: skip
    written = steps.write_report(spec, corpus_dataset(corpus), missing_rate, encoder_id)
    store = spec.store
    # One artifact history per report folder: the demo's and `--config paper`'s do not interleave.
    below = written["folder"].removeprefix(join(store, "reports"))  # "" or "/paper", "/zero-shot-S50"
    prefix = ("benchmark" + below.replace("/", "-")).lower()  # keys: [a-z0-9-]
    for eta, markdown in written["tables"].items():
        create_markdown_artifact(markdown, key=f"{prefix}-eta{round(float(eta) * 100)}",
                                 description=f"Benchmark at missing rate {eta}")  # fmt: skip
    return written


@flow(name="benchmark")
def benchmark_flow(datasets: list[str] | None = None, missing_rates: list[float] | None = None,
                   missing_types: list[str] | None = None, seeds: list[int] | None = None,
                   restorers: list[str] | None = None, corpus: str = "demo", corpus_root: str | None = None,
                   roots: dict[str, str] | None = None, store: str | None = None, model: str = "mmr-tiny",
                   pretrained: str = "demo", config: str | None = None, device: str = "auto",
                   steps: int | None = None, variant: str | None = None, stages: int | None = None,
                   ablations: bool = False, recentre: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole DAG: extract, train the restorer, restore, evaluate every combination, report.

    With `ablations`, also the paper's ablations for each DiT restorer (Tables 2 to 5: modules,
    corpus size, depth, sampling steps) at the run's missing rates, and Figure 5's missing rates
    for every restorer. `recentre` overrides the config's choice for dit, knn and regression
    (False: the paper's zero-shot restoration).
    """
    datasets, missing_rates = datasets or ["demo"], missing_rates or [0.7]
    missing_types, seeds = missing_types or list(MISSING_TYPES), seeds if seeds is not None else [0, 1, 2]
    restorers = restorers or list(BENCHMARK_RESTORERS)
    logger = get_run_logger()
    spec = _spec(store, model, pretrained, config, device, recentre, dit_change(variant, stages, steps))
    check_run(spec, datasets, corpus, restorers, missing_types, missing_rates, roots, corpus_root)
    names, corpus = downstream(datasets), corpus_dataset(corpus)
    restorers = distinct_restorers(spec, restorers)
    encoder_id, trainings = _upstream(spec, names, roots, corpus, corpus_root, restorers)
    restorer_ids = _restorer_ids(trainings)
    evaluations = evaluate_all(spec, encoder_id, names, restorers, missing_rates, missing_types, seeds, corpus,
                               restorer_ids)  # fmt: skip
    if ablations:
        evaluations += run_ablations(spec, encoder_id, names, restorers, missing_rates, missing_types, seeds, corpus)
        robustness_rates = sorted(set(ROBUSTNESS_RATES) - set(missing_rates))
        evaluations += evaluate_all(spec, encoder_id, names, restorers, robustness_rates, missing_types, seeds,
                                    corpus, restorer_ids)  # fmt: skip
    fresh = sum(not evaluation["cached"] for evaluation in evaluations)
    logger.info("%d evaluations (%d computed, %d found in the store)", len(evaluations), fresh,
                len(evaluations) - fresh)  # fmt: skip
    create_table_artifact(_score_rows(evaluations), key="benchmark-scores", description="Every evaluation")
    written = report_flow(store=spec.store, missing_rate=None, dit_steps=steps, config=config,
                          encoder_id=encoder_id, recentre=recentre, corpus=corpus)  # fmt: skip
    return {"encoder_id": encoder_id, "trainings": trainings, "evaluations": len(evaluations),
            "computed": fresh, **written}  # fmt: skip
