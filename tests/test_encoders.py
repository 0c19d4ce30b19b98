"""Encoders: the warmed-up demo CLIP, the modality split of the demo tasks, local checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pipeline.config import PipelineConfig
from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.encoders.frozen import EncoderConfig, FrozenEncoder, build_encoder, tiny_model
from pipeline.encoders.warmup import encode_text_to_longest, load_demo_encoder, warmup_dir


def _encode(encoder: FrozenEncoder, samples: list) -> tuple[np.ndarray, np.ndarray]:
    pixels = torch.stack([encoder.preprocess(s.image.open()) for s in samples])
    tokens = encoder.tokenizer([s.text for s in samples])
    return encoder.encode_images(pixels).numpy(), encoder.encode_texts(tokens).numpy()


def _recall_at(similarity: np.ndarray, k: int) -> float:
    ranks = np.argsort(-similarity, axis=1)[:, :k]
    return float(np.mean([i in ranks[i] for i in range(len(similarity))]))


def test_warmed_up_encoder_retrieves_matching_pairs_far_above_chance(
    demo_encoder: FrozenEncoder, small_config: PipelineConfig
) -> None:
    held_out = DemoConfig(seed=small_config.demo.seed + 100, corpus_size=500)  # unseen corpus samples
    images, texts = _encode(demo_encoder, list(DemoAdapter("demo-corpus", held_out).samples()))
    recall = _recall_at(images @ texts.T, 10)
    chance = 10 / len(images)
    print(f"\nimage->text R@10 on 500 held-out pairs: {recall:.3f} (chance {chance:.3f})")
    assert recall > 4 * chance

    random_encoder = build_encoder(EncoderConfig(model="mmr-tiny", pretrained="random"))
    images, texts = _encode(random_encoder, list(DemoAdapter("demo-corpus", held_out).samples()))
    assert _recall_at(images @ texts.T, 10) < 2 * chance  # the warm-up, not the data, makes it work


def test_a_local_checkpoint_file_loads_with_its_digest(tmp_path: Path) -> None:
    model, _ = tiny_model("mmr-tiny")
    path = tmp_path / "my-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    encoder = build_encoder(EncoderConfig(model="mmr-tiny", pretrained=str(path)))
    for name, tensor in model.state_dict().items():
        assert torch.equal(encoder.model.state_dict()[name], tensor)
    assert encoder.encoder_id.startswith("mmr-tiny.my-clip.")
    assert encoder.embed_dim == 128


def test_a_release_finds_the_warmed_up_encoder_and_a_new_warmup_format_does_not(
    warm_store: Path, small_config: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def loaded() -> FrozenEncoder:
        return load_demo_encoder(str(warm_store), small_config.warmup, small_config.demo, progress=False)

    warmed_up = warmup_dir(str(warm_store), small_config.warmup, small_config.demo)
    encoder_id = loaded().encoder_id
    monkeypatch.setattr("pipeline.version.version", lambda name: "99.0.0")  # the next release
    assert warmup_dir(str(warm_store), small_config.warmup, small_config.demo) == warmed_up
    monkeypatch.setattr("pipeline.encoders.warmup.train_demo_encoder", _no_warmup)
    assert loaded().encoder_id == encoder_id  # loaded from the store, not warmed up again
    monkeypatch.setattr("pipeline.encoders.warmup.WARMUP_FORMAT", 99)  # a change to what a warm-up makes
    assert warmup_dir(str(warm_store), small_config.warmup, small_config.demo) != warmed_up
    with pytest.raises(AssertionError, match="warmed up again"):
        loaded()


def _no_warmup(*args: object, **kwargs: object) -> torch.nn.Module:
    raise AssertionError("warmed up again")


def test_a_cached_run_reads_the_encoder_id_off_the_stored_weights(
    warm_store: Path, small_config: PipelineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prepare_encoder` names a warmed-up demo encoder without building it, by the weights in
    the store: weights replaced there get their own id, as loading them would give."""
    import shutil

    from pipeline.encoders.warmup import stored_encoder_id
    from pipeline.steps import RunSpec, prepare_encoder
    from stores.checkpoints import load_checkpoint, save_checkpoint

    store = tmp_path / "store"
    shutil.copytree(warm_store / "encoders", store / "encoders")
    demo = EncoderConfig(model="mmr-tiny", pretrained="demo")

    def loaded_id() -> str:
        return load_demo_encoder(
            str(store), small_config.warmup, small_config.demo, progress=False
        ).encoder_id

    def stored_id() -> str | None:
        return stored_encoder_id(demo, str(store), small_config.warmup, small_config.demo)

    first = loaded_id()
    assert stored_id() == first
    directory = warmup_dir(str(store), small_config.warmup, small_config.demo)
    tensors, meta = load_checkpoint(directory)
    name = next(iter(tensors))
    save_checkpoint(directory, {**tensors, name: tensors[name] + 1e-3}, meta)  # warmed up again elsewhere
    assert stored_id() == loaded_id() != first

    random = EncoderConfig(model="mmr-tiny", pretrained="random")
    assert stored_encoder_id(random, str(store), small_config.warmup, small_config.demo) is None
    assert stored_encoder_id(demo, str(tmp_path / "empty"), small_config.warmup, small_config.demo) is None

    def not_built(self: RunSpec) -> FrozenEncoder:
        raise AssertionError("the encoder was built")

    monkeypatch.setattr(RunSpec, "encoder", not_built)
    assert prepare_encoder(RunSpec(store=str(store), config="demo-small")) == stored_id()


def test_the_warm_up_reads_text_up_to_the_longest_caption_as_open_clip_reads_all_of_it() -> None:
    from pipeline.encoders.frozen import open_clip_with_project_models

    open_clip = open_clip_with_project_models()
    torch.manual_seed(0)
    model, _ = tiny_model("mmr-tiny")
    captions = ["a red circle", "an image showing a little box in the bottom right and a big square"]
    tokens = open_clip.get_tokenizer("mmr-tiny")(captions)
    assert (tokens[:, -8:] == 0).all()  # padding to cut, so the two paths differ in what they compute
    torch.testing.assert_close(
        encode_text_to_longest(model, tokens), model.encode_text(tokens, normalize=True), atol=1e-5, rtol=0
    )
