"""MMHS11K: two xlsx workbooks (read with openpyxl) + per-class image folders, a carved val split."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from openpyxl import Workbook

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.mmhs11k import Mmhs11kAdapter
from pipeline.data.raw import held_out_for_val
from pipeline.data.registry import get_adapter

HEADER = ["Tweet_Id", "Text", "Text (English)", "Image_Text", "Image_Text (English)", "Label"]


def val_tweet() -> str:
    """A tweet id that the 10 % val rule moves to val."""
    return next(str(n) for n in range(1596192893743796000, 10**19) if held_out_for_val("mmhs11k", str(n), 10))


def write_book(path: Path, rows: list[list[object]]) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    sheet.append([None] * len(HEADER))  # trailing empty rows are common in exported sheets
    book.save(path)


def write_mmhs11k(root: Path, files: SimpleNamespace) -> dict[str, list[list[object]]]:
    held_out = val_tweet()
    rows = {
        "train": [
            ["1596192893743796224", "...", "You people are vermin", "...", "GO HOME", "Hate"],
            [held_out, "...", "Nice weather today", "NIL", "NIL", "No-Hate"],
            [1596192893743796, "...", None, "NIL", "NIL", "No-Hate"],  # numeric id, no text at all
            ["1596192893743796333", "...", "Look at this", "...", "a sign", "Hate"],  # corrupt image
        ],
        "test": [
            ["1600000000000000001", "...", "Great match", "NIL", "NIL", "No-Hate"],  # no image file
            ["1600000000000000002", "...", "Awful people", "...", "text in picture", "Hate"],
        ],
    }
    root.mkdir(parents=True)
    for split, split_rows in rows.items():
        write_book(root / f"MMHS11K_{split}.xlsx", split_rows)
    train, test = root / "MMHS11K_RGB_train", root / "MMHS11K_RGB_test"
    files.image(train / "Hate" / "1596192893743796224.jpg")
    files.image(train / "No-Hate" / f"{held_out}.png")
    files.image(train / "No-Hate" / "1596192893743796.jpg")
    files.garbage(train / "Hate" / "1596192893743796333.jpg")
    files.image(test / "Hate" / "1600000000000000002.jpeg")
    (test / "No-Hate").mkdir()
    return rows


def test_texts_labels_images_and_val(tmp_path: Path, files: SimpleNamespace) -> None:
    rows = write_mmhs11k(tmp_path / "mmhs", files)
    adapter = get_adapter("mmhs11k", str(tmp_path / "mmhs"))
    assert adapter.info.label_kind == "single" and adapter.info.metric == "accuracy"
    assert adapter.info.classes == ("No-Hate", "Hate")
    samples = list(adapter.samples())
    assert [s.sample_id for s in samples] == [str(row[0]) for split in rows for row in rows[split]]
    assert [s.split for s in samples] == ["train", "val", "train", "train", "test", "test"]
    assert [s.label for s in samples] == [(1,), (0,), (0,), (1,), (0,), (1,)]
    assert samples[0].text == "You people are vermin GO HOME"
    assert samples[1].text == "Nice weather today"  # NIL image text left out
    assert samples[1].image.describe().endswith(f"MMHS11K_RGB_train/No-Hate/{samples[1].sample_id}.png")
    assert samples[5].image.describe().endswith("MMHS11K_RGB_test/Hate/1600000000000000002.jpeg")
    assert samples[4].image.describe().endswith("MMHS11K_RGB_test/No-Hate/1600000000000000001.jpg")


def test_check_and_extraction(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable, run_evaluate: Callable
) -> None:
    write_mmhs11k(tmp_path / "mmhs", files)
    adapter = Mmhs11kAdapter(str(tmp_path / "mmhs"))
    report = check_dataset(adapter, str(tmp_path / "mmhs"), progress=False)
    assert {split: c.samples for split, c in report.splits.items()} == {"train": 3, "val": 1, "test": 2}
    assert report.overall == SplitCounts(
        samples=6, image_ok=4, image_missing=1, image_unreadable=1, empty_text=1
    )
    assert report.labels["train", "Hate"] == 2 and report.labels["val", "No-Hate"] == 1
    result = run_check("mmhs11k", tmp_path / "mmhs")
    assert result.exit_code == 0, result.output

    extracted = run_extract(adapter)
    assert (adapter.info.label_kind, adapter.info.metric) == ("single", "accuracy")
    assert set(run_evaluate(adapter)) == {"accuracy"}  # check -> extract -> evaluate, end to end
    assert extracted.n_rows == 6
    assert dict(extracted.absent) == {
        ("image", "missing file"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_unknown_label_missing_column_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no MMHS11K_train.xlsx under" in refused(run_check("mmhs11k", tmp_path))
    rows = write_mmhs11k(tmp_path / "mmhs", files)
    write_book(
        tmp_path / "mmhs" / "MMHS11K_test.xlsx",
        [*rows["test"], ["17", "...", "hm", "NIL", "NIL", "Offensive"]],
    )
    line = refused(run_check("mmhs11k", tmp_path / "mmhs"))
    assert "MMHS11K_test.xlsx row 4: label 'Offensive' is not one of No-Hate, Hate" in line

    book = Workbook()
    book.active.append(["Tweet_Id", "Text", "Label"])
    book.save(tmp_path / "mmhs" / "MMHS11K_test.xlsx")
    assert "MMHS11K_test.xlsx has no column 'Text (English)'" in refused(
        run_check("mmhs11k", tmp_path / "mmhs")
    )
    (tmp_path / "mmhs" / "MMHS11K_test.xlsx").write_bytes(b"not a workbook")
    assert "is not a readable xlsx workbook" in refused(run_check("mmhs11k", tmp_path / "mmhs"))


def set_dimension(path: Path, dimension: str) -> None:
    """Replace the sheet's `<dimension>` element (with "" to drop it), as some exporters get it wrong."""
    with zipfile.ZipFile(path) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = re.sub(r"<dimension [^>]*/>", dimension, sheet).encode()
    with zipfile.ZipFile(path, "w") as book:
        for name, data in parts.items():
            book.writestr(name, data)


