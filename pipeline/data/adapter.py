"""The dataset adapter interface: a named dataset, its label space, and a stream of samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from pipeline.data.sample import Sample

LabelKind = Literal["single", "multi", "none"]
Metric = Literal["accuracy", "f1_macro", "auroc", "none"]


class DatasetInfo(BaseModel):
    """What a dataset is: the label kind decides the decoder loss, the metric the headline score."""

    model_config = ConfigDict(frozen=True)

    name: str
    label_kind: LabelKind
    metric: Metric
    classes: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "val", "test")


class DatasetAdapter(ABC):
    """Reads one dataset's raw layout. `samples()` streams in a fixed, deterministic order."""

    info: DatasetInfo
    # True for a dataset the code generates from `options()` alone (the demo): its listing is a
    # function of the options and the code, so a planned store is checked without listing it all.
    generated: ClassVar[bool] = False

    @abstractmethod
    def samples(self) -> Iterator[Sample]:
        """Every sample of every split, in the order rows are stored."""

    def options(self) -> dict[str, object]:
        """The adapter options that change what `samples()` yields (part of the dataset fingerprint)."""
        return {}
