"""UPMC Food-101: class folders + title CSVs (with or without a header), a carved val split."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.food101 import Food101Adapter
from pipeline.data.raw import held_out_for_val
from pipeline.data.registry import get_adapter


def first_held_out(prefix: str) -> str:
    """The first `<prefix>_<n>.jpg` that the 10 % val rule moves to val (so the fixture has a val split)."""
    return next(
        f"{prefix}_{n}.jpg" for n in range(1000) if held_out_for_val("food101", f"train/{prefix}_{n}.jpg", 10)
    )


def write_food101(root: Path, files: SimpleNamespace, header: bool = False) -> dict[str, list[list[str]]]:
    val_file = first_held_out("apple_pie")
    rows = {
        "train": [
            ["apple_pie_0.jpg", "Apple pie, grandma's recipe", "apple_pie"],  # quoted comma
            [val_file, "Best apple pie", "apple_pie"],
            ["baby_back_ribs_0.jpg", "  ", "baby_back_ribs"],  # empty text
            ["baby_back_ribs_1.jpg", "Ribs on the grill", "baby_back_ribs"],  # image missing
        ],
        "test": [
            ["apple_pie_9.jpg", "Pie", "apple_pie"],  # corrupt image
            ["baby_back_ribs_9.jpg", "Smoked ribs", "baby_back_ribs"],
        ],
    }
    for name in ("apple_pie_0.jpg", val_file, "baby_back_ribs_0.jpg"):
        files.image(root / "images" / "train" / name.rsplit("_", 1)[0] / name)
    files.image(root / "images" / "train" / "apple_pie" / "apple_pie_5.jpg")  # no CSV row
    files.garbage(root / "images" / "test" / "apple_pie" / "apple_pie_9.jpg")
    files.image(root / "images" / "test" / "baby_back_ribs" / "baby_back_ribs_9.jpg")
    (root / "texts").mkdir(parents=True)
    for split, split_rows in rows.items():
        with open(root / "texts" / f"{split}_titles.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            if header:
                writer.writerow(["image_path", "text", "food"])
            writer.writerows(split_rows)
    return rows


def test_samples_labels_and_carved_val(tmp_path: Path, files: SimpleNamespace) -> None:
    rows = write_food101(tmp_path / "food", files)
    adapter = get_adapter("food101", str(tmp_path / "food"))
    assert adapter.info.label_kind == "single" and adapter.info.metric == "accuracy"
    assert adapter.info.classes == ("apple_pie", "baby_back_ribs")
    samples = list(adapter.samples())
    assert [s.sample_id for s in samples] == [f"{split}/{row[0]}" for split in rows for row in rows[split]]
    assert [s.split for s in samples] == ["train", "val", "train", "train", "test", "test"]
    assert [s.label for s in samples] == [(0,), (0,), (1,), (1,), (0,), (1,)]
    assert samples[0].text == "Apple pie, grandma's recipe"
    assert samples[4].image.describe().endswith("images/test/apple_pie/apple_pie_9.jpg")
    assert "val" not in {s.split for s in Food101Adapter(str(tmp_path / "food"), val_percent=0).samples()}


def test_header_row_and_unquoted_commas_are_read(tmp_path: Path, files: SimpleNamespace) -> None:
    write_food101(tmp_path / "food", files, header=True)
    csv_path = tmp_path / "food" / "texts" / "test_titles.csv"
    csv_path.write_text(csv_path.read_text() + "apple_pie_10.jpg,Pie, with cream, and more,apple_pie\n")
    samples = list(Food101Adapter(str(tmp_path / "food")).samples())
    assert len(samples) == 7 and samples[0].sample_id == "train/apple_pie_0.jpg"
    assert samples[-1].text == "Pie, with cream, and more" and samples[-1].label == (0,)


def test_check_and_extraction_count_every_absence(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable, run_evaluate: Callable
) -> None:
    write_food101(tmp_path / "food", files)
    adapter = Food101Adapter(str(tmp_path / "food"))
    report = check_dataset(adapter, str(tmp_path / "food"), progress=False)
    assert {split: c.samples for split, c in report.splits.items()} == {"train": 3, "val": 1, "test": 2}
    assert report.overall == SplitCounts(
        samples=6, image_ok=4, image_missing=1, image_unreadable=1, empty_text=1
    )
    assert report.labels["train", "baby_back_ribs"] == 2
    assert report.notes == {"images in images/train without a row in texts/train_titles.csv (not samples)": 1}

    result = run_check("food101", tmp_path / "food")
    assert result.exit_code == 0, result.output
    assert "baby_back_ribs_1.jpg" in result.output

    extracted = run_extract(adapter)
    assert (adapter.info.label_kind, adapter.info.metric) == ("single", "accuracy")
    assert set(run_evaluate(adapter)) == {"accuracy"}  # check -> extract -> evaluate, end to end
    assert extracted.n_rows == 6
    assert dict(extracted.absent) == {
        ("image", "missing file"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_unknown_class_wrong_root_and_no_val(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no images/train under" in refused(run_check("food101", tmp_path))
    write_food101(tmp_path / "food", files)
    assert "split val has no samples" in refused(run_check("food101", tmp_path / "food", "val_percent=0"))
    assert "whole percentage" in refused(run_check("food101", tmp_path / "food", "val_percent=150"))
    with open(tmp_path / "food" / "texts" / "test_titles.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["pizza_1.jpg", "Pizza", "pizza"])
    line = refused(run_check("food101", tmp_path / "food"))
    assert "texts/test_titles.csv line 3: label 'pizza' is not one of apple_pie, baby_back_ribs" in line


def test_a_bom_stays_out_of_the_first_file_name(tmp_path: Path, files: SimpleNamespace) -> None:
    write_food101(tmp_path / "food", files)
    titles = tmp_path / "food" / "texts" / "train_titles.csv"
    titles.write_bytes(b"\xef\xbb\xbf" + titles.read_bytes())  # as Excel's "CSV UTF-8" saves it
    adapter = Food101Adapter(str(tmp_path / "food"))
    assert next(adapter.samples()).sample_id == "train/apple_pie_0.jpg"
    report = check_dataset(adapter, str(tmp_path / "food"), progress=False)
    assert (report.overall.image_ok, report.overall.image_missing) == (4, 1)  # only baby_back_ribs_1.jpg
