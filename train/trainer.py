"""The training loop: data -> forward/backward with gradient accumulation -> clip -> AdamW step, with
exact resume, non-finite step skipping, periodic metrics and checkpoints, and an energy summary.

A run directory holds config.json, run.json (train/run_dir.py), metrics.jsonl, tensorboard/,
checkpoints/ and, at the end, summary.json. Nothing in a step depends on anything but the configuration,
the step number and the state a checkpoint saves (no dropout, data read in order), so a run resumed
from step k repeats the uninterrupted run's losses exactly on CPU.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from typing import Any

import torch
import torch.nn.functional as F

from tokenizer.shard_format import TokenDataset
from train.checkpoint import Checkpointer, read_trainer_state, write_json_atomic
from train.config import TrainConfig
from train.data import SequenceLoader
from train.energy import NvmlEnergy, energy_summary, format_energy
from train.metrics import MetricsLog, Throughput, flops_per_token, memory_gib, peak_flops
from train.optim import build_optimizer, learning_rate, set_learning_rate
from train.parallel import Runtime, all_reduce, build_model, setup, teardown, use_bf16, use_compile
from train.run_dir import hold_run_dir, prepare_run_dir
from train.state_check import check_trainer_state

log = logging.getLogger("smallgiant.train")


class NonFiniteLossError(RuntimeError):
    """Too many steps in a row had a non-finite loss or gradient norm."""


@dataclasses.dataclass
class Progress:
    """What a checkpoint carries besides model, optimizer and data loader state."""
    step: int = 0
    tokens: int = 0
    consecutive_bad_steps: int = 0
    bad_steps: int = 0
    train_seconds: float = 0.0             # wall time of the training sessions, up to their last checkpoint
    measured_joules: float | None = 0.0    # NVML, all GPUs; None once any session could not measure


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


class StepRunner:
    """One optimizer step, exactly as training runs it (the speed benchmark times this too): set the
    step's learning rate, forward and backward over the micro-batches, average the loss over processes,
    clip, then update, or skip the update when the loss or gradient norm is not finite."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, loader: SequenceLoader, cfg: TrainConfig, rt: Runtime):
        self.model, self.optimizer, self.loader, self.cfg, self.rt = model, optimizer, loader, cfg, rt
        self.accum = loader.accum_steps
        # compiled, the loss does not materialise a float32 copy of the logits
        self.loss_fn = torch.compile(cross_entropy) if use_compile(cfg, rt.device) else cross_entropy
        bf16 = use_bf16(cfg, rt.device)
        self.autocast = (lambda: torch.autocast(rt.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def __call__(self, step: int) -> tuple[float, float, float, bool]:
        """Returns (learning rate, loss, gradient norm, whether the update was applied)."""
        lr = learning_rate(step, self.cfg)
        set_learning_rate(self.optimizer, lr)
        loss_sum = torch.zeros((), device=self.rt.device)
        for micro in range(self.accum):
            inputs, targets = self.loader.batch(micro)
            with self.autocast():
                logits = self.model(inputs)
            loss = self.loss_fn(logits, targets) / self.accum
            loss.backward()
            loss_sum += loss.detach()
        loss_value = all_reduce(loss_sum, self.rt).item()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        norm_value = (grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm).item()
        applied = math.isfinite(loss_value) and math.isfinite(norm_value)
        if applied:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loader.advance()
        return lr, loss_value, norm_value, applied


def resolve_for_data(cfg: TrainConfig, dataset: TokenDataset) -> TrainConfig:
    cfg = cfg.resolved(dataset.vocab_size)
    if dataset.vocab_size > cfg.vocab_size:
        raise ValueError(f"the dataset's vocabulary ({dataset.vocab_size}) is larger than the model's "
                         f"vocab_size {cfg.vocab_size}")
    return cfg


def train(cfg: TrainConfig, data: str | None, output: str, resume: bool = False,
          stop_at_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) a run; return its summary. `stop_at_step` ends the run early, with a checkpoint,
    without changing the learning-rate schedule (for time-limited jobs; resume later with `resume`)."""
    if not data:
        raise ValueError("--data is required: a token dataset directory (holding dataset.json)")
    with hold_run_dir(output, data, int(os.environ.get("RANK", "0")) == 0):
        rt = setup(cfg)
        try:
            return Run(cfg, TokenDataset(data, verify=True), output, resume, rt).train(stop_at_step)
        finally:
            teardown(rt)


class Run:
    def __init__(self, cfg: TrainConfig, dataset: TokenDataset, output: str, resume: bool, rt: Runtime):
        self.cfg = cfg = resolve_for_data(cfg, dataset)
        self.output, self.rt = output, rt
        resume_from = prepare_run_dir(cfg, output, dataset, resume, rt.is_main)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, rt)
        self.optimizer = build_optimizer(self.model, cfg, rt.device)
        self.loader = SequenceLoader(dataset, cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size,
                                     rt.rank, rt.world_size, rt.device)
        self.checkpointer = Checkpointer(os.path.join(output, "checkpoints"), cfg.keep_checkpoints, rt)
        self.progress = Progress()
        if resume_from:
            self._restore(resume_from)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        peak, self.device_name = peak_flops(rt.device, cfg.peak_tflops)
        self.throughput = Throughput(cfg.global_batch_tokens, flops_per_token(cfg, self.n_params), peak, rt.world_size)
        self.metrics = MetricsLog(output, cfg.max_steps, self.progress.step, rt.is_main, cfg.tensorboard)
        self.energy = NvmlEnergy(rt.device)
        self.session_start, self.last_record = time.time(), {}

    def _restore(self, path: str) -> None:
        check_trainer_state(read_trainer_state(path), path, self.cfg)   # before any weights are read
        saved = self.checkpointer.load(path, self.model, self.optimizer)
        self.loader.load_state_dict(saved["loader"])
        self.progress = Progress(**{k: saved[k] for k in dataclasses.asdict(self.progress)})
        if self.rt.is_main:
            moved = f", resharded from {saved['world_size']} processes" if saved["world_size"] != self.rt.world_size else ""
            log.info("resumed from %s at step %d%s", path, self.progress.step, moved)

    def train(self, stop_at_step: int | None) -> dict[str, Any]:
        cfg, progress = self.cfg, self.progress
        end = min(cfg.max_steps, stop_at_step) if stop_at_step else cfg.max_steps
        if self.rt.is_main:
            log.info("model %s: %s parameters on %d x %s; %d micro-steps of %d x %d tokens per step; steps %d..%d "
                     "of %d", cfg.name, f"{self.n_params:,}", self.rt.world_size, self.device_name,
                     self.loader.accum_steps, cfg.micro_batch_size, cfg.seq_len, progress.step, end, cfg.max_steps)
        run_step = StepRunner(self.model, self.optimizer, self.loader, cfg, self.rt)
        for step in range(progress.step, end):
            lr, loss, grad_norm, applied = run_step(step)
            progress.step, progress.tokens = step + 1, progress.tokens + cfg.global_batch_tokens
            progress.bad_steps += not applied
            progress.consecutive_bad_steps = 0 if applied else progress.consecutive_bad_steps + 1
            self.throughput.tick()
            if not applied:
                self._skipped(loss, grad_norm)
            if progress.step % cfg.log_every == 0 or progress.step == end:
                self._log(lr, loss, grad_norm, applied)
            if progress.step % cfg.checkpoint_every == 0 or progress.step == end:
                self._save()
        return self._finish()

    def _skipped(self, loss: float, grad_norm: float) -> None:
        p = self.progress
        log.warning("step %d: loss %s, gradient norm %s: update skipped (%d in a row, limit %d)", p.step, loss,
                    grad_norm, p.consecutive_bad_steps, self.cfg.max_bad_steps)
        self.metrics.event({"kind": "skipped", "step": p.step, "loss": str(loss), "grad_norm": str(grad_norm)})
        if p.consecutive_bad_steps >= self.cfg.max_bad_steps:
            self.metrics.close()
            raise NonFiniteLossError(
                f"{p.consecutive_bad_steps} steps in a row (up to step {p.step}) had a non-finite loss or gradient "
                f"norm; stopped. The last good checkpoint is in {self.checkpointer.directory}: resume from it with "
                "a lower lr or different data")

    def _log(self, lr: float, loss: float, grad_norm: float, applied: bool) -> None:
        tokens_per_s, mfu = self.throughput.measure()
        self.last_record = {
            "kind": "step", "step": self.progress.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
            "tokens": self.progress.tokens, "tokens_per_s": tokens_per_s, "mfu": mfu,
            "memory_gib": memory_gib(self.rt.device), "epoch": self.loader.epoch, "skipped": not applied}
        self.metrics.log(self.last_record)

    def _totals(self) -> Progress:
        """Progress with this session's time and measured energy added (a collective: every process calls it)."""
        joules = self.energy.joules()
        summed, unmeasured = all_reduce(torch.tensor([joules or 0.0, float(joules is None)], dtype=torch.float64,
                                                     device=self.rt.device), self.rt, "sum").tolist()
        before = self.progress.measured_joules
        return dataclasses.replace(
            self.progress, train_seconds=self.progress.train_seconds + time.time() - self.session_start,
            measured_joules=None if before is None or unmeasured else before + summed)

    def _save(self) -> None:
        state = {**dataclasses.asdict(self._totals()), "loader": self.loader.state_dict(),
                 "world_size": self.rt.world_size}
        self.checkpointer.save(self.progress.step, self.model, self.optimizer, state)

    def _finish(self) -> dict[str, Any]:
        total, cfg = self._totals(), self.cfg
        gpus = self.rt.world_size if self.rt.device.type == "cuda" else 0
        summary = {
            "config": cfg.name, "parameters": self.n_params, "steps": self.progress.step, "max_steps": cfg.max_steps,
            "tokens": self.progress.tokens, "final_loss": self.last_record.get("loss"),
            "skipped_steps": self.progress.bad_steps, "processes": self.rt.world_size, "device": self.device_name,
            "train_seconds": total.train_seconds, "session_seconds": time.time() - self.session_start,
            "mean_mfu": self.throughput.mean_mfu,
            **energy_summary(total.train_seconds, gpus, total.measured_joules, cfg.gpu_tdp_watts, cfg.pue,
                             cfg.carbon_kg_per_kwh)}
        self.metrics.event({"kind": "summary", **summary})
        self.metrics.close()
        if self.rt.is_main:
            write_json_atomic(os.path.join(self.output, "summary.json"), summary)
            print(format_summary(summary), flush=True)
        return summary


def format_summary(s: dict[str, Any]) -> str:
    loss = f", final loss {s['final_loss']:.4f}" if s["final_loss"] is not None else ""
    lines = [(f"trained {s['config']} ({s['parameters']:,} parameters) to step {s['steps']}/{s['max_steps']}: "
              f"{s['tokens']:,} tokens in {s['train_seconds']:.1f} s on {s['processes']} x {s['device']}{loss}")]
    if s["skipped_steps"]:
        lines.append(f"skipped steps (non-finite): {s['skipped_steps']}")
    if s["mean_mfu"] is not None:
        lines.append(f"mean MFU {100 * s['mean_mfu']:.1f}%")
    return "\n".join(lines + format_energy(s))
