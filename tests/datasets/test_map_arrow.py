"""MAP / DCP arrow files: the column names `make_arrow.py` writes, lazy picklable row images."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.map_arrow import FOOD101_CLASSES, ArrowRowImage
from pipeline.data.mmimdb import GENRES
from pipeline.data.registry import get_adapter


def multi_hot(*genres: str) -> list[int]:
    return [int(genre in genres) for genre in GENRES]


def write_arrow(path: Path, batches: list[dict[str, list]]) -> None:
    """An Arrow IPC file (RecordBatchFileWriter, as make_arrow.py writes) of one or more batches."""
    tables = [pa.table(batch) for batch in batches]
    with pa.OSFile(str(path), "wb") as sink, pa.RecordBatchFileWriter(sink, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table)


def mmimdb_rows(files: SimpleNamespace, ids: list[str], images: list[bytes | None]) -> dict[str, list]:
    return {
        "image": images,
        "plots": [[f"plot of {movie}", "another plot"] for movie in ids],
        "label": [multi_hot("Drama", "War") for _ in ids],
        "genres": [["Drama", "War", "Reality-TV"] for _ in ids],
        "image_id": ids,
        "split": ["train"] * len(ids),
    }


def write_mmimdb_arrows(root: Path, files: SimpleNamespace) -> None:
    root.mkdir(parents=True)
    good = files.encoded()
    write_arrow(  # two batches, so rows map onto the right batch
        root / "mmimdb_train.arrow",
        [mmimdb_rows(files, ["0001", "0002"], [good, None]), mmimdb_rows(files, ["0003"], [b"garbage"])],
    )
    dev = mmimdb_rows(files, ["0004"], [good])
    dev["plots"] = [["", "  "]]
    write_arrow(root / "mmimdb_dev.arrow", [dev])
    write_arrow(
        root / "mmimdb_test.arrow", [mmimdb_rows(files, ["0005", "0006"], [good, files.encoded((0, 0, 255))])]
    )


def test_mmimdb_arrow_rows_texts_and_labels(tmp_path: Path, files: SimpleNamespace) -> None:
    write_mmimdb_arrows(tmp_path / "arrows", files)
    adapter = get_adapter("mmimdb-arrow", str(tmp_path / "arrows"))
    assert adapter.options() == {"dataset": "mmimdb"}
    assert adapter.info.label_kind == "multi" and adapter.info.metric == "f1_macro"
    samples = list(adapter.samples())
    assert [(s.sample_id, s.split) for s in samples] == [
        ("train/0001", "train"),
        ("train/0002", "train"),
        ("train/0003", "train"),
        ("dev/0004", "val"),
        ("test/0005", "test"),
        ("test/0006", "test"),
    ]
    assert samples[0].label == (GENRES.index("Drama"), GENRES.index("War"))
    assert samples[0].text == "plot of 0001" and samples[3].text is None
    assert samples[1].image is None  # a null image cell: not in the raw data
    ref = samples[5].image
    assert isinstance(ref, ArrowRowImage) and ref.row == 1
    assert pickle.loads(pickle.dumps(ref)) == ref and len(pickle.dumps(ref)) < 300  # no image bytes inside
    assert ref.open().convert("RGB").getpixel((0, 0))[2] > 200  # the blue poster of row 1
    assert samples[2].image.describe().endswith("mmimdb_train.arrow#row=2")


def test_check_and_extraction_through_a_worker_process(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable, run_evaluate: Callable
) -> None:
    write_mmimdb_arrows(tmp_path / "arrows", files)
    adapter = get_adapter("mmimdb-arrow", str(tmp_path / "arrows"))
    report = check_dataset(adapter, str(tmp_path / "arrows"), progress=False)
    assert report.overall == SplitCounts(
        samples=6, image_ok=4, image_unreadable=1, image_absent=1, empty_text=1
    )
    assert report.labels["val", "War"] == 1
    assert run_check("mmimdb-arrow", tmp_path / "arrows").exit_code == 0

    extracted = run_extract(adapter, workers=1)  # image refs are pickled into the loader worker
    assert (adapter.info.label_kind, adapter.info.metric) == ("multi", "f1_macro")
    assert set(run_evaluate(adapter)) == {
        "f1_macro",
        "f1_micro",
        "f1_weighted",
        "f1_samples",
    }  # check -> extract -> evaluate, end to end
    assert extracted.n_rows == 6
    assert dict(extracted.absent) == {
        ("image", "not in raw data"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_food101_labels_map_from_maps_class_order_to_sorted_names(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    root = tmp_path / "food"
    root.mkdir()
    for split, labels in (("train", [0, 71]), ("val", [1]), ("test", [100])):
        rows = {
            "image": [files.encoded()] * len(labels),
            "text": [[f"title {n}"] for n in labels],
            "label": labels,
            "image_id": [f"x_{n}.jpg" for n in labels],
            "split": [split] * len(labels),
        }
        write_arrow(root / f"food101_{split}.arrow", [rows])
    adapter = get_adapter("food101-arrow", str(root))
    assert adapter.info.classes == FOOD101_CLASSES
    names = [adapter.info.classes[s.label[0]] for s in adapter.samples()]
    assert names == ["frozen_yogurt", "apple_pie", "tacos", "baklava"]  # MAP's class_idx.json order


def test_hatememes_arrow_has_no_id_column(tmp_path: Path, files: SimpleNamespace) -> None:
    root = tmp_path / "hm"
    root.mkdir()
    for split in ("train", "dev", "test"):
        rows = {"image": [files.encoded()], "text": [["a meme"]], "label": [1], "split": [split]}
        write_arrow(root / f"hatememes_{split}.arrow", [rows])
    adapter = get_adapter("hatememes-arrow", str(root))
    assert adapter.info.metric == "auroc"
    assert [(s.sample_id, s.split, s.label) for s in adapter.samples()] == [
        ("train/0", "train", (1,)),
        ("dev/0", "val", (1,)),
        ("test/0", "test", (1,)),
    ]


def test_bad_labels_missing_columns_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no mmimdb_train.arrow under" in refused(run_check("mmimdb-arrow", tmp_path))
    write_mmimdb_arrows(tmp_path / "arrows", files)
    bad = mmimdb_rows(files, ["0007"], [files.encoded()])
    bad["label"] = [[1, 0, 2]]
    write_arrow(tmp_path / "arrows" / "mmimdb_test.arrow", [bad])
    line = refused(run_check("mmimdb-arrow", tmp_path / "arrows"))
    assert "mmimdb_test.arrow row 0: label [1, 0, 2] is not a 0/1 list over the 23 genres" in line

    del bad["plots"]
    write_arrow(tmp_path / "arrows" / "mmimdb_test.arrow", [bad])
    assert "has no column 'plots'" in refused(run_check("mmimdb-arrow", tmp_path / "arrows"))
    (tmp_path / "arrows" / "mmimdb_test.arrow").write_bytes(b"not arrow")
    assert "is not an Arrow IPC file" in refused(run_check("mmimdb-arrow", tmp_path / "arrows"))
    (tmp_path / "arrows" / "mmimdb_test.arrow").unlink()
    assert "no mmimdb_test.arrow under" in refused(run_check("mmimdb-arrow", tmp_path / "arrows"))


def test_each_arrow_dataset_is_registered_under_the_name_its_store_has(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    """Extraction names a store by the adapter's `info.name`, and every later step (train,
    restore, evaluate) looks it up by the name the user passed. Before, `map-arrow` wrote a store
    named `mmimdb-arrow` that `restore --dataset map-arrow` never found."""
    root = tmp_path / "arrows"
    write_mmimdb_arrows(root, files)  # one folder holding all three, as make_arrow.py leaves it
    for split in ("train", "val", "test"):
        rows = {
            "image": [files.encoded()],
            "text": [["t"]],
            "label": [0],
            "image_id": ["x.jpg"],
            "split": [split],
        }
        write_arrow(root / f"food101_{split}.arrow", [rows])
    for split in ("train", "dev", "test"):
        rows = {"image": [files.encoded()], "text": [["a meme"]], "label": [1], "split": [split]}
        write_arrow(root / f"hatememes_{split}.arrow", [rows])
    for name in ("mmimdb-arrow", "food101-arrow", "hatememes-arrow"):
        assert get_adapter(name, str(root)).info.name == name
