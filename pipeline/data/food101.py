"""UPMC Food-101 (Wang et al. 2015): food photos + the title of the web page they came from.

    images/{train,test}/<class>/<file>.jpg
    texts/{train,test}_titles.csv      file, text, class   (one row per image)

Classes are the folder names of images/train, sorted (101 in the public release). The CSV
rows define the samples, as in the public baselines (MAP skips images without a text row;
`datasets check` counts those images). The public CSVs have no header row; a first row whose
file field is not an image name (`image_path,text,food` in some re-uploads) is read as a
header. Titles may hold unquoted commas: the file is the first field, the class the last,
and the text everything between.

There is no public val split: a train sample goes to val when a hash of its id falls under
`val_percent` (default 10; see `pipeline.data.raw.held_out_for_val`), so the split is the
same on every machine and for every file order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import class_index, held_out_for_val, need_path, percent_option, subfolders
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import join, list_names, url_to_fs

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ROOT_FIX = "pass the UPMC Food-101 folder that holds images/{train,test}/ and texts/ as --root"


class Food101Adapter(DatasetAdapter):
    def __init__(self, root: str, val_percent: int = 10) -> None:
        self.root = root
        self.val_percent = percent_option("val_percent", val_percent)
        for split in ("train", "test"):
            need_path(root, f"images/{split}", ROOT_FIX)
            need_path(root, f"texts/{split}_titles.csv", ROOT_FIX)
        classes = tuple(subfolders(join(root, "images", "train")))
        if not classes:
            raise DatasetLayoutError(f"no class folders under {join(root, 'images', 'train')}: {ROOT_FIX}")
        self.info = DatasetInfo(name="food101", label_kind="single", metric="accuracy", classes=classes)

    def options(self) -> dict[str, object]:
        return {"val_percent": self.val_percent}

    def _rows(self, split: str) -> Iterator[tuple[int, str, str, str]]:
        """(line number, file, text, class) of each CSV row, header skipped."""
        relative = f"texts/{split}_titles.csv"
        fs, path = url_to_fs(join(self.root, relative))
        # utf-8-sig: Excel's "CSV UTF-8" starts the file with a byte-order mark, which would
        # otherwise become part of the first file name and make that image look missing.
        with fs.open(path, "r", encoding="utf-8-sig", errors="replace", newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not any(field.strip() for field in row):
                    continue
                if line == 1 and not row[0].strip().lower().endswith(IMAGE_SUFFIXES):
                    continue  # a header row
                if len(row) < 3:
                    raise DatasetLayoutError(
                        f"{relative} line {line} has {len(row)} fields, not file,text,class: fix or delete that line"
                    )
                yield line, row[0].strip(), ",".join(row[1:-1]), row[-1].strip()

    def layout_notes(self) -> dict[str, int]:
        """Image files that no CSV row names: not samples (public protocol), but worth knowing."""
        notes = {}
        for split in ("train", "test"):
            listed = {(name, file) for _, file, _, name in self._rows(split)}
            folder = join(self.root, "images", split)
            unlisted = sum(
                (name, file) not in listed
                for name in subfolders(folder)
                for file in list_names(join(folder, name))
                if file.lower().endswith(IMAGE_SUFFIXES)
            )
            if unlisted:
                notes[f"images in images/{split} without a row in texts/{split}_titles.csv (not samples)"] = (
                    unlisted
                )
        return notes

    def samples(self) -> Iterator[Sample]:
        for split in ("train", "test"):
            for line, file, text, name in self._rows(split):
                where = f"texts/{split}_titles.csv line {line}"
                label = class_index(self.info.classes, name, where, "use a class folder name of images/train")
                sample_id = f"{split}/{file}"
                carved = split == "train" and held_out_for_val("food101", sample_id, self.val_percent)
                yield Sample(
                    sample_id=sample_id,
                    split="val" if carved else split,
                    text=text,
                    image=FileImage(join(self.root, "images", split, name, file)),
                    label=(label,),
                    source=where,
                )
