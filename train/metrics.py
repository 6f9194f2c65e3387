"""Training metrics: model FLOPs utilisation, memory, validation loss per source, and the three places
they go (the console with a progress bar, metrics.jsonl, TensorBoard).

FLOPs per token are counted as in the PaLM and LLaMA papers: 6N + 12 * L * d * T, where N is the number
of parameters that take part in matrix products (all but the input embedding table, which is a lookup),
L the layers, d the model width and T the context. MFU is the achieved FLOP rate per device over the
device's peak dense bf16 rate from the table below (or `peak_tflops`).
"""
from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from typing import Any

import torch

from train.config import TrainConfig

log = logging.getLogger("smallgiant.train")

# dense bf16 TFLOP/s; the first name found in the device's name wins
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
               ("A100", 312.0), ("B200", 2250.0), ("L40S", 362.0))


def flops_per_token(cfg: TrainConfig, n_params: int) -> float:
    n_matmul = n_params - cfg.vocab_size * cfg.dim
    return 6.0 * n_matmul + 12.0 * cfg.n_layers * cfg.dim * cfg.seq_len


def peak_flops(device: torch.device, override_tflops: float = 0.0) -> tuple[float | None, str]:
    """(peak FLOP/s per device, the device's name); None when the device is not in the table."""
    if device.type != "cuda":
        name = "cpu"
    else:
        name = torch.cuda.get_device_name(device)
    if override_tflops:
        return override_tflops * 1e12, name
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12, name
    return None, name


class Throughput:
    """Tokens per second and MFU over the steps since the last measurement, and the mean MFU so far.

    The first `warmup_steps` steps (torch.compile's compilation, the allocator's first allocations) are
    not timed: the clock starts when the last of them ends. A measurement that falls in the warm-up
    still reports its tokens per second, with MFU None, and stays out of the mean."""

    def __init__(self, tokens_per_step: int, flops_per_token: float, peak_flops: float | None, devices: int,
                 warmup_steps: int = 0):
        self.tokens_per_step, self.fpt, self.peak, self.devices = tokens_per_step, flops_per_token, peak_flops, devices
        self.warmup_left, self.warmup_rate = warmup_steps, None
        self.start, self.steps, self.mfus = time.time(), 0, []

    def _rate(self) -> float:
        return self.steps * self.tokens_per_step / max(time.time() - self.start, 1e-9)

    def tick(self) -> None:
        self.steps += 1
        if self.warmup_left:
            self.warmup_left -= 1
            if not self.warmup_left:                     # the clock starts now
                self.warmup_rate = self._rate()
                self.start, self.steps = time.time(), 0

    def measure(self) -> tuple[float, float | None]:
        if self.warmup_left or not self.steps:          # nothing timed yet: the warm-up's own rate, no MFU
            rate = self._rate() if self.warmup_left else (self.warmup_rate or 0.0)
            if self.warmup_left:
                self.start, self.steps = time.time(), 0
            self.warmup_rate = None
            return rate, None
        tokens_per_s = self._rate()
        mfu = tokens_per_s * self.fpt / self.devices / self.peak if self.peak else None
        if mfu is not None:
            self.mfus.append(mfu)
        self.start, self.steps, self.warmup_rate = time.time(), 0, None
        return tokens_per_s, mfu

    @property
    def mean_mfu(self) -> float | None:
        return sum(self.mfus) / len(self.mfus) if self.mfus else None


def memory_gib(device: torch.device) -> float:
    """Peak memory so far: allocated by PyTorch on a GPU, resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def progress_bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * done / max(total, 1):3.0f}%"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def console_line(rec: dict[str, Any], total_steps: int, eta_s: float) -> str:
    parts = [f"step {rec['step']:>{len(str(total_steps))}}/{total_steps} {progress_bar(rec['step'], total_steps)}",
             f"loss {rec['loss']:.4f}", f"lr {rec['lr']:.2e}", f"grad {rec['grad_norm']:.3f}",
             f"{rec['tokens_per_s']:,.0f} tok/s"]
    if rec.get("mfu") is not None:
        parts.append(f"MFU {100 * rec['mfu']:.1f}%")
    parts += [f"mem {rec['memory_gib']:.2f} GiB", f"eta {_clock(eta_s)}"]
    if rec.get("skipped"):
        parts.append("SKIPPED (non-finite)")
    return " | ".join(parts)


class MetricsLog:
    """Writes one record per logged step (process 0 only). On resume, records past the resumed step (from
    steps the interrupted run did after its last checkpoint) are dropped so that the file reads as one run."""

    def __init__(self, run_dir: str, total_steps: int, start_step: int, enabled: bool, tensorboard: bool):
        self.enabled, self.total_steps, self.start_step = enabled, total_steps, start_step
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.t0 = time.time()
        self._tb = None
        if not enabled:
            return
        self._truncate_after(start_step)
        self._file = open(self.path, "a")
        if tensorboard:
            self._tb = _tensorboard_writer(os.path.join(run_dir, "tensorboard"), start_step)

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def log(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(rec, sort_keys=True) + "\n")
        self._file.flush()
        done = rec["step"] - self.start_step
        eta = (time.time() - self.t0) / max(done, 1) * (self.total_steps - rec["step"])
        print(console_line(rec, self.total_steps, eta), file=sys.stdout, flush=True)
        if self._tb is not None:
            for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "memory_gib"):
                if isinstance(rec.get(key), (int, float)):
                    self._tb.add_scalar(f"train/{key}", rec[key], rec["step"])

    def validation(self, rec: dict[str, Any]) -> None:
        """A validation record: {"kind": "val", "step", "loss": {source: mean token loss on its held-out
        documents}, "sequences": {source: how many were evaluated}}."""
        if not self.enabled:
            return
        self._file.write(json.dumps(rec, sort_keys=True) + "\n")
        self._file.flush()
        losses = ", ".join(f"{source} {loss:.4f}" for source, loss in rec["loss"].items())
        print(f"step {rec['step']}: validation loss (held-out documents) {losses}", file=sys.stdout, flush=True)
        if self._tb is not None:
            for source, loss in rec["loss"].items():
                self._tb.add_scalar(f"val/{source}/loss", loss, rec["step"])

    def event(self, rec: dict[str, Any]) -> None:
        """A record that is not a step's figures (a skipped step, the final summary)."""
        if self.enabled:
            self._file.write(json.dumps(rec, sort_keys=True) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def _tensorboard_writer(directory: str, start_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: metrics go to metrics.jsonl and the console only")
        return None
    return SummaryWriter(directory, purge_step=start_step + 1 if start_step else None)
