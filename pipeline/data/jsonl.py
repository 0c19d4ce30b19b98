"""A plain layout for users' own data: `samples.jsonl` plus `meta.json` under one root.

    meta.json      {"label_kind": "single"|"multi"|"none", "classes": [...], "metric": "accuracy",
                    "splits": ["train", "val", "test"]}
    samples.jsonl  {"id": "...", "split": "train", "text": "...", "image": "images/x.jpg",
                    "label": "class name" | ["name", ...]}   (one object a line, UTF-8)

Image paths are relative to the root. A missing or unreadable image, or an empty text, makes
that modality absent; a number as text is read as its digits. A label that is not in `classes`,
a split that is not in `splits`, or a line that is not a JSON object is a layout error naming
the line. `metric` must be one the evaluation computes for the label kind: f1_macro (the
default) for multi, accuracy (the default) or, with exactly two classes, auroc for single.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import get_args

from pipeline.data.adapter import DatasetAdapter, DatasetInfo, LabelKind, Metric, metric_problem
from pipeline.data.raw import json_objects
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import exists, join, read_json

DEFAULT_METRIC = {"single": "accuracy", "multi": "f1_macro", "none": "none"}
DEFAULT_SPLITS = ("train", "val", "test")


def _read_meta(root: str) -> dict[str, object]:
    where = f"meta.json under {root}"
    try:
        meta = read_json(join(root, "meta.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetLayoutError(f"{where} is not valid JSON ({error}): fix that file") from None
    if meta is None:
        raise DatasetLayoutError(
            f"no meta.json under {root}: pass the folder that holds meta.json and samples.jsonl as --root"
        )
    if not isinstance(meta, dict):
        raise DatasetLayoutError(
            f"{where} is not a JSON object (it is a {type(meta).__name__}): fix that file, "
            'e.g. {"label_kind": "single", "classes": [...]}'
        )
    return meta


def _choice(meta: dict[str, object], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = meta.get(key, default)
    if value not in allowed:
        raise DatasetLayoutError(
            f"meta.json {key} {value!r} is not one of {', '.join(allowed)}: fix `{key}` in meta.json"
        )
    return str(value)


def _names(meta: dict[str, object], key: str, default: tuple[str, ...], empty_ok: bool) -> tuple[str, ...]:
    value = meta.get(key, default)
    if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
        raise DatasetLayoutError(f"meta.json `{key}` must be a list of names, not {value!r}: fix meta.json")
    if not value and not empty_ok:
        raise DatasetLayoutError(f"meta.json `{key}` must be a non-empty list of names: fix meta.json")
    return tuple(value)


def _text(value: object, where: str) -> str | None:
    """The text of a line: a number (a year, a code) is its digits, null is an absent text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DatasetLayoutError(f"{where}: text {value!r} is not a string: write the text as a string or null")


class JsonlAdapter(DatasetAdapter):
    def __init__(self, root: str) -> None:
        self.root = root
        meta = _read_meta(root)
        if not exists(join(root, "samples.jsonl")):
            raise DatasetLayoutError(f"no samples.jsonl under {root}: write one sample object a line there")
        kind = _choice(meta, "label_kind", "single", get_args(LabelKind))
        metric = _choice(meta, "metric", DEFAULT_METRIC[kind], get_args(Metric))
        classes = _names(meta, "classes", (), empty_ok=True)
        problem = metric_problem(kind, metric, len(classes))
        if problem:
            reason, instead = problem
            raise DatasetLayoutError(
                f"meta.json metric {metric!r} of dataset 'jsonl' {reason}: "
                f'fix `metric` in meta.json, e.g. "metric": "{instead}"'
            )
        self.info = DatasetInfo(
            name="jsonl",
            label_kind=kind,
            metric=metric,
            classes=classes,
            splits=_names(meta, "splits", DEFAULT_SPLITS, empty_ok=False),
        )

    def _label(self, value: object, line: int) -> tuple[int, ...]:
        names = [] if value is None else value if isinstance(value, list) else [value]
        try:
            return tuple(sorted(self.info.classes.index(str(name)) for name in names))
        except ValueError:
            raise DatasetLayoutError(
                f"samples.jsonl line {line}: label {value!r} is not in meta.json classes: "
                "add it to `classes` or fix the label"
            ) from None

    def _split(self, value: object, where: str) -> str:
        """A split that meta.json does not declare would be extracted but never trained or scored on."""
        if value not in self.info.splits:
            raise DatasetLayoutError(
                f"{where}: split {value!r} is not one of {', '.join(self.info.splits)}: "
                "use one of those or add it to `splits` in meta.json"
            )
        return str(value)

    def samples(self) -> Iterator[Sample]:
        for line_number, record in json_objects(self.root, "samples.jsonl"):
            where = f"samples.jsonl line {line_number}"
            missing = next((key for key in ("id", "split") if key not in record), None)
            if missing:
                raise DatasetLayoutError(f"{where} has no `{missing}`: give every line an `id` and a `split`")
            sample_id, image = record["id"], record.get("image")
            if not isinstance(sample_id, str | int) or isinstance(sample_id, bool):
                raise DatasetLayoutError(
                    f"{where}: id {sample_id!r} is not a string or a whole number: fix that line"
                )
            if image is not None and not isinstance(image, str):
                raise DatasetLayoutError(
                    f"{where}: image {image!r} is not a path: write the image path relative to {self.root}"
                )
            yield Sample(
                sample_id=str(sample_id),
                split=self._split(record["split"], where),
                text=_text(record.get("text"), where),
                image=FileImage(join(self.root, image)) if image else None,
                label=self._label(record.get("label"), line_number),
                source=f"samples.jsonl:{line_number}",
            )
