"""Restoration throughput of batched DDIM (S = 50) against the per-sample loop, on this machine.

For the demo and the paper-size DiT (random init: weights do not change the cost), each batch
size runs the real sampler (`pipeline.diffusion.core.sample`). Small batches run all S steps;
large ones time `--measured-steps` of them, since every step runs the same network on the same
shapes, and scale by S (the table says which). Achieved FLOP/s uses `flops_per_sample` and is set
beside a large float32 matrix product on the same machine: how close to the hardware limit.

    python benchmarks/restore.py [--batch-sizes 1,4,16,64,256,1024,4096] [--measured-steps 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from pipeline.diffusion.core import DiffusionConfig, sample
from pipeline.models.dit import DIT_PRESETS, ConditionalDiT, DiTConfig, flops_per_sample

STEPS = 50


def matmul_flops(size: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def seconds_per_batch(model: ConditionalDiT, config: DiTConfig, batch: int, steps: int) -> float:
    cond = torch.randn(batch, config.feature_dim)
    with torch.inference_mode():
        sample(model, cond[:1], [0], DiffusionConfig(), steps=1)  # warm the kernels
        started = time.perf_counter()
        sample(model, cond, range(batch), DiffusionConfig(), steps=steps)
    return (time.perf_counter() - started) * STEPS / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,4,16,64,256,1024,4096")
    parser.add_argument("--measured-steps", type=int, default=2, help="steps timed for large batches")
    parser.add_argument("--full-below", type=int, default=64, help="batches below this run all S steps")
    args = parser.parse_args()
    peak = matmul_flops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; 4096^2 fp32 matmul: {peak / 1e9:.1f} GFLOP/s"
    )
    print("| DiT | batch | steps timed | samples/s (S=50) | vs per-sample loop | GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|---|")
    for preset in ("demo", "paper"):
        config = DiTConfig(**DIT_PRESETS[preset])
        torch.manual_seed(0)
        model = ConditionalDiT(config).eval()
        per_sample_flops = flops_per_sample(config) * STEPS
        loop_rate = None
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            steps = STEPS if batch < args.full_below else args.measured_steps
            seconds = seconds_per_batch(model, config, batch, steps)
            rate = batch / seconds
            loop_rate = loop_rate or rate  # the first (batch 1) row is the per-sample loop
            achieved = rate * per_sample_flops
            print(
                f"| {preset} | {batch} | {steps}/{STEPS} | {rate:,.2f} | {rate / loop_rate:.1f}x "
                f"| {achieved / 1e9:.1f} | {achieved / peak:.0%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
