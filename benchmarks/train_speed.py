#!/usr/bin/env python3
"""Training speed on one GPU: tokens/s, MFU and peak memory of the ~1.4B config (dim 2048, 24 layers,
16 heads) at context 2048 in bf16, for each activation-checkpointing mode.

    PYTHONPATH=. python benchmarks/train_speed.py [--config 1.4b] [--modes selective,none]
        [--micro-batch-size 4] [--accum 8] [--steps 20] [--warmup 5] [--peak-tflops T] [--json OUT]
    PYTHONPATH=. python benchmarks/train_speed.py --cpu-smoke

It times the trainer's own step (train.trainer.StepRunner: forward and backward over the micro-batches
with bf16 autocast and per-block torch.compile, gradient clipping, fused AdamW) on random tokens written
in the shard format; the first --warmup steps (compilation, allocator warm-up) are not timed. MFU counts
6N + 12*L*d*T FLOPs per token (N: every parameter but the input embedding table, a lookup; see
train/metrics.py) against the device's peak dense bf16 rate (H100 SXM: 989 TFLOP/s).
Needs a CUDA GPU and only torch and numpy: without a GPU it says so and exits with status 2. --cpu-smoke
runs the tiny config on CPU to check that the script works; its figures say nothing about GPU speed
and are labelled as such.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tokenizer.shard_format import TokenDataset, write_token_dataset  # noqa: E402
from train.config import TrainConfig, apply_overrides, preset  # noqa: E402
from train.data import SequenceLoader  # noqa: E402
from train.metrics import flops_per_token, peak_flops  # noqa: E402
from train.optim import build_optimizer  # noqa: E402
from train.parallel import build_model, setup, use_compile  # noqa: E402
from train.trainer import StepRunner  # noqa: E402


def random_dataset(directory: str, vocab_size: int, num_tokens: int, seed: int = 0) -> str:
    """Random tokens in documents of 4096: speed does not depend on what the tokens are."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(max(1, num_tokens // 4096)):
        doc = rng.integers(3, vocab_size, size=4096, dtype=np.uint16)
        doc[-1] = 2
        docs.append(("random", doc))
    return write_token_dataset(directory, docs, shard_tokens=1 << 24, vocab_size=vocab_size)


def measure(cfg: TrainConfig, data: str, warmup: int, steps: int) -> dict:
    rt = setup(cfg)
    model = build_model(cfg, rt)
    optimizer = build_optimizer(model, cfg, rt.device)
    loader = SequenceLoader(TokenDataset(data), cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size,
                            device=rt.device)
    run_step = StepRunner(model, optimizer, loader, cfg, rt)
    cuda = rt.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(rt.device)
    t0 = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            if cuda:
                torch.cuda.synchronize(rt.device)
            t0 = time.perf_counter()
        _, loss, _, applied = run_step(step)       # .item() inside: each step ends synchronised
        if not applied:
            raise RuntimeError(f"step {step}: non-finite loss {loss}")
    if cuda:
        torch.cuda.synchronize(rt.device)
    elapsed = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    peak, device_name = peak_flops(rt.device, cfg.peak_tflops)
    tokens_per_s = steps * cfg.global_batch_tokens / elapsed
    result = {
        "mode": cfg.activation_checkpointing, "device": device_name, "parameters": n_params,
        "tokens_per_s": tokens_per_s, "step_seconds": elapsed / steps,
        "mfu": tokens_per_s * flops_per_token(cfg, n_params) / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(rt.device) / 2**30 if cuda else None,
        "final_loss": loss,
    }
    del run_step, optimizer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return result


def run_mode(cfg: TrainConfig, data: str, warmup: int, steps: int) -> dict:
    try:
        return measure(cfg, data, warmup, steps)
    except torch.cuda.OutOfMemoryError:
        gc.collect()
        torch.cuda.empty_cache()
        return {"mode": cfg.activation_checkpointing, "error": "out of memory"}


def row(r: dict) -> str:
    if "error" in r:
        return f"{r['mode']:<10} {r['error']}"
    mfu = f"{100 * r['mfu']:5.1f}%" if r["mfu"] is not None else "   n/a"
    mem = f"{r['peak_memory_gib']:7.1f} GiB" if r["peak_memory_gib"] is not None else "        n/a"
    return f"{r['mode']:<10} {r['tokens_per_s']:>12,.0f} {mfu:>7} {mem:>12} {r['step_seconds']:>9.3f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="1.4b")
    ap.add_argument("--modes", default="selective,none", help="activation checkpointing modes, comma-separated")
    ap.add_argument("--micro-batch-size", type=int, default=4, help="sequences of 2048 per forward/backward")
    ap.add_argument("--accum", type=int, default=8, help="micro-batches per optimizer step")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="the device's peak, when not in the table")
    ap.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU: checks the script, not speed")
    args = ap.parse_args()

    if args.cpu_smoke:
        base = apply_overrides(preset("tiny"), {"vocab_size": "512", "device": "cpu"})
        args.micro_batch_size, args.accum, args.steps, args.warmup = 8, 2, 3, 1
    elif not torch.cuda.is_available():
        print("train_speed: needs a CUDA GPU (none is visible); figures from a CPU would not be GPU figures. "
              "--cpu-smoke checks the script on CPU.", file=sys.stderr)
        return 2
    else:
        base = apply_overrides(preset(args.config), {"device": "cuda", "precision": "bf16"})
    base = dataclasses.replace(base, micro_batch_size=args.micro_batch_size, peak_tflops=args.peak_tflops,
                               global_batch_tokens=args.micro_batch_size * args.accum * base.seq_len,
                               warmup_steps=1, max_steps=args.warmup + args.steps, compile=args.compile,
                               tensorboard=False).resolved()
    with tempfile.TemporaryDirectory() as tmp:
        data = random_dataset(os.path.join(tmp, "data"), base.vocab_size, 4 * base.global_batch_tokens)
        results = [run_mode(dataclasses.replace(base, activation_checkpointing=mode), data, args.warmup, args.steps)
                   for mode in args.modes.split(",")]

    device = next((r["device"] for r in results if "device" in r), "?")
    label = "CPU SMOKE RUN (tiny config; not a GPU figure)" if args.cpu_smoke else device
    header = {"date": datetime.date.today().isoformat(), "device": label, "torch": torch.__version__,
              "config": base.name, "context": base.seq_len, "micro_batch_size": base.micro_batch_size,
              "accum": args.accum, "tokens_per_step": base.global_batch_tokens, "steps": args.steps,
              "warmup": args.warmup, "precision": "fp32" if args.cpu_smoke else "bf16",
              "compile": use_compile(base, torch.device("cpu" if args.cpu_smoke else "cuda"))}
    print(f"{label} | torch {torch.__version__} | {header['date']}")
    print(f"config {base.name}, context {base.seq_len}, {header['precision']}, compile {header['compile']}: "
          f"{base.micro_batch_size} x {base.seq_len} tokens x {args.accum} micro-steps = "
          f"{base.global_batch_tokens:,} tokens per step; {args.steps} timed steps after {args.warmup}")
    print(f"{'mode':<10} {'tokens/s':>12} {'MFU':>7} {'peak memory':>12} {'step':>11}")
    for r in results:
        print(row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**header, "results": results}, f, indent=2)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
