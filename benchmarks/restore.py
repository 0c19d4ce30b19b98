"""Restoration throughput of batched DDIM (S = 50) against the per-sample loop, on this machine.

For the demo and the paper-size DiT (random init: weights do not change the cost), each batch
size runs the real sampler (`pipeline.diffusion.core.sample`, per-sample seeded noise and the
diffusers DDIM step included). Small batches run all S steps; large ones time
`--measured-steps` of them, since every step runs the same network on the same shapes, and
scale by S (the table says which). Achieved FLOP/s uses `flops_per_sample` and is set beside a
large matrix product of the same precision on the same device: how close to the hardware limit.

    python benchmarks/restore.py [--device cpu|cuda] [--precision fp32|bf16] [--compile]
                                 [--batch-sizes 1,4,16,64,256,1024,4096] [--measured-steps 2]

`--precision bf16` samples under bf16 autocast (what `DiffusionRestorer` does on CUDA);
`--compile` runs the DiT through `torch.compile(mode="reduce-overhead")` (CUDA graphs on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from pipeline.diffusion.core import DiffusionConfig, sample
from pipeline.models.dit import DIT_PRESETS, ConditionalDiT, DiTConfig, flops_per_sample, with_feature_dim

# The feature width each preset is timed at: ViT-B-32's for `paper`, the demo encoder's for `demo`.
ENCODER_WIDTHS = {"paper": 512, "demo": 128}

STEPS = 50


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def matmul_flops(device: torch.device, precision: str, repeats: int = 5) -> tuple[int, float]:
    """(side, FLOP/s) of a square matrix product: 4096 fp32 on a CPU, 8192 on a GPU."""
    size = 8192 if device.type == "cuda" else 4096
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    synchronize(device)
    return size, 2 * size**3 * repeats / (time.perf_counter() - started)


def seconds_per_batch(
    model: torch.nn.Module, config: DiTConfig, batch: int, steps: int, device: torch.device, precision: str
) -> float:
    cond = torch.randn(batch, config.feature_dim, device=device)
    with torch.inference_mode(), autocast(device, precision):
        for _ in range(2):  # warm the kernels (and, compiled, capture the graphs for this shape)
            sample(model, cond, range(batch), DiffusionConfig(), steps=2)
        synchronize(device)
        started = time.perf_counter()
        sample(model, cond, range(batch), DiffusionConfig(), steps=steps)
        synchronize(device)
    return (time.perf_counter() - started) * STEPS / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile(mode='reduce-overhead')")
    parser.add_argument("--presets", default="demo,paper")
    parser.add_argument("--batch-sizes", default="1,4,16,64,256,1024,4096")
    parser.add_argument("--measured-steps", type=int, default=2, help="steps timed for large batches")
    parser.add_argument("--full-below", type=int, default=64, help="batches below this run all S steps")
    args = parser.parse_args()
    device = torch.device(args.device)
    side, peak = matmul_flops(device, args.precision)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(
        f"torch {torch.__version__}, {where}, {args.precision}{', compiled' if args.compile else ''}; "
        f"{side}^2 {args.precision} matmul: {peak / 1e9:,.1f} GFLOP/s"
    )
    print("| DiT | batch | steps timed | samples/s (S=50) | vs per-sample loop | GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        config = with_feature_dim(DiTConfig(**DIT_PRESETS[preset]), ENCODER_WIDTHS[preset])
        torch.manual_seed(0)
        model: torch.nn.Module = ConditionalDiT(config).to(device).eval()
        if args.compile:
            model = torch.compile(model, mode="reduce-overhead", dynamic=False)
        per_sample_flops = flops_per_sample(config) * STEPS
        loop_rate = None
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            steps = STEPS if batch < args.full_below else args.measured_steps
            seconds = seconds_per_batch(model, config, batch, steps, device, args.precision)
            rate = batch / seconds
            loop_rate = loop_rate or rate  # the first (batch 1) row is the per-sample loop
            achieved = rate * per_sample_flops
            print(
                f"| {preset} | {batch} | {steps}/{STEPS} | {rate:,.2f} | {rate / loop_rate:.1f}x "
                f"| {achieved / 1e9:,.1f} | {achieved / peak:.0%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
