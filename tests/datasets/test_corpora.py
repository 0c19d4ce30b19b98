"""Mid-stage corpora: img2dataset webdataset shards (streamed, images read by offset) and COCO captions."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.coco import CocoAdapter
from pipeline.data.registry import get_adapter
from pipeline.data.webdataset import TarSliceImage, WebDatasetAdapter
from pipeline.errors import ConfigError, DatasetLayoutError


def write_shard(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_shards(root: Path, files: SimpleNamespace) -> None:
    """What img2dataset writes: <key>.jpg, <key>.txt, <key>.json, grouped by key."""
    meta = json.dumps({"url": "https://example.org/x.jpg", "status": "success"}).encode()
    write_shard(
        root / "00000.tar",
        [
            ("000000000.jpg", files.encoded((250, 0, 0))),
            ("000000000.txt", b"a red square on a table"),
            ("000000000.json", meta),
            ("000000001.png", files.encoded((0, 250, 0), "PNG")),
            ("000000001.txt", b"   "),
            ("000000002.jpg", b"not a jpeg"),
            ("000000002.txt", b"a broken download"),
        ],
    )
    write_shard(
        root / "00001.tar",
        [
            ("000010000.txt", "a caption without its image: caf\u00e9".encode()),
            ("000010000.json", meta),
            ("000010001.jpg", files.encoded((0, 0, 250))),
            ("000010001.txt", b"a blue square"),
        ],
    )
    (root / "00000.parquet").write_bytes(b"img2dataset metadata, not a shard")


def test_webdataset_keys_texts_and_offset_images(tmp_path: Path, files: SimpleNamespace) -> None:
    write_shards(tmp_path / "cc", files)
    adapter = get_adapter("webdataset", str(tmp_path / "cc"))
    assert adapter.info.name == "webdataset" and adapter.info.splits == ("corpus",)
    assert adapter.info.label_kind == "none" and adapter.info.metric == "none"
    # A store is found by the registry name: a renamed corpus would never be found again.
    with pytest.raises(ConfigError, match="dataset webdataset has no option 'name'"):
        get_adapter("webdataset", str(tmp_path / "cc"), {"name": "cc-mini"})
    samples = list(adapter.samples())
    assert [s.sample_id for s in samples] == ["000000000", "000000001", "000000002", "000010000", "000010001"]
    assert {s.split for s in samples} == {"corpus"} and all(s.label == () for s in samples)
    assert samples[0].text == "a red square on a table" and samples[3].text.endswith("caf\u00e9")
    assert samples[3].image is None
    ref = samples[4].image
    assert isinstance(ref, TarSliceImage) and ref.describe().endswith("00001.tar#000010001.jpg")
    assert ref.open().convert("RGB").getpixel((0, 0))[2] > 200  # read from its offset, no tar scan
    assert samples[1].image.open().convert("RGB").getpixel((0, 0))[1] > 200


def test_webdataset_check_and_extraction(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable
) -> None:
    write_shards(tmp_path / "cc", files)
    adapter = WebDatasetAdapter(str(tmp_path / "cc"))
    report = check_dataset(adapter, str(tmp_path / "cc"), progress=False)
    assert report.splits["corpus"].samples == 5 and not report.labels and not report.problems
    assert report.overall == SplitCounts(
        samples=5, image_ok=3, image_unreadable=1, image_absent=1, empty_text=1
    )
    assert run_check("webdataset", tmp_path / "cc").exit_code == 0

    extracted = run_extract(adapter, workers=1)
    assert extracted.n_rows == 5
    assert dict(extracted.absent) == {
        ("image", "not in raw data"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_webdataset_truncated_shard_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no *.tar shards under" in refused(run_check("webdataset", tmp_path))
    write_shards(tmp_path / "cc", files)
    shard = tmp_path / "cc" / "00001.tar"
    shard.write_bytes(shard.read_bytes()[:1100])
    line = refused(run_check("webdataset", tmp_path / "cc"))
    assert "00001.tar is truncated or not a tar" in line and "re-download that shard" in line


@pytest.mark.parametrize("folder", ["wds[1]", "wds*x", "wds plain"])
def test_webdataset_root_is_listed_not_globbed(tmp_path: Path, files: SimpleNamespace, folder: str) -> None:
    write_shards(tmp_path / folder, files)
    for sibling in ("wds1", "wdsAx"):  # what the root would match if it were read as a glob pattern
        write_shard(tmp_path / sibling / "99999.tar", [("k.txt", b"a sibling's caption")])
    adapter = WebDatasetAdapter(str(tmp_path / folder))
    assert [shard.rsplit("/", 1)[-1] for shard in adapter.shards] == ["00000.tar", "00001.tar"]
    assert adapter.shards[0] == f"{tmp_path / folder}/00000.tar"
    assert len(list(adapter.samples())) == 5


def test_webdataset_root_that_is_a_shard_is_refused(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    write_shards(tmp_path / "cc", files)
    assert "no *.tar shards under" in refused(run_check("webdataset", tmp_path / "cc" / "00000.tar"))


def write_coco(root: Path, files: SimpleNamespace) -> None:
    captions = {
        "images": [
            {"id": 9, "file_name": "000000000009.jpg", "height": 16, "width": 24},
            {"id": 25, "file_name": "000000000025.jpg", "height": 16, "width": 24},
            {"id": 30, "file_name": "000000000030.jpg", "height": 16, "width": 24},
        ],
        "annotations": [
            {"id": 700, "image_id": 9, "caption": "A plate of food."},
            {"id": 650, "image_id": 9, "caption": "Broccoli on a plate."},
            {"id": 800, "image_id": 25, "caption": "A giraffe."},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(captions))
    files.image(root / "train2017" / "000000000009.jpg")
    files.garbage(root / "train2017" / "000000000030.jpg")  # 25 has no file


def test_coco_caption_pairs_first_captions_and_absences(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable
) -> None:
    write_coco(tmp_path / "coco", files)
    pairs = get_adapter("coco", str(tmp_path / "coco"))
    assert pairs.info.label_kind == "none" and pairs.info.splits == ("corpus",)
    assert [(s.sample_id, s.text) for s in pairs.samples()] == [
        ("train2017/9/650", "Broccoli on a plate."),
        ("train2017/9/700", "A plate of food."),
        ("train2017/25/800", "A giraffe."),
        ("train2017/30", None),  # an image without a caption is still a sample
    ]
    first = CocoAdapter(str(tmp_path / "coco"), captions="first")
    assert [(s.sample_id, s.text) for s in first.samples()] == [
        ("train2017/9", "Broccoli on a plate."),
        ("train2017/25", "A giraffe."),
        ("train2017/30", None),
    ]
    report = check_dataset(pairs, str(tmp_path / "coco"), progress=False)
    assert report.overall == SplitCounts(
        samples=4, image_ok=2, image_missing=1, image_unreadable=1, empty_text=1
    )
    assert run_check("coco", tmp_path / "coco", "captions=first").exit_code == 0

    extracted = run_extract(pairs)
    assert extracted.n_rows == 4
    assert dict(extracted.absent) == {
        ("image", "missing file"): 1,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_coco_orphan_captions_missing_subset_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no annotations/captions_train2017.json under" in refused(run_check("coco", tmp_path))
    write_coco(tmp_path / "coco", files)
    line = refused(run_check("coco", tmp_path / "coco", "subsets=train2017,val2017"))
    assert "no annotations/captions_val2017.json under" in line
    path = tmp_path / "coco" / "annotations" / "captions_train2017.json"
    payload = json.loads(path.read_text())
    payload["annotations"].append({"id": 900, "image_id": 77, "caption": "lost"})
    path.write_text(json.dumps(payload))
    with pytest.raises(DatasetLayoutError, match=r"captions of image 77 that is not in its `images` list"):
        list(CocoAdapter(str(tmp_path / "coco")).samples())
