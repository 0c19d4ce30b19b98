"""The dataset adapter interface: a named dataset, its label space, and a stream of samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from pipeline.data.sample import Sample
from pipeline.errors import DatasetLayoutError

LabelKind = Literal["single", "multi", "none"]
Metric = Literal["accuracy", "f1_macro", "auroc", "none"]


def metric_problem(label_kind: str, metric: str, n_classes: int) -> tuple[str, str] | None:
    """Why the evaluation cannot score `metric` as this task's headline, and the metric to use
    instead; None when it can. The scores it computes (pipeline/metrics.py): multi-label F1
    averages, single-label accuracy, and AUROC of the second class's probability, which only
    means something for two classes. A dataset without labels is never evaluated."""
    if label_kind == "multi" and metric != "f1_macro":
        return "is not computed for a multi-label task, which is scored by F1 over its classes", "f1_macro"
    if label_kind == "single" and metric == "auroc" and n_classes != 2:
        return f"needs a single-label task with exactly two classes, this one has {n_classes}", "accuracy"
    if label_kind == "single" and metric not in ("accuracy", "auroc"):
        return "is not computed for a single-label task, which is scored by accuracy", "accuracy"
    return None


class DatasetInfo(BaseModel):
    """What a dataset is: the label kind decides the decoder loss, the metric the headline score."""

    model_config = ConfigDict(frozen=True)

    name: str
    label_kind: LabelKind
    metric: Metric
    classes: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "val", "test")

    @model_validator(mode="after")
    def _metric_is_computable(self) -> DatasetInfo:
        """A headline the evaluation cannot compute fails here, not at evaluation time (a KeyError,
        or AUROC of a 3-class task: NaN every epoch, or a made-up value)."""
        problem = metric_problem(self.label_kind, self.metric, len(self.classes))
        if problem:
            reason, instead = problem
            raise DatasetLayoutError(
                f"dataset {self.name!r}: metric {self.metric!r} {reason}: use {instead!r}"
            )
        return self


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
