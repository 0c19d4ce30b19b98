"""N24News: three JSON article lists + imgs/, sections as labels, configurable text fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.data.check import SplitCounts, check_dataset
from pipeline.data.n24news import N24NewsAdapter
from pipeline.data.registry import get_adapter
from pipeline.errors import ConfigError


def article(image_id: str, section: str, headline: str = "A headline", body: str = "Body text.") -> dict:
    return {
        "headline": headline,
        "abstract": "An abstract." if headline else "",
        "caption": "A caption." if headline else " ",
        "body": body,
        "image_id": image_id,
        "section": section,
        "article_url": "https://example.org/a",
    }


def write_n24news(root: Path, files: SimpleNamespace) -> None:
    news = {
        "train": [article("a1", "Sports"), article("a2", "Arts", headline=""), article("a3", "Science")],
        "dev": [article("d1", "Sports")],
        "test": [article("t1", "Arts"), article("t2", "Science")],
    }
    (root / "news").mkdir(parents=True)
    for name, articles in news.items():
        (root / "news" / f"nytimes_{name}.json").write_text(json.dumps(articles))
    for image_id in ("a1", "a2", "d1"):
        files.image(root / "imgs" / f"{image_id}.jpg")
    files.truncated(root / "imgs" / "t1.jpg")  # a3 and t2 have no image file


def test_sections_texts_and_splits(tmp_path: Path, files: SimpleNamespace) -> None:
    write_n24news(tmp_path / "n24", files)
    adapter = get_adapter("n24news", str(tmp_path / "n24"))
    assert adapter.info.label_kind == "single" and adapter.info.metric == "accuracy"
    assert adapter.info.classes == ("Arts", "Science", "Sports")
    samples = list(adapter.samples())
    assert [(s.sample_id, s.split, s.label) for s in samples] == [
        ("a1", "train", (2,)),
        ("a2", "train", (0,)),
        ("a3", "train", (1,)),
        ("d1", "val", (2,)),
        ("t1", "test", (0,)),
        ("t2", "test", (1,)),
    ]
    assert samples[0].text == "A headline An abstract. A caption."
    assert samples[0].image.describe().endswith("imgs/a1.jpg")

    bodies = N24NewsAdapter(str(tmp_path / "n24"), text_fields="headline,body")
    assert next(iter(bodies.samples())).text == "A headline Body text."
    assert bodies.options() == {"text_fields": ["headline", "body"]}
    with pytest.raises(ConfigError, match=r"text_fields=.*choose from headline, abstract, caption, body"):
        N24NewsAdapter(str(tmp_path / "n24"), text_fields=["title"])


def test_check_and_extraction(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, run_extract: Callable, run_evaluate: Callable
) -> None:
    write_n24news(tmp_path / "n24", files)
    adapter = N24NewsAdapter(str(tmp_path / "n24"))
    report = check_dataset(adapter, str(tmp_path / "n24"), progress=False)
    assert report.overall == SplitCounts(
        samples=6, image_ok=3, image_missing=2, image_unreadable=1, empty_text=1
    )
    assert report.labels["test", "Science"] == 1 and not report.problems
    result = run_check("n24news", tmp_path / "n24", "text_fields=headline,body")
    assert result.exit_code == 0, result.output

    extracted = run_extract(adapter)
    assert (adapter.info.label_kind, adapter.info.metric) == ("single", "accuracy")
    assert set(run_evaluate(adapter)) == {"accuracy"}  # check -> extract -> evaluate, end to end
    assert extracted.n_rows == 6
    assert dict(extracted.absent) == {
        ("image", "missing file"): 2,
        ("image", "unreadable"): 1,
        ("text", "empty or missing"): 1,
    }


def test_unknown_section_missing_split_file_and_wrong_root(
    tmp_path: Path, files: SimpleNamespace, run_check: Callable, refused: Callable
) -> None:
    assert "no news/nytimes_train.json under" in refused(run_check("n24news", tmp_path))
    write_n24news(tmp_path / "n24", files)
    dev = tmp_path / "n24" / "news" / "nytimes_dev.json"
    dev.write_text(json.dumps([article("d1", "Sports"), article("d2", "Weather")]))
    line = refused(run_check("n24news", tmp_path / "n24"))
    assert "news/nytimes_dev.json article 1: label 'Weather' is not one of Arts, Science, Sports" in line
    dev.unlink()
    assert "no news/nytimes_dev.json under" in refused(run_check("n24news", tmp_path / "n24"))
