"""A plain layout for users' own data: `samples.jsonl` plus `meta.json` under one root.

    meta.json      {"label_kind": "single"|"multi"|"none", "classes": [...], "metric": "accuracy"}
    samples.jsonl  {"id": "...", "split": "train", "text": "...", "image": "images/x.jpg",
                    "label": "class name" | ["name", ...]}   (one object a line)

Image paths are relative to the root. A missing or unreadable image, or an empty text, makes
that modality absent; a label that is not in `classes` is a layout error naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import exists, join, read_json, url_to_fs


class JsonlAdapter(DatasetAdapter):
    def __init__(self, root: str, name: str = "jsonl") -> None:
        self.root = root
        meta = read_json(join(root, "meta.json"))
        if meta is None:
            raise DatasetLayoutError(
                f"no meta.json under {root}: pass the folder that holds meta.json and samples.jsonl as --root"
            )
        if not exists(join(root, "samples.jsonl")):
            raise DatasetLayoutError(f"no samples.jsonl under {root}: write one sample object a line there")
        kind = meta.get("label_kind", "single")
        default_metric = {"single": "accuracy", "multi": "f1_macro", "none": "none"}[kind]
        self.info = DatasetInfo(
            name=name,
            label_kind=kind,
            metric=meta.get("metric", default_metric),
            classes=tuple(meta.get("classes", ())),
            splits=tuple(meta.get("splits", ("train", "val", "test"))),
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

    def samples(self) -> Iterator[Sample]:
        fs, path = url_to_fs(join(self.root, "samples.jsonl"))
        with fs.open(path, "r") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    sample_id, split = str(record["id"]), str(record["split"])
                except (json.JSONDecodeError, KeyError) as error:
                    raise DatasetLayoutError(
                        f"samples.jsonl line {line_number} is not an object with `id` and `split` "
                        f"({type(error).__name__}): fix that line"
                    ) from None
                image = record.get("image")
                yield Sample(
                    sample_id=sample_id,
                    split=split,
                    text=record.get("text"),
                    image=FileImage(join(self.root, image)) if image else None,
                    label=self._label(record.get("label"), line_number),
                    source=f"samples.jsonl:{line_number}",
                )
