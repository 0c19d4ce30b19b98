"""Dataset names the CLI and flows accept, and the adapters behind them."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from pipeline.data.adapter import DatasetAdapter
from pipeline.data.coco import CocoAdapter
from pipeline.data.demo import DEMO_DATASETS, DemoAdapter, DemoConfig
from pipeline.data.food101 import Food101Adapter
from pipeline.data.hatememes import HatefulMemesAdapter
from pipeline.data.jsonl import JsonlAdapter
from pipeline.data.map_arrow import MapArrowAdapter
from pipeline.data.mmhs11k import Mmhs11kAdapter
from pipeline.data.mmimdb import MmImdbAdapter
from pipeline.data.n24news import N24NewsAdapter
from pipeline.data.webdataset import WebDatasetAdapter
from pipeline.errors import ConfigError, DatasetLayoutError, UnknownDatasetError


def _raw(name: str, adapter: type[DatasetAdapter]) -> Callable[[str | None, dict], DatasetAdapter]:
    """The factory of an adapter of a public raw layout: needs --root, refuses unknown options."""

    def build(root: str | None, options: dict) -> DatasetAdapter:
        known = [option for option in inspect.signature(adapter).parameters if option != "root"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            offered = f"its options are {', '.join(known)}" if known else "it takes no options"
            raise ConfigError(f"dataset {name} has no option {unknown[0]!r}: {offered}")
        return adapter(_need_root(name, root), **options)

    return build


# name -> factory(root, options). Demo datasets need no root; every other adapter reads one.
ADAPTERS: dict[str, Callable[[str | None, dict], DatasetAdapter]] = {
    **{
        name: (lambda root, options, name=name: DemoAdapter(name, DemoConfig(**options)))
        for name in DEMO_DATASETS
    },
    "jsonl": lambda root, options: JsonlAdapter(_need_root("jsonl", root), **options),
    "mmimdb": _raw("mmimdb", MmImdbAdapter),
    "food101": _raw("food101", Food101Adapter),
    "n24news": _raw("n24news", N24NewsAdapter),
    "mmhs11k": _raw("mmhs11k", Mmhs11kAdapter),
    "hatememes": _raw("hatememes", HatefulMemesAdapter),
    "map-arrow": _raw("map-arrow", MapArrowAdapter),
    "webdataset": _raw("webdataset", WebDatasetAdapter),
    "coco": _raw("coco", CocoAdapter),
}
# Names that stand for several datasets at once.
GROUPS: dict[str, tuple[str, ...]] = {"demo": DEMO_DATASETS}


def _need_root(name: str, root: str | None) -> str:
    if not root:
        raise DatasetLayoutError(
            f"dataset {name} reads raw files: pass --root PATH (the folder you downloaded)"
        )
    # Absolute: the store records each image's path, which must name the same file from any
    # working directory (a rerun elsewhere, a Prefect worker).
    return root if "://" in root else os.path.abspath(os.path.expanduser(root))


def dataset_names() -> list[str]:
    return sorted([*ADAPTERS, *GROUPS])


def expand(name: str) -> tuple[str, ...]:
    """The datasets a name stands for: a group's members, or the name itself."""
    if name in GROUPS:
        return GROUPS[name]
    if name in ADAPTERS:
        return (name,)
    raise UnknownDatasetError(f"unknown dataset {name!r}: choose one of {', '.join(dataset_names())}")


def downstream(names: list[str] | tuple[str, ...]) -> list[str]:
    """The labelled datasets the names stand for (groups expanded, the demo corpus left out)."""
    return [name for group in names for name in expand(group) if name != "demo-corpus"]


def corpus_dataset(corpus: str) -> str:
    """The dataset a mid-stage corpus name stands for (`demo` is `demo-corpus`)."""
    return "demo-corpus" if corpus == "demo" else corpus


def get_adapter(name: str, root: str | None = None, options: dict | None = None) -> DatasetAdapter:
    if name not in ADAPTERS:
        expand(name)  # raises the unknown-name error
        raise UnknownDatasetError(f"{name!r} names several datasets ({', '.join(GROUPS[name])}): pick one")
    return ADAPTERS[name](root, dict(options or {}))
