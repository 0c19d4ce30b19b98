"""Hateful Memes (Kiela et al. 2020): meme images with their overlaid text, binary, AUROC.

    img/<id>.png
    train.jsonl, dev.jsonl, test_seen.jsonl    {"id", "img": "img/<id>.png", "label": 0|1, "text"}

`dev.jsonl` is the val split (the phase-2 release names it `dev_seen.jsonl`: used when there is
no dev.jsonl) and `test_seen.jsonl` the test split: the labelled test set of the public
release. Classes are ("not hateful", "hateful"), so the AUROC's positive class is index 1.
The files are read as UTF-8 with any byte-order mark dropped; a line that is not UTF-8 is a layout
error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import class_index, json_objects, need_path
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import exists, join

CLASSES = ("not hateful", "hateful")
ROOT_FIX = (
    "pass the Hateful Memes folder that holds img/ and train.jsonl, dev.jsonl, test_seen.jsonl as --root"
)


class HatefulMemesAdapter(DatasetAdapter):
    def __init__(self, root: str) -> None:
        self.root = root
        need_path(root, "img", ROOT_FIX)
        dev = (
            "dev.jsonl"
            if exists(join(root, "dev.jsonl")) or not exists(join(root, "dev_seen.jsonl"))
            else "dev_seen.jsonl"
        )
        self.files = (("train.jsonl", "train"), (dev, "val"), ("test_seen.jsonl", "test"))
        for file, _ in self.files:
            need_path(root, file, ROOT_FIX)
        self.info = DatasetInfo(name="hatememes", label_kind="single", metric="auroc", classes=CLASSES)

    def samples(self) -> Iterator[Sample]:
        for file, split in self.files:
            for line_number, record in json_objects(self.root, file):
                where = f"{file} line {line_number}"
                if "id" not in record:
                    raise DatasetLayoutError(f"{where} is a JSON object without an `id`: fix that line")
                index = class_index(("0", "1"), record.get("label"), where, "labels are 0 or 1")
                image, text = record.get("img"), record.get("text")
                yield Sample(
                    sample_id=str(record["id"]),
                    split=split,
                    text=None if text is None else str(text),
                    image=FileImage(join(self.root, str(image))) if image else None,
                    label=(index,),
                    source=where,
                )
