"""Extraction throughput: the whole pipeline vs the model's bare forward pass, in one run.

For each encoder, the same demo-cls samples are (1) extracted through `pipeline.extraction`
(listing, image rendering/decoding in loader workers, preprocessing, tokenising, encoding,
float16 Zarr writes, shard commits) into a fresh store, and (2) pre-decoded into tensors and
pushed through the encoder alone with the same batch size. The ratio says how close the
pipeline runs to the model's own limit on this machine.

    python benchmarks/extract.py [--tiny-samples 4096] [--vit-samples 384] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from pipeline.data.demo import DemoAdapter, DemoConfig
from pipeline.data.loading import EncoderInputs, RawRow, input_loader
from pipeline.encoders.frozen import EncoderConfig, FrozenEncoder, build_encoder
from pipeline.extraction import ExtractionSettings, _image_size, extract


def bare_forward_rate(encoder: FrozenEncoder, rows: list[RawRow], batch_size: int) -> float:
    inputs = EncoderInputs(rows, encoder.preprocess, encoder.tokenizer, _image_size(encoder))
    batches = list(input_loader(inputs, 2, batch_size=batch_size))  # decoded up front, not timed
    started = time.perf_counter()
    for batch in batches:
        encoder.encode_images(batch["pixels"])
        encoder.encode_texts(batch["tokens"])
    return len(rows) / (time.perf_counter() - started)


def pipeline_rate(encoder: FrozenEncoder, adapter: DemoAdapter, settings: ExtractionSettings) -> float:
    with tempfile.TemporaryDirectory() as store:
        result = extract(adapter, encoder, store, settings, progress=False)
    return result.n_rows / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-samples", type=int, default=4096)
    parser.add_argument("--vit-samples", type=int, default=384)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, workers {args.workers}")
    print("| encoder | samples | pipeline samples/s | bare forward samples/s | pipeline / bare |")
    print("|---|---|---|---|---|")
    for model, n in (("mmr-tiny", args.tiny_samples), ("ViT-B-32", args.vit_samples)):
        encoder = build_encoder(EncoderConfig(model=model, pretrained="random"))
        demo = DemoConfig(train_size=n, val_size=1, test_size=1)
        adapter = DemoAdapter("demo-cls", demo)
        settings = ExtractionSettings(chunk_rows=1024, batch_size=args.batch_size, workers=args.workers)
        rows = [RawRow(i, s.text, s.image) for i, s in enumerate(adapter.samples())]
        bare = bare_forward_rate(encoder, rows, args.batch_size)
        full = pipeline_rate(encoder, adapter, settings)
        size = _image_size(encoder)
        print(
            f"| {model} ({size} px, random init) | {len(rows)} | {full:,.0f} | {bare:,.0f} | {full / bare:.2f} |"
        )


if __name__ == "__main__":
    main()
