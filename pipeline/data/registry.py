"""Dataset names the CLI and flows accept, and the adapters behind them."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from pipeline.data.adapter import DatasetAdapter
from pipeline.data.coco import CocoAdapter
from pipeline.data.demo import DEMO_DATASETS, DemoAdapter, DemoConfig
from pipeline.data.food101 import Food101Adapter
from pipeline.data.hatememes import HatefulMemesAdapter
from pipeline.data.jsonl import JsonlAdapter
from pipeline.data.map_arrow import Food101ArrowAdapter, HatefulMemesArrowAdapter, MmImdbArrowAdapter
from pipeline.data.mmhs11k import Mmhs11kAdapter
from pipeline.data.mmimdb import MmImdbAdapter
from pipeline.data.n24news import N24NewsAdapter
from pipeline.data.webdataset import WebDatasetAdapter
from pipeline.errors import ConfigError, DatasetLayoutError, UnknownDatasetError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


def check_options(name: str, options: Mapping[str, object], fix: str) -> None:
    """The adapter options of raw dataset `name`, checked before any file is read: a dataset that
    takes no options here, an option it does not know or a value of the wrong type is one
    `ConfigError` that names the dataset and the option and ends with `fix`. The values' ranges
    and choices are the adapter's own to check (it raises `option KEY=VALUE must be ...`)."""
    if name in DEMO_DATASETS:
        raise ConfigError(f"dataset {name} is generated: its options are the config's `demo` section: {fix}")
    if name not in RAW:
        raise ConfigError(f"unknown dataset {name!r}: name one of {', '.join(sorted(RAW))}: {fix}")
    # The options an adapter of a raw layout takes are the keyword arguments after its root.
    parameters = inspect.signature(RAW[name], eval_str=True).parameters
    known = [option for option in parameters if option != "root"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        offered = f"its options are {', '.join(known)}" if known else "it takes no options"
        raise ConfigError(f"dataset {name} has no option {unknown[0]!r} ({offered}): {fix}")
    for option, value in options.items():
        try:
            TypeAdapter(parameters[option].annotation).validate_python(value, strict=True)
        except ValidationError as error:
            problem = error.errors()[0]["msg"].lower()
            raise ConfigError(f"dataset {name} option {option}={value!r}: {problem}: {fix}") from None


def _raw(name: str) -> Callable[[str | None, dict, str], DatasetAdapter]:
    """The factory of an adapter of a public raw layout: needs --root, refuses unknown options."""

    def build(root: str | None, options: dict, fix: str) -> DatasetAdapter:
        check_options(name, options, fix)
        root = _need_root(name, root)
        try:
            return RAW[name](root, **options)
        except ConfigError as error:  # a value out of range or not one of the choices
            raise ConfigError(f"dataset {name} {error}: {fix}") from None

    return build


# The adapters of raw layouts: every option they take is a keyword argument after the root, set in
# the config's `datasets` section (docs/datasets.md).
RAW: dict[str, type[DatasetAdapter]] = {
    "jsonl": JsonlAdapter,
    "mmimdb": MmImdbAdapter,
    "food101": Food101Adapter,
    "n24news": N24NewsAdapter,
    "mmhs11k": Mmhs11kAdapter,
    "hatememes": HatefulMemesAdapter,
    "mmimdb-arrow": MmImdbArrowAdapter,
    "food101-arrow": Food101ArrowAdapter,
    "hatememes-arrow": HatefulMemesArrowAdapter,
    "webdataset": WebDatasetAdapter,
    "coco": CocoAdapter,
}
# name -> factory(root, options). Demo datasets need no root; every other adapter reads one.
ADAPTERS: dict[str, Callable[[str | None, dict, str], DatasetAdapter]] = {
    **{
        name: (lambda root, options, fix, name=name: DemoAdapter(name, DemoConfig(**options)))
        for name in DEMO_DATASETS
    },
    **{name: _raw(name) for name in RAW},
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


def options_fix(name: str) -> str:
    """How to fix an adapter option that came from a config file."""
    return f"fix datasets.{name} in the --config file (docs/datasets.md lists the options)"


def get_adapter(
    name: str, root: str | None = None, options: Mapping[str, object] | None = None, fix: str | None = None
) -> DatasetAdapter:
    """The adapter of dataset `name` at `root`. `options`: a demo dataset's DemoConfig fields, or
    a raw layout's adapter options (the config's `datasets` section); `fix` ends an error about
    them (by default: fix the config file)."""
    if name not in ADAPTERS:
        expand(name)  # raises the unknown-name error
        raise UnknownDatasetError(f"{name!r} names several datasets ({', '.join(GROUPS[name])}): pick one")
    return ADAPTERS[name](root, dict(options or {}), fix or options_fix(name))


def configured_adapter(name: str, root: str | None, settings: PipelineConfig) -> DatasetAdapter:
    """The adapter of dataset `name` as every command and flow builds it: a demo dataset with the
    config's `demo` section, a raw layout with its options from the config's `datasets` section."""
    if name in DEMO_DATASETS:
        return get_adapter(name, root, settings.demo.model_dump())
    return get_adapter(name, root, settings.datasets.get(name))
