"""MM-IMDb: the original archive layout and MAP's rearrangement, through adapter, check and extraction."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.mmimdb import GENRES, MmImdbAdapter
from pipeline.data.registry import get_adapter
from pipeline.errors import DatasetLayoutError

MOVIES = {  # id: (split.json key, plot, genres, image)
    "0000001": ("train", ["A family drama.", "Second plot."], ["Drama", "Comedy"], "good"),
    "0000002": ("train", ["   "], ["Horror", "Reality-TV"], "good"),
    "0000003": ("train", ["A talk show."], ["Talk-Show"], "garbage"),
    "0000004": ("dev", ["Space war."], ["Sci-Fi", "War"], "missing"),
    "0000005": ("test", ["", "A noir."], ["Film-Noir", "Crime"], "truncated"),
    "0000006": ("test", ["A western."], ["Western"], "good"),
}


def write_original(root: Path, files: SimpleNamespace) -> Path:
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    writers = {"good": files.image, "garbage": files.garbage, "truncated": files.truncated}
    for movie, (split, plot, genres, image) in MOVIES.items():
        splits[split].append(movie)
        (root / "dataset").mkdir(parents=True, exist_ok=True)
        (root / "dataset" / f"{movie}.json").write_text(
            json.dumps({"plot": plot, "genres": genres, "year": 1999})
        )
        if image in writers:
            writers[image](root / "dataset" / f"{movie}.jpeg")
    (root / "split.json").write_text(json.dumps(splits))
    return root


def to_map_layout(original: Path, root: Path) -> Path:
    """MAP's DATA.md layout: the same files moved to images/ and labels/."""
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    shutil.copy(original / "split.json", root / "split.json")
    for path in (original / "dataset").iterdir():
        shutil.copy(path, root / ("labels" if path.suffix == ".json" else "images") / path.name)
    return root


def test_original_layout_labels_texts_and_splits(tmp_path: Path, files: SimpleNamespace) -> None:
    adapter = get_adapter("mmimdb", str(write_original(tmp_path / "mmimdb", files)))
    assert adapter.info.label_kind == "multi" and adapter.info.metric == "f1_macro"
    assert adapter.info.classes == GENRES and len(GENRES) == 23
    samples = list(adapter.samples())
    assert [s.sample_id for s in samples] == list(MOVIES)
    assert [s.split for s in samples] == ["train", "train", "train", "val", "test", "test"]
    assert samples[0].label == (GENRES.index("Drama"), GENRES.index("Comedy"))
    assert samples[1].label == (GENRES.index("Horror"),)  # Reality-TV is not one of the 23
    assert samples[2].label == ()
    assert samples[0].text == "A family drama." and samples[4].text == "A noir."  # first non-blank plot
    assert samples[1].text is None
    assert samples[0].image.describe().endswith("dataset/0000001.jpeg")


def test_map_layout_gives_the_same_samples(tmp_path: Path, files: SimpleNamespace) -> None:
    original = MmImdbAdapter(str(write_original(tmp_path / "original", files)))
    rearranged = MmImdbAdapter(str(to_map_layout(tmp_path / "original", tmp_path / "map")))
    assert (original.layout, rearranged.layout) == ("original", "map")
    pairs = zip(original.samples(), rearranged.samples(), strict=True)
    for a, b in pairs:
        assert (a.sample_id, a.split, a.text, a.label) == (b.sample_id, b.split, b.text, b.label)
    assert next(iter(rearranged.samples())).image.describe().endswith("images/0000001.jpeg")


def test_plots_all_joins_every_plot(tmp_path: Path, files: SimpleNamespace) -> None:
    adapter = MmImdbAdapter(str(write_original(tmp_path / "mmimdb", files)), plots="all")
    assert next(iter(adapter.samples())).text == "A family drama. Second plot."


def test_check_counts_absences_and_genres_outside_the_23(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable
) -> None:
    root = write_original(tmp_path / "mmimdb", files)
    report = check_dataset(MmImdbAdapter(str(root)), str(root), progress=False)
    assert {split: counts.samples for split, counts in report.splits.items()} == {
        "train": 3,
        "val": 1,
        "test": 2,
    }
    assert report.overall == SplitCounts(
        samples=6, image_ok=3, image_missing=1, image_unreadable=2, empty_text=1, unlabelled=1
    )
    assert report.labels["train", "Drama"] == 1 and report.labels["test", "Film-Noir"] == 1
    assert report.notes == {
        "genre 'Reality-TV' is not one of the 23 labels (ignored)": 1,
        "genre 'Talk-Show' is not one of the 23 labels (ignored)": 1,
    }
    assert not report.problems

    result = run_check("mmimdb", root)
    assert result.exit_code == 0, result.output
    assert "mmimdb" in result.output and "Reality-TV" in result.output and "0000004.jpeg" in result.output


def test_extraction_keeps_every_movie_and_counts_absences(
    tmp_path: Path, files: SimpleNamespace, run_extract: Callable, run_evaluate: Callable
) -> None:
    adapter = MmImdbAdapter(str(write_original(tmp_path / "mmimdb", files)))
    result = run_extract(adapter)
    assert result.n_rows == len(MOVIES)
    assert dict(result.absent) == {
        ("image", "unreadable"): 2,
        ("image", "missing file"): 1,
        ("text", "empty or missing"): 1,
    }
    assert (adapter.info.label_kind, adapter.info.metric) == ("multi", "f1_macro")
    assert set(run_evaluate(adapter)) == {"f1_macro", "f1_micro", "f1_weighted", "f1_samples"}


def test_wrong_root_missing_files_and_bad_split(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    (tmp_path / "empty").mkdir()
    assert "no split.json under" in refused(run_check("mmimdb", tmp_path / "empty"))

    root = write_original(tmp_path / "mmimdb", files)
    (root / "dataset" / "0000004.json").unlink()
    line = refused(run_check("mmimdb", root))
    assert "no dataset/0000004.json under" in line and "re-extract" in line

    (root / "split.json").write_text(json.dumps({"train": [], "test": []}))
    with pytest.raises(DatasetLayoutError, match=r"has no `dev` id list"):
        MmImdbAdapter(str(root))
    shutil.rmtree(root / "dataset")
    (root / "split.json").write_text(json.dumps({"train": [], "dev": [], "test": []}))
    with pytest.raises(DatasetLayoutError, match=r"no dataset/ nor images/ \+ labels/"):
        MmImdbAdapter(str(root))
    assert "has no option 'colour'" in refused(run_check("mmimdb", root, "colour=red"))
