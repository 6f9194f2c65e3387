#!/usr/bin/env python3
"""Training speed on one GPU: tokens/s, MFU and peak memory of the ~1.4B config (dim 2048, 24 layers,
16 heads) at context 2048 in bf16, in one run: each activation-checkpointing mode (selective, none,
full), the flash and cuDNN attention kernels, and a 2-micro-step gradient accumulation check.

    PYTHONPATH=. python benchmarks/train_speed.py [--config 1.4b] [--modes selective,none,full]
        [--attention flash,cudnn] [--micro-batch-size 4] [--accum 8] [--steps 10] [--warmup 3]
        [--peak-tflops T] [--json OUT]
    PYTHONPATH=. python benchmarks/train_speed.py --cpu-smoke

It times the trainer's own step (train.trainer.StepRunner: forward and backward over the micro-batches
with bf16 autocast and per-block torch.compile(fullgraph=True), gradient clipping, fused AdamW with the
non-finite skip on the device) on random tokens written in the shard format. Steps are queued as the
trainer queues them, without a host synchronisation each; the first --warmup steps (compilation,
allocator warm-up) are not timed. MFU counts 6N + 12*L*d*T FLOPs per token (N: every parameter but the
input embedding table, a lookup; see train/metrics.py) against the device's peak dense bf16 rate from
train/metrics.py's table (H100 SXM and H200: 989 TFLOP/s), printed with the results. The accumulation
check runs the same tokens per step as 1 micro-step and as 2 of half the size: the first step's loss
and gradient norm must agree within bf16 rounding, and the tokens/s ratio is accumulation's cost.
A configuration the GPU cannot run (out of memory, a kernel that does not support it) is reported and
the others still run; --json is rewritten after each run, so a run cut short keeps what it measured.
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
    for step in range(warmup):                  # compilation, allocator warm-up: not timed
        run_step.run(step)
    figures = run_step.drain()                  # the device has finished the warm-up when this returns
    if cuda:
        torch.cuda.synchronize(rt.device)
    t0 = time.perf_counter()
    for step in range(warmup, warmup + steps):  # queued as training queues them: no sync per step
        run_step.run(step)
    figures += run_step.drain()
    if cuda:
        torch.cuda.synchronize(rt.device)
    elapsed = time.perf_counter() - t0
    bad = [f.step for f in figures if not f.applied]
    if bad:
        raise RuntimeError(f"steps {bad}: non-finite loss or gradient norm")
    n_params = sum(p.numel() for p in model.parameters())
    peak, device_name = peak_flops(rt.device, cfg.peak_tflops)
    tokens_per_s = steps * cfg.global_batch_tokens / elapsed
    result = {
        "mode": cfg.activation_checkpointing, "attention": cfg.attention_backend, "device": device_name,
        "parameters": n_params, "micro_batch_size": cfg.micro_batch_size, "accum": loader.accum_steps,
        "tokens_per_s": tokens_per_s, "step_seconds": elapsed / steps,
        "mfu": tokens_per_s * flops_per_token(cfg, n_params) / peak if peak else None,
        "peak_tflops": peak / 1e12 if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(rt.device) / 2**30 if cuda else None,
        "first_loss": figures[0].loss, "first_grad_norm": figures[0].grad_norm, "final_loss": figures[-1].loss,
    }
    run_step.close()
    del run_step, optimizer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return result


def run_one(name: str, cfg: TrainConfig, data: str, warmup: int, steps: int) -> dict:
    """One measurement; a configuration the GPU cannot run (out of memory, an attention kernel that does
    not support it) is reported as such and the others still run."""
    try:
        return {"run": name, **measure(cfg, data, warmup, steps)}
    except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        torch._dynamo.reset()
        reason = "out of memory" if isinstance(exc, torch.cuda.OutOfMemoryError) else str(exc).splitlines()[0][:160]
        return {"run": name, "mode": cfg.activation_checkpointing, "attention": cfg.attention_backend, "error": reason}


def suite(base: TrainConfig, modes: list[str], attention: list[str]) -> list[tuple[str, TrainConfig]]:
    """Every checkpointing mode with PyTorch's attention choice; each named attention kernel with
    selective checkpointing; and the same tokens per step as 2 micro-steps of half the micro-batch, so
    that gradient accumulation's cost (and its loss and gradient norm, equal within bf16 rounding) shows."""
    runs = [(mode, dataclasses.replace(base, activation_checkpointing=mode)) for mode in modes]
    selective = dataclasses.replace(base, activation_checkpointing="selective")
    runs += [(f"selective, {name}", dataclasses.replace(selective, attention_backend=name)) for name in attention]
    mb = base.micro_batch_size
    tokens = mb * base.seq_len
    if mb % 2 == 0:
        one = dataclasses.replace(selective, global_batch_tokens=tokens)
        runs += [("accum 1", one), ("accum 2", dataclasses.replace(one, micro_batch_size=mb // 2))]
    return runs


def accumulation_check(results: list[dict]) -> str | None:
    by_name = {r["run"]: r for r in results if "error" not in r}
    if "accum 1" not in by_name or "accum 2" not in by_name:
        return None
    a, b = by_name["accum 1"], by_name["accum 2"]
    loss_rel = abs(a["first_loss"] - b["first_loss"]) / abs(a["first_loss"])
    norm_rel = abs(a["first_grad_norm"] - b["first_grad_norm"]) / abs(a["first_grad_norm"])
    return (f"accumulation: 2 micro-steps of {b['micro_batch_size']} vs 1 of {a['micro_batch_size']}: first-step loss "
            f"differs by {loss_rel:.2e} (relative), gradient norm by {norm_rel:.2e}; "
            f"{b['tokens_per_s'] / a['tokens_per_s']:.3f} x the tokens/s")


def row(r: dict) -> str:
    if "error" in r:
        return f"{r['run']:<22} {r['error']}"
    mfu = f"{100 * r['mfu']:5.1f}%" if r["mfu"] is not None else "   n/a"
    mem = f"{r['peak_memory_gib']:7.1f} GiB" if r["peak_memory_gib"] is not None else "        n/a"
    return (f"{r['run']:<22} {r['micro_batch_size']:>3} x {r['accum']:<3} {r['tokens_per_s']:>12,.0f} {mfu:>7} "
            f"{mem:>12} {r['step_seconds']:>9.3f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="1.4b")
    ap.add_argument("--modes", default="selective,none,full", help="activation checkpointing modes, comma-separated")
    ap.add_argument("--attention", default="flash,cudnn",
                    help="attention kernels to time with selective checkpointing (flash, cudnn, efficient, math)")
    ap.add_argument("--micro-batch-size", type=int, default=4, help="sequences of 2048 per forward/backward")
    ap.add_argument("--accum", type=int, default=8, help="micro-batches per optimizer step")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="the device's peak, when not in the table")
    ap.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--json", help="also write the results here (rewritten after each run)")
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
    attention = [a for a in args.attention.split(",") if a]
    header = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "config": base.name,
              "context": base.seq_len, "micro_batch_size": base.micro_batch_size, "accum": args.accum,
              "tokens_per_step": base.global_batch_tokens, "steps": args.steps, "warmup": args.warmup,
              "precision": "fp32" if args.cpu_smoke else "bf16",
              "compile": use_compile(base, torch.device("cpu" if args.cpu_smoke else "cuda"))}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = random_dataset(os.path.join(tmp, "data"), base.vocab_size, 4 * base.global_batch_tokens)
        for name, cfg in suite(base, args.modes.split(","), attention):
            results.append(run_one(name, cfg, data, args.warmup, args.steps))
            print(row(results[-1]), flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({**header, "results": results}, f, indent=2)

    device = next((r["device"] for r in results if "device" in r), "?")
    label = "CPU SMOKE RUN (tiny config; not a GPU figure)" if args.cpu_smoke else device
    peak = next((r["peak_tflops"] for r in results if r.get("peak_tflops")), None)
    print(f"\n{label} | torch {torch.__version__} | {header['date']} | MFU against "
          f"{f'{peak:g} TFLOP/s' if peak else 'no known peak'}")
    print(f"config {base.name}, context {base.seq_len}, {header['precision']}, compile {header['compile']}: "
          f"{base.micro_batch_size} x {base.seq_len} tokens x {args.accum} micro-steps = "
          f"{base.global_batch_tokens:,} tokens per step (accum runs: {base.micro_batch_size * base.seq_len:,}); "
          f"{args.steps} timed steps after {args.warmup}")
    print(f"{'run':<22} {'mb x acc':<9} {'tokens/s':>12} {'MFU':>7} {'peak memory':>12} {'step':>11}")
    for r in results:
        print(row(r))
    check = accumulation_check(results)
    if check:
        print(check)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**header, "device": label, "results": results, "accumulation_check": check}, f, indent=2)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
