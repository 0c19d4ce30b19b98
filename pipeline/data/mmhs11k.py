"""MMHS11K (Saddozai et al.): Urdu tweets with English translations and images, Hate / No-Hate.

    MMHS11K_{train,test}.xlsx         Tweet_Id, Text, Text (English), Image_Text,
                                      Image_Text (English), Label ("Hate" or "No-Hate")
    MMHS11K_RGB_{train,test}/{Hate,No-Hate}/<Tweet_Id>.<jpg|jpeg|png>

The text is the English tweet followed by the English text found in its image (the public
files write `NIL` where an image has none; that part is then left out). Classes are
("No-Hate", "Hate") so that index 1 is the positive class. An image is looked up by tweet id in
both class folders of its split, whatever its extension.

There is no public val split: a train sample goes to val when a hash of its tweet id falls
under `val_percent` (default 10; see `pipeline.data.raw.held_out_for_val`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import class_index, held_out_for_val, need_path, percent_option
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import join, list_names, url_to_fs

CLASSES = ("No-Hate", "Hate")
COLUMNS = ("Tweet_Id", "Text (English)", "Image_Text (English)", "Label")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ROOT_FIX = "pass the folder that holds MMHS11K_{train,test}.xlsx and the extracted MMHS11K_RGB_{train,test}/ as --root"


def _tweet_id(value: object) -> str | None:
    """Excel may store an id as text or as a number; a float id prints without a trailing `.0`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None if value is None or not str(value).strip() else str(value).strip()


def _cells(header: list[str], values: tuple[object, ...]) -> dict[str, object]:
    """{column: value} of a row; a row that stops early (its last cells empty) has None there."""
    return {column: values[index] if index < len(values) else None for index, column in enumerate(header)}


class Mmhs11kAdapter(DatasetAdapter):
    def __init__(self, root: str, val_percent: int = 10) -> None:
        self.root = root
        self.val_percent = percent_option("val_percent", val_percent)
        for split in ("train", "test"):
            need_path(root, f"MMHS11K_{split}.xlsx", ROOT_FIX)
            need_path(root, f"MMHS11K_RGB_{split}", ROOT_FIX)
        self.info = DatasetInfo(name="mmhs11k", label_kind="single", metric="accuracy", classes=CLASSES)

    def options(self) -> dict[str, object]:
        return {"val_percent": self.val_percent}

    def _images(self, split: str) -> dict[str, str]:
        """Tweet id -> image URL, from one listing of each class folder of the split."""
        folder = join(self.root, f"MMHS11K_RGB_{split}")
        return {
            name.rsplit(".", 1)[0]: join(folder, label, name)
            for label in CLASSES
            for name in list_names(join(folder, label))
            if name.lower().endswith(IMAGE_SUFFIXES)
        }

    def _rows(self, split: str) -> Iterator[tuple[int, dict[str, object]]]:
        """(row number, {column: value}) of each non-empty sheet row, header checked."""
        relative = f"MMHS11K_{split}.xlsx"
        fs, path = url_to_fs(join(self.root, relative))
        with fs.open(path, "rb") as handle:
            try:
                book = load_workbook(handle, read_only=True, data_only=True)
            except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
                raise DatasetLayoutError(
                    f"{relative} is not a readable xlsx workbook ({type(error).__name__}): re-download it"
                ) from None
            try:
                sheet = book.worksheets[0]
                # Read-only mode trusts the sheet's stored <dimension>, which some exporters write
                # wrong (`A1`: one column read) or leave out; forget it and read the cells present.
                sheet.reset_dimensions()
                rows = sheet.iter_rows(values_only=True)
                header = [str(cell).strip() if cell is not None else "" for cell in next(rows, ())]
                missing = [column for column in COLUMNS if column not in header]
                if missing:
                    raise DatasetLayoutError(
                        f"{relative} has no column {missing[0]!r} (columns: {', '.join(filter(None, header))}): "
                        "use the public MMHS11K workbook"
                    )
                for number, values in enumerate(rows, start=2):
                    if any(value is not None and str(value).strip() for value in values):
                        yield number, _cells(header, values)
            finally:
                book.close()

    def samples(self) -> Iterator[Sample]:
        for split in ("train", "test"):
            images = self._images(split)
            for number, row in self._rows(split):
                where = f"MMHS11K_{split}.xlsx row {number}"
                tweet = _tweet_id(row["Tweet_Id"])
                if tweet is None:
                    raise DatasetLayoutError(f"{where} has no Tweet_Id: fill it in or delete the row")
                label = class_index(CLASSES, row["Label"], where, "labels are Hate or No-Hate")
                image_text = str(row["Image_Text (English)"] or "")
                parts = [
                    str(row["Text (English)"] or ""),
                    "" if image_text.strip().upper() == "NIL" else image_text,
                ]
                carved = split == "train" and held_out_for_val("mmhs11k", tweet, self.val_percent)
                yield Sample(
                    sample_id=tweet,
                    split="val" if carved else split,
                    text=" ".join(part for part in parts if part.strip()),
                    image=FileImage(
                        images.get(tweet)
                        or join(self.root, f"MMHS11K_RGB_{split}", CLASSES[label], f"{tweet}.jpg")
                    ),
                    label=(label,),
                    source=where,
                )
