"""Validate a raw dataset layout without extracting it: what `mmr-pipeline datasets check` reports.

One full pass over the adapter's samples, decoding every image the way extraction will (the
same `open_rgb`), so the counts of missing and unreadable images, empty texts and labels are
exactly the absences extraction will record. Layout errors (wrong root, a missing split file,
a label outside the label set) surface as the adapter's one-line `DatasetLayoutError`; a
layout that lists but cannot be used (a split with no samples, every image file missing)
is a `problems` entry of the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from itertools import islice
from typing import Protocol, runtime_checkable

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.sample import Sample, clean_text, open_rgb
from pipeline.progress import progress_bar

EXAMPLES = 5  # bad image files named in the report


@runtime_checkable
class HasLayoutNotes(Protocol):
    """Adapters that can say what their raw files hold beyond the samples (e.g. ignored genres)."""

    def layout_notes(self) -> dict[str, int]: ...


@dataclass
class SplitCounts:
    samples: int = 0
    image_ok: int = 0
    image_missing: int = 0  # the file (or member) does not exist
    image_unreadable: int = 0  # it exists but does not decode
    image_absent: int = 0  # the raw data names no image for the sample
    empty_text: int = 0
    unlabelled: int = 0  # a labelled dataset's sample without any label
    unknown_label: int = 0  # a label index outside the classes


@dataclass
class CheckReport:
    info: DatasetInfo
    root: str
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    labels: Counter = field(default_factory=Counter)  # (split, class name) -> samples
    bad_images: list[str] = field(default_factory=list)  # the first few, with the reason
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def overall(self) -> SplitCounts:
        """The counts summed over all splits."""
        return SplitCounts(
            **{
                item.name: sum(getattr(c, item.name) for c in self.splits.values())
                for item in fields(SplitCounts)
            }
        )

    @property
    def problems(self) -> list[str]:
        """Why the layout cannot be used as it is; empty when it can."""
        overall = self.overall
        if not overall.samples:
            return [
                f"{self.info.name} lists no samples under {self.root}: pass the folder that holds the dataset"
            ]
        found: list[str] = []
        empty = [split for split in self.info.splits if not self.splits.get(split, SplitCounts()).samples]
        if empty:
            found.append(f"split {empty[0]} has no samples: check its split file (or the val_percent option)")
        referenced = overall.samples - overall.image_absent
        if referenced and overall.image_missing == referenced:
            found.append(
                f"none of the {referenced} image files exists (first: {self.bad_images[0]}): "
                "extract the images where the layout expects them"
            )
        if overall.unknown_label:
            found.append(
                f"{overall.unknown_label} samples have labels outside the {len(self.info.classes)} classes"
            )
        if self.info.label_kind == "single" and overall.unlabelled:
            found.append(f"{overall.unlabelled} samples of a single-label dataset have no label")
        return found


def _batches(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    iterator = iter(samples)
    while batch := list(islice(iterator, size)):
        yield batch


def _image_status(sample: Sample) -> tuple[str, str]:
    """(absence kind or "", detail) for the sample's image, decoded and dropped."""
    image, kind, detail = open_rgb(sample.image)
    if image is not None:
        image.close()
    return kind, detail


def check_dataset(adapter: DatasetAdapter, root: str, workers: int = 8, progress: bool = True) -> CheckReport:
    """Count every split, label and absence of `adapter`'s samples, decoding images in threads.

    Samples stream through in batches, so a corpus of millions is checked in constant memory.
    """
    info = adapter.info
    report = CheckReport(info=info, root=root, splits={split: SplitCounts() for split in info.splits})
    bar = progress_bar(progress, desc=f"check {info.name}", unit="sample")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for batch in _batches(adapter.samples(), 64):
            for sample, (kind, detail) in zip(batch, pool.map(_image_status, batch), strict=True):
                counts = report.splits.setdefault(sample.split, SplitCounts())
                counts.samples += 1
                if kind == "missing file":
                    counts.image_missing += 1
                elif kind == "unreadable":
                    counts.image_unreadable += 1
                elif kind == "not in raw data":
                    counts.image_absent += 1
                else:
                    counts.image_ok += 1
                if detail and len(report.bad_images) < EXAMPLES:
                    report.bad_images.append(f"{kind}: {detail}")
                counts.empty_text += clean_text(sample.text) is None
                if info.label_kind != "none":
                    counts.unlabelled += not sample.label
                    for index in sample.label:
                        if 0 <= index < len(info.classes):
                            report.labels[sample.split, info.classes[index]] += 1
                        else:
                            counts.unknown_label += 1
            bar.update(len(batch))
    bar.close()
    if isinstance(adapter, HasLayoutNotes):
        report.notes = adapter.layout_notes()
    return report
