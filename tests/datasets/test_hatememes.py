"""Hateful Memes: img/ + train/dev/test_seen jsonl files, binary labels, AUROC."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.hatememes import HatefulMemesAdapter
from pipeline.data.registry import get_adapter

SPLITS = {
    "train.jsonl": [
        {"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character not their color"},
        {"id": 23058, "img": "img/23058.png", "label": 1, "text": ""},
        {"id": 13894, "img": "img/13894.png", "label": 0, "text": "putting bows on your pet"},
    ],
    "dev.jsonl": [
        {"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a shooting range"}
    ],
    "test_seen.jsonl": [
        {"id": 16395, "img": "img/16395.png", "label": 1, "text": "handjobs sold seperately"},
        {"id": 37405, "img": "img/37405.png", "label": 0, "text": "introducing fidget spinner for women"},
    ],
}


def write_memes(root: Path, files: SimpleNamespace, dev_name: str = "dev.jsonl") -> None:
    root.mkdir(parents=True)
    for name, records in SPLITS.items():
        target = dev_name if name == "dev.jsonl" else name
        (root / target).write_text("\n".join(json.dumps(record) for record in records) + "\n")
    for meme in ("42953", "23058", "08291", "37405"):
        files.image(root / "img" / f"{meme}.png")
    files.truncated(root / "img" / "16395.png")  # 13894 has no file


def test_splits_labels_and_metric(tmp_path: Path, files: SimpleNamespace) -> None:
    write_memes(tmp_path / "hm", files)
    adapter = get_adapter("hatememes", str(tmp_path / "hm"))
    assert adapter.info.label_kind == "single" and adapter.info.metric == "auroc"
    assert adapter.info.classes == ("not hateful", "hateful")
    samples = list(adapter.samples())
    assert [(s.sample_id, s.split, s.label) for s in samples] == [
        ("42953", "train", (0,)),
        ("23058", "train", (1,)),
        ("13894", "train", (0,)),
        ("8291", "val", (1,)),
        ("16395", "test", (1,)),
        ("37405", "test", (0,)),
    ]
    assert samples[3].image.describe().endswith("img/08291.png")


def test_phase_two_dev_seen_is_the_val_split(tmp_path: Path, files: SimpleNamespace) -> None:
    write_memes(tmp_path / "hm", files, dev_name="dev_seen.jsonl")
    assert [s.split for s in HatefulMemesAdapter(str(tmp_path / "hm")).samples()].count("val") == 1


def test_check_and_extraction(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable, run_evaluate: Callable
) -> None:
    write_memes(tmp_path / "hm", files)
    adapter = HatefulMemesAdapter(str(tmp_path / "hm"))
    report = check_dataset(adapter, str(tmp_path / "hm"), progress=False)
    assert report.overall == SplitCounts(
        samples=6, image_ok=4, image_missing=1, image_unreadable=1, empty_text=1
    )
    assert report.labels["test", "hateful"] == 1
    assert run_check("hatememes", tmp_path / "hm").exit_code == 0

    extracted = run_extract(adapter)
    assert (adapter.info.label_kind, adapter.info.metric) == ("single", "auroc")
    assert set(run_evaluate(adapter)) == {"accuracy", "auroc"}  # check -> extract -> evaluate, end to end
    assert extracted.n_rows == 6
    assert dict(extracted.absent) == {
        ("image", "missing file"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_bad_label_bad_line_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no img under" in refused(run_check("hatememes", tmp_path))
    write_memes(tmp_path / "hm", files)
    train = tmp_path / "hm" / "train.jsonl"
    train.write_text(
        train.read_text() + json.dumps({"id": 1, "img": "img/1.png", "label": 2, "text": "x"}) + "\n"
    )
    assert "train.jsonl line 4: label 2 is not one of 0, 1" in refused(
        run_check("hatememes", tmp_path / "hm")
    )
    train.write_text("{not json\n")
    assert "train.jsonl line 1 is not a JSON object" in refused(run_check("hatememes", tmp_path / "hm"))
    (tmp_path / "hm" / "test_seen.jsonl").unlink()
    assert "no test_seen.jsonl under" in refused(run_check("hatememes", tmp_path / "hm"))


def test_a_bom_is_dropped_and_a_latin1_byte_names_the_file_and_line(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    write_memes(tmp_path / "hm", files)
    train = tmp_path / "hm" / "train.jsonl"
    train.write_bytes(b"\xef\xbb\xbf" + train.read_bytes())  # as Windows editors save it
    samples = list(HatefulMemesAdapter(str(tmp_path / "hm")).samples())
    assert [s.sample_id for s in samples[:3]] == ["42953", "23058", "13894"]

    test = tmp_path / "hm" / "test_seen.jsonl"
    test.write_bytes(test.read_bytes() + b'{"id": 1, "img": "img/1.png", "label": 0, "text": "caf\xe9"}\n')
    line = refused(run_check("hatememes", tmp_path / "hm"))
    assert "test_seen.jsonl line 3 is not UTF-8 text (byte 0xe9): save the file as UTF-8" in line
