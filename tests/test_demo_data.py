"""The demo generator: deterministic, labelled from its latent attributes, zero-shot by design."""

from __future__ import annotations

import numpy as np

from pipeline.data.demo import (
    CLS_CLASSES,
    CORPUS_TEMPLATES,
    SHAPES,
    TAG_CLASSES,
    TASK_TEMPLATES,
    SYNONYMS,
    WARM_COLOURS,
    DemoAdapter,
    DemoConfig,
)

SMALL = DemoConfig(corpus_size=300, train_size=200, val_size=50, test_size=100)


def _template_prefix(template: str) -> str:
    return template.split("{")[0]


def test_same_seed_gives_identical_samples_and_pixels() -> None:
    first = list(DemoAdapter("demo-tags", SMALL).samples())
    second = list(DemoAdapter("demo-tags", SMALL).samples())
    assert [s.text for s in first] == [s.text for s in second]
    assert [s.label for s in first] == [s.label for s in second]
    for a, b in zip(first[:20], second[:20], strict=True):
        assert np.array_equal(np.asarray(a.image.open()), np.asarray(b.image.open()))


def test_a_different_seed_gives_different_data() -> None:
    base = list(DemoAdapter("demo-cls", SMALL).samples())[:50]
    other = list(DemoAdapter("demo-cls", SMALL.model_copy(update={"seed": 1})).samples())[:50]
    assert sum(a.text != b.text for a, b in zip(base, other, strict=True)) > 40
    assert not np.array_equal(np.asarray(base[0].image.open()), np.asarray(other[0].image.open()))


def test_split_sizes_ids_and_image_size() -> None:
    samples = list(DemoAdapter("demo-cls", SMALL).samples())
    splits = [s.split for s in samples]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (200, 50, 100)
    assert len({s.sample_id for s in samples}) == len(samples)
    assert samples[0].image.open().size == (SMALL.image_size, SMALL.image_size)
    corpus = list(DemoAdapter("demo-corpus", SMALL).samples())
    assert {s.split for s in corpus} == {"corpus"} and all(s.label == () for s in corpus)


def test_labels_follow_the_latent_scene() -> None:
    cls = DemoAdapter("demo-cls", SMALL)
    for index, sample in enumerate(s for s in cls.samples() if s.split == "train"):
        obj = cls.scene("train", index).objects[0]
        expected = f"{obj.shape}-{'warm' if obj.colour in WARM_COLOURS else 'cool'}"
        assert CLS_CLASSES[sample.label[0]] == expected
    tags = DemoAdapter("demo-tags", SMALL)
    sizes = []
    for index, sample in enumerate(s for s in tags.samples() if s.split == "train"):
        scene = tags.scene("train", index)
        names = {TAG_CLASSES[i] for i in sample.label}
        assert names == {f"shape:{o.shape}" for o in scene.objects} | {f"colour:{o.colour}" for o in scene.objects}
        sizes.append(len(scene.objects))
    assert set(sizes) == {1, 2, 3}  # multi-label: up to three objects per image
    assert len(TAG_CLASSES) == 2 * len(SHAPES)


def test_downstream_captions_use_templates_the_corpus_never_uses() -> None:
    corpus_prefixes = {_template_prefix(t) for t in CORPUS_TEMPLATES if _template_prefix(t)}
    task_prefixes = {_template_prefix(t) for t in TASK_TEMPLATES}
    corpus = [s.text for s in DemoAdapter("demo-corpus", SMALL).samples()]
    tasks = [s.text for s in DemoAdapter("demo-tags", SMALL).samples()]
    assert not any(text.startswith(tuple(task_prefixes)) for text in corpus)
    assert all(text.startswith(tuple(task_prefixes)) for text in tasks)
    assert any(text.startswith(tuple(corpus_prefixes)) for text in corpus)


def test_captions_leave_out_attributes() -> None:
    """Each caption names only some attributes, so the image carries what the text lacks."""
    cls = DemoAdapter("demo-cls", SMALL)
    shape_named = 0
    samples = [s for s in cls.samples() if s.split == "train"]
    for index, sample in enumerate(samples):
        obj = cls.scene("train", index).objects[0]
        shape_named += any(word in sample.text for word in SYNONYMS[obj.shape])
    assert 0.2 < shape_named / len(samples) < 0.7
