"""Dataset names the CLI and flows accept, and the adapters behind them."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.data.adapter import DatasetAdapter
from pipeline.data.demo import DEMO_DATASETS, DemoAdapter, DemoConfig
from pipeline.data.jsonl import JsonlAdapter
from pipeline.errors import DatasetLayoutError, UnknownDatasetError

# name -> factory(root, options). Demo datasets need no root; every other adapter reads one.
ADAPTERS: dict[str, Callable[[str | None, dict], DatasetAdapter]] = {
    **{
        name: (lambda root, options, name=name: DemoAdapter(name, DemoConfig(**options)))
        for name in DEMO_DATASETS
    },
    "jsonl": lambda root, options: JsonlAdapter(_need_root("jsonl", root), **options),
}
# Names that stand for several datasets at once.
GROUPS: dict[str, tuple[str, ...]] = {"demo": DEMO_DATASETS}


def _need_root(name: str, root: str | None) -> str:
    if not root:
        raise DatasetLayoutError(f"dataset {name} reads raw files: pass --root PATH (the folder you downloaded)")
    return root


def dataset_names() -> list[str]:
    return sorted([*ADAPTERS, *GROUPS])


def expand(name: str) -> tuple[str, ...]:
    """The datasets a name stands for: a group's members, or the name itself."""
    if name in GROUPS:
        return GROUPS[name]
    if name in ADAPTERS:
        return (name,)
    raise UnknownDatasetError(f"unknown dataset {name!r}: choose one of {', '.join(dataset_names())}")


def get_adapter(name: str, root: str | None = None, options: dict | None = None) -> DatasetAdapter:
    if name not in ADAPTERS:
        expand(name)  # raises the unknown-name error
        raise UnknownDatasetError(f"{name!r} names several datasets ({', '.join(GROUPS[name])}): pick one")
    return ADAPTERS[name](root, dict(options or {}))
