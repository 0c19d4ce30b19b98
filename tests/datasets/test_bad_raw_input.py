"""Bad raw input of the plain jsonl layout, and a --root that is a file: one error line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.data.adapter import DatasetInfo
from pipeline.data.jsonl import JsonlAdapter
from pipeline.errors import DatasetLayoutError
from stores.fs import read_json

META = {"label_kind": "single", "classes": ["a", "b"]}
RECORDS = [
    {"id": "0", "split": "train", "text": "thing 0", "image": "images/0.jpg", "label": "a"},
    {"id": "1", "split": "val", "text": "thing 1", "image": "images/1.jpg", "label": "b"},
    {"id": "2", "split": "test", "text": "thing 2", "image": "images/2.jpg", "label": "a"},
]


def write_jsonl(root: Path, files: SimpleNamespace, lines: list[bytes] | None = None) -> Path:
    """meta.json, three good images and samples.jsonl (`lines` replaces the good records when given)."""
    (root / "meta.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps(META))
    for number in range(3):
        files.image(root / "images" / f"{number}.jpg")
    rows = lines if lines is not None else [json.dumps(record).encode() for record in RECORDS]
    (root / "samples.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    return root


def good_lines() -> list[bytes]:
    return [json.dumps(record).encode() for record in RECORDS]


def layout_error(root: Path) -> str:
    """The one-line layout error of listing the jsonl layout at `root`."""
    with pytest.raises(DatasetLayoutError) as caught:
        list(JsonlAdapter(str(root)).samples())
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (
            '{"label_kind": "binary", "classes": ["a", "b"]}',
            "label_kind 'binary' is not one of single, multi, none",
        ),
        ('{"label_kind": "single", classes', "meta.json under"),
        ('["a", "b"]', "meta.json under"),
        ('{"classes": "a,b"}', "`classes` must be a list of names"),
        ('{"classes": ["a"], "splits": []}', "`splits` must be a non-empty list of names"),
        ('{"classes": ["a"], "metric": "recall"}', "metric 'recall' is not one of accuracy, f1_macro, auroc"),
    ],
)
def test_a_bad_meta_json_is_one_line_naming_the_fix(
    tmp_path: Path, files: SimpleNamespace, meta: str, expected: str
) -> None:
    write_jsonl(tmp_path / "j", files)
    (tmp_path / "j" / "meta.json").write_text(meta)
    message = layout_error(tmp_path / "j")
    assert expected in message and "meta.json" in message and ": fix " in message


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (  # AUROC of class 1's probability: NaN on 3 classes, 0.5 for a perfect model on classes 0 and 2
            {"label_kind": "single", "classes": ["a", "b", "c"], "metric": "auroc"},
            "meta.json metric 'auroc' of dataset 'jsonl' needs a single-label task with exactly two classes, "
            'this one has 3: fix `metric` in meta.json, e.g. "metric": "accuracy"',
        ),
        (
            {"label_kind": "single", "classes": ["a"], "metric": "auroc"},
            "metric 'auroc' of dataset 'jsonl' needs a single-label task with exactly two classes, this one has 1",
        ),
        (
            {"label_kind": "multi", "classes": ["a", "b"], "metric": "auroc"},
            "metric 'auroc' of dataset 'jsonl' is not computed for a multi-label task",
        ),
        (  # the evaluation computed F1 averages only, and failed on a KeyError
            {"label_kind": "multi", "classes": ["a", "b"], "metric": "accuracy"},
            "meta.json metric 'accuracy' of dataset 'jsonl' is not computed for a multi-label task, which is "
            'scored by F1 over its classes: fix `metric` in meta.json, e.g. "metric": "f1_macro"',
        ),
        (
            {"label_kind": "single", "classes": ["a", "b"], "metric": "f1_macro"},
            "metric 'f1_macro' of dataset 'jsonl' is not computed for a single-label task, which is scored by "
            'accuracy: fix `metric` in meta.json, e.g. "metric": "accuracy"',
        ),
    ],
)
def test_a_headline_metric_the_evaluation_cannot_compute_is_refused(
    tmp_path: Path, files: SimpleNamespace, meta: dict[str, object], expected: str
) -> None:
    write_jsonl(tmp_path / "j", files)
    (tmp_path / "j" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetLayoutError) as caught:
        JsonlAdapter(str(tmp_path / "j"))
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_a_refused_metric_is_one_error_line_through_the_cli(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    write_jsonl(tmp_path / "j", files)
    meta = {"label_kind": "single", "classes": ["a", "b", "c"], "metric": "auroc"}
    (tmp_path / "j" / "meta.json").write_text(json.dumps(meta))
    line = refused(run_check("jsonl", tmp_path / "j"))
    assert "metric 'auroc' of dataset 'jsonl' needs a single-label task with exactly two classes" in line


@pytest.mark.parametrize(
    ("meta", "metric"),
    [
        ({"label_kind": "single", "classes": ["a", "b"], "metric": "auroc"}, "auroc"),
        ({"label_kind": "single", "classes": ["a", "b", "c"]}, "accuracy"),
        ({"label_kind": "multi", "classes": ["a", "b", "c"]}, "f1_macro"),
        ({"label_kind": "none"}, "none"),
    ],
)
def test_a_computable_metric_is_kept(
    tmp_path: Path, files: SimpleNamespace, meta: dict[str, object], metric: str
) -> None:
    write_jsonl(tmp_path / "j", files)
    (tmp_path / "j" / "meta.json").write_text(json.dumps(meta))
    assert JsonlAdapter(str(tmp_path / "j")).info.metric == metric


def test_dataset_info_itself_refuses_a_metric_it_cannot_score() -> None:
    """The rule holds for every adapter, not only the jsonl layout."""
    with pytest.raises(DatasetLayoutError) as caught:
        DatasetInfo(name="x", label_kind="single", metric="auroc", classes=("a", "b", "c"))
    assert str(caught.value) == (
        "dataset 'x': metric 'auroc' needs a single-label task with exactly two classes, this one has 3: "
        "use 'accuracy'"
    )
    with pytest.raises(DatasetLayoutError) as caught:
        DatasetInfo(name="x", label_kind="multi", metric="accuracy", classes=("a", "b"))
    assert str(caught.value) == (
        "dataset 'x': metric 'accuracy' is not computed for a multi-label task, which is scored by F1 over "
        "its classes: use 'f1_macro'"
    )
    assert DatasetInfo(name="x", label_kind="single", metric="auroc", classes=("a", "b")).metric == "auroc"


def test_a_malformed_meta_json_names_its_position_through_the_cli(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    write_jsonl(tmp_path / "j", files)
    (tmp_path / "j" / "meta.json").write_text('{"label_kind": "single", classes')
    line = refused(run_check("jsonl", tmp_path / "j"))
    assert "meta.json under" in line and "is not valid JSON" in line and "line 1 column 26" in line


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (b"[1, 2]", "samples.jsonl line 2 is not a JSON object (it is a list): fix that line"),
        (b'"just text"', "samples.jsonl line 2 is not a JSON object (it is a str): fix that line"),
        (
            b'{"id": "9", "text": "x"',
            "samples.jsonl line 2 is not a JSON object (Expecting ',' delimiter at character 24): fix that line",
        ),
        (
            b'{"id": "9", "text": "x"}',
            "samples.jsonl line 2 has no `split`: give every line an `id` and a `split`",
        ),
        (b'{"split": "train"}', "samples.jsonl line 2 has no `id`: give every line an `id` and a `split`"),
        (
            b'{"id": null, "split": "train"}',
            "samples.jsonl line 2: id None is not a string or a whole number",
        ),
        (b'{"id": "9", "split": "train", "text": ["x"]}', "samples.jsonl line 2: text ['x'] is not a string"),
        (b'{"id": "9", "split": "train", "image": 7}', "samples.jsonl line 2: image 7 is not a path"),
    ],
)
def test_a_bad_line_is_one_error_naming_the_line(
    tmp_path: Path, files: SimpleNamespace, bad: bytes, expected: str
) -> None:
    lines = good_lines()
    write_jsonl(tmp_path / "j", files, [lines[0], bad, *lines[1:]])
    assert expected in layout_error(tmp_path / "j")


def test_a_number_text_is_its_digits_and_null_text_is_absent(tmp_path: Path, files: SimpleNamespace) -> None:
    lines = good_lines()
    extra = [
        b'{"id": "3", "split": "train", "text": 123, "label": "a"}',
        b'{"id": 4, "split": "train", "text": 2.5, "label": "b"}',
        b'{"id": "5", "split": "test", "text": null, "label": "b"}',
    ]
    write_jsonl(tmp_path / "j", files, [*lines, *extra])
    samples = list(JsonlAdapter(str(tmp_path / "j")).samples())
    assert [(s.sample_id, s.text) for s in samples[3:]] == [("3", "123"), ("4", "2.5"), ("5", None)]


def test_a_latin1_byte_names_the_line_and_a_bom_is_dropped(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    lines = good_lines()
    write_jsonl(tmp_path / "j", files, [b"\xef\xbb\xbf" + lines[0], *lines[1:]])
    assert [s.sample_id for s in JsonlAdapter(str(tmp_path / "j")).samples()] == ["0", "1", "2"]

    latin1 = b'{"id": "9", "split": "train", "text": "caf\xe9", "label": "a"}'
    write_jsonl(tmp_path / "j", files, [*lines, latin1])
    line = refused(run_check("jsonl", tmp_path / "j"))
    assert "samples.jsonl line 4 is not UTF-8 text (byte 0xe9)" in line and "save the file as UTF-8" in line


def test_a_split_outside_meta_splits_is_refused_naming_the_line(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    lines = good_lines()
    dev = b'{"id": "9", "split": "dev", "text": "x", "label": "a"}'
    write_jsonl(tmp_path / "j", files, [*lines, dev])
    message = layout_error(tmp_path / "j")
    assert "samples.jsonl line 4: split 'dev' is not one of train, val, test" in message
    assert "add it to `splits` in meta.json" in message
    assert "split 'dev' is not one of train, val, test" in refused(run_check("jsonl", tmp_path / "j"))

    (tmp_path / "j" / "meta.json").write_text(json.dumps({**META, "splits": ["train", "val", "test", "dev"]}))
    assert [s.split for s in JsonlAdapter(str(tmp_path / "j")).samples()] == ["train", "val", "test", "dev"]


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [("jsonl", "no meta.json under"), ("mmimdb", "no split.json under"), ("n24news", "no news/")],
)
def test_a_root_that_is_a_file_is_the_missing_file_line(
    tmp_path: Path, run_check: Callable, refused: Callable, dataset: str, expected: str
) -> None:
    (tmp_path / "afile").write_text("{}\n")
    line = refused(run_check(dataset, tmp_path / "afile"))
    assert expected in line and str(tmp_path / "afile") in line and "as --root" in line


def test_read_json_under_a_file_is_no_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("{}\n")
    assert read_json(str(tmp_path / "afile" / "meta.json")) is None