@pytest.mark.parametrize("dimension", ['<dimension ref="A1"/>', ""])
def test_a_wrong_or_missing_dimension_still_reads_every_cell(
    tmp_path: Path, files: SimpleNamespace, dimension: str
) -> None:
    rows = write_mmhs11k(tmp_path / "mmhs", files)
    expected = [
        (s.sample_id, s.split, s.text, s.label) for s in Mmhs11kAdapter(str(tmp_path / "mmhs")).samples()
    ]
    for split in rows:
        set_dimension(tmp_path / "mmhs" / f"MMHS11K_{split}.xlsx", dimension)
    samples = list(Mmhs11kAdapter(str(tmp_path / "mmhs")).samples())
    assert [(s.sample_id, s.split, s.text, s.label) for s in samples] == expected


def test_a_short_row_has_empty_cells_not_a_crash(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    write_mmhs11k(tmp_path / "mmhs", files)
    path = tmp_path / "mmhs" / "MMHS11K_test.xlsx"
    book = Workbook()
    book.active.append(["Tweet_Id", "Label", "Text (English)", "Image_Text (English)"])
    book.active.append(["1600000000000000002", "Hate", "Awful people"])  # no image text: a short row
    book.save(path)
    set_dimension(path, "")
    samples = [s for s in Mmhs11kAdapter(str(tmp_path / "mmhs")).samples() if s.split == "test"]
    assert [(s.sample_id, s.text, s.label) for s in samples] == [
        ("1600000000000000002", "Awful people", (1,))
    ]

    book.active.append(["1600000000000000003"])  # no label either
    book.save(path)
    set_dimension(path, "")
    line = refused(run_check("mmhs11k", tmp_path / "mmhs"))
    assert "MMHS11K_test.xlsx row 3: label None is not one of No-Hate, Hate" in line
