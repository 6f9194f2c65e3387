"""The training loop: data -> forward/backward with gradient accumulation -> clip -> AdamW step, with
exact resume, non-finite step skipping, periodic metrics and checkpoints, and an energy summary.

A run directory holds config.json, run.json (train/run_dir.py), metrics.jsonl, tensorboard/,
checkpoints/ and, at the end, summary.json. Nothing in a step depends on anything but the configuration,
the step number and the state a checkpoint saves (no dropout, data read in order), so a run resumed
from step k repeats the uninterrupted run's losses exactly on CPU.

At every step boundary the processes agree (one all-reduce of two flags over a gloo group) on whether to
stop (SIGTERM or SIGUSR1 reached any of them: save, then exit 0) and whether a time-based checkpoint is
due. Every `val_every` steps each process evaluates its slice of the held-out documents of every source
(`<data>/val/<source>/`, written by the shard job, or `--val-data`) and the sums are all-reduced; every
`eval_every` steps the benchmarks of `eval_tasks` are scored (train/evaluation/in_loop.py). A
failing process leaves the process group without a barrier, so torchrun stops the whole job at once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import signal
import threading
import time
import weakref
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from tokenizer.shard_format import TokenDataset
from train.checkpoint import Checkpointer, read_trainer_state, write_json_atomic
from train.config import TrainConfig, resolve_grad_sync
from train.data import SequenceLoader
from train.energy import NvmlEnergy, energy_summary, format_energy
from train.metrics import MetricsLog, Throughput, flops_per_token, memory_gib, peak_flops
from train.optim import build_optimizer, learning_rate, set_learning_rate
from train.parallel import Runtime, all_reduce, build_model, setup, teardown, use_bf16, use_compile
from train.run_dir import hold_run_dir, plan_resume, refuse_schedule_change, write_run_files
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


@dataclasses.dataclass
class StepFigures:
    step: int                   # 0-based
    lr: float
    loss: float
    grad_norm: float
    applied: bool               # False: the loss or the gradient norm was not finite; nothing was updated


class StepRunner:
    """One optimizer step, exactly as training runs it (the speed benchmark times this too): set the
    step's learning rate, forward and backward over the micro-batches, average the loss over processes,
    clip, then update, or skip the update when the loss or gradient norm is not finite.

    `run(step)` queues a step without waiting for the device: the loss, gradient norm and finiteness stay
    device tensors until `drain()` reads back every queued step's figures in one transfer (at the logging
    interval). The skip is decided on the device when AdamW is fused (the default on CUDA): the
    optimizer's `found_inf` input, GradScaler's mechanism, leaves weights, moments and step counts as
    they were. An unfused AdamW has no such input, so the check reads the two scalars back each step:
    free on CPU, where every operation has finished when it returns. With more than one micro-step,
    FSDP2 reduces gradients on the last one only (grad_sync 'last') or on each ('every'). Python's cyclic
    garbage collector is off while the runner lives and runs every `gc_every` steps, as in torchtitan:
    a collection at a random point stalls every process of the job while one of them collects.
    """

    def __init__(self, model, optimizer: torch.optim.Optimizer, loader: SequenceLoader, cfg: TrainConfig, rt: Runtime):
        self.model, self.optimizer, self.loader, self.cfg, self.rt = model, optimizer, loader, cfg, rt
        self.accum = loader.accum_steps
        # compiled, the loss does not materialise a float32 copy of the logits
        self.loss_fn = torch.compile(cross_entropy) if use_compile(cfg, rt.device) else cross_entropy
        bf16 = use_bf16(cfg, rt.device)
        self.autocast = (lambda: torch.autocast(rt.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        self.sync_last_only = (self.accum > 1 and hasattr(model, "set_requires_gradient_sync")
                               and resolve_grad_sync(cfg, rt.world_size, loader.micro_batch) == "last")
        self.skip_on_device = bool(optimizer.defaults.get("fused"))
        self.pending: list[tuple[int, float, torch.Tensor]] = []
        self.steps_run = 0
        self._gc_finalizer = None
        if cfg.gc_every and gc.isenabled():
            gc.disable()
            gc.collect()
            self._gc_finalizer = weakref.finalize(self, gc.enable)

    def run(self, step: int) -> None:
        """Queue step `step` (0-based); no host synchronisation when AdamW is fused."""
        lr = learning_rate(step, self.cfg)
        set_learning_rate(self.optimizer, lr)
        loss_sum = torch.zeros((), device=self.rt.device)
        for micro in range(self.accum):
            if self.sync_last_only:
                self.model.set_requires_gradient_sync(micro == self.accum - 1)
            inputs, targets = self.loader.batch(micro)
            with self.autocast():
                logits = self.model(inputs)
            loss = self.loss_fn(logits, targets) / self.accum
            loss.backward()
            loss_sum += loss.detach()
        loss = all_reduce(loss_sum, self.rt)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        self._update(finite)
        self.optimizer.zero_grad(set_to_none=True)
        self.loader.advance()
        self.pending.append((step, lr, torch.stack([loss.float(), grad_norm.float(), finite.float()])))
        self.steps_run += 1
        if self._gc_finalizer is not None and self.steps_run % self.cfg.gc_every == 0:
            gc.collect(1)

    def _update(self, finite: torch.Tensor) -> None:
        if not self.skip_on_device:
            if finite.item():
                self.optimizer.step()
            return
        self.optimizer.found_inf = (~finite).float()
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf

    def drain(self) -> list[StepFigures]:
        """The figures of every step queued since the last drain, oldest first (one host transfer)."""
        if not self.pending:
            return []
        values = torch.stack([v for _, _, v in self.pending]).tolist()
        figures = [StepFigures(step, lr, loss, norm, bool(ok))
                   for (step, lr, _), (loss, norm, ok) in zip(self.pending, values)]
        self.pending = []
        return figures

    def __call__(self, step: int) -> tuple[float, float, float, bool]:
        """Run one step and return (learning rate, loss, gradient norm, whether the update was applied):
        a host synchronisation every step; a loop that logs every N steps calls run() and drain()."""
        self.run(step)
        f = self.drain()[-1]
        return f.lr, f.loss, f.grad_norm, f.applied

    def close(self) -> None:
        """Give the garbage collector back its own schedule (also done when the runner is freed)."""
        if self._gc_finalizer is not None:
            self._gc_finalizer()


def resolve_for_data(cfg: TrainConfig, dataset: TokenDataset) -> TrainConfig:
    cfg = cfg.resolved(dataset.vocab_size)
    if dataset.vocab_size > cfg.vocab_size:
        raise ValueError(f"the dataset's vocabulary ({dataset.vocab_size}) is larger than the model's "
                         f"vocab_size {cfg.vocab_size}")
    return cfg


def train(cfg: TrainConfig, data: str | None, output: str, resume: bool | str = False,
          stop_at_step: int | None = None, allow_schedule_change: bool = False,
          val_data: str | None = None) -> dict[str, Any]:
    """Train (or resume) a run; return its summary. `resume`: True resumes the latest checkpoint (there
    must be one), "auto" resumes it when there is one and starts afresh otherwise. `stop_at_step` ends the
    run early, with a checkpoint, without changing the learning-rate schedule (for time-limited jobs;
    resume later with `resume`). `val_data`: held-out token datasets (default `<data>/val`)."""
    if not data:
        raise ValueError("--data is required: a token dataset directory (holding dataset.json)")
    with hold_run_dir(output, data, int(os.environ.get("RANK", "0")) == 0), StopSignals() as stop:
        rt = setup(cfg)
        failed = True
        try:
            run = Run(cfg, TokenDataset(data, verify=True), output, resume, rt, allow_schedule_change,
                      val_data or os.path.join(data, "val"), stop)
            summary = run.train(stop_at_step)
            failed = False
            return summary
        finally:
            teardown(rt, failed)


class StopSignals:
    """SIGTERM and SIGUSR1 (what schedulers send before preempting a job) ask the run to stop at the next
    step boundary, with a checkpoint, instead of killing it mid-step. Only in the main thread (where Python
    can take signals); the previous handlers come back when the block ends."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class Run:
    def __init__(self, cfg: TrainConfig, dataset: TokenDataset, output: str, resume: bool | str, rt: Runtime,
                 allow_schedule_change: bool = False, val_data: str | None = None, stop: StopSignals | None = None):
        self.cfg = cfg = resolve_for_data(cfg, dataset)
        self.output, self.rt, self.stop = output, rt, stop or StopSignals()
        resume_from, schedule_changes = plan_resume(cfg, output, resume)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, rt)
        self.optimizer = build_optimizer(self.model, cfg, rt.device)
        self.loader = SequenceLoader(dataset, cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size,
                                     rt.rank, rt.world_size, rt.device, shuffle_seed=cfg.seed)
        asynchronous = cfg.async_checkpoint == "on" or (cfg.async_checkpoint == "auto" and rt.distributed)
        self.checkpointer = Checkpointer(os.path.join(output, "checkpoints"), cfg.keep_checkpoints, rt, asynchronous)
        # the step-boundary flags travel on CPU: no device sync, and never on the group async saves use
        self.control = dist.new_group(backend="gloo") if rt.distributed else None
        self.progress = Progress()
        if resume_from:
            self._restore(resume_from)      # checks the checkpoint before the schedule: a bad one is the first news
            if not allow_schedule_change:
                refuse_schedule_change(schedule_changes)
        if rt.is_main:
            write_run_files(cfg, output, dataset, resume_from is not None)
        self.validation = Validation.find(val_data, dataset, cfg, rt) if cfg.val_every else None
        self.task_eval = self._task_eval(dataset) if cfg.eval_every else None
        self.n_params = sum(p.numel() for p in self.model.parameters())
        peak, self.device_name = peak_flops(rt.device, cfg.peak_tflops)
        self.throughput = Throughput(cfg.global_batch_tokens, flops_per_token(cfg, self.n_params), peak, rt.world_size,
                                     cfg.throughput_warmup_steps)
        self.metrics = MetricsLog(output, cfg.max_steps, self.progress.step, rt.is_main, cfg.tensorboard)
        if schedule_changes:
            self._schedule_changed(schedule_changes)
        self.energy = NvmlEnergy(rt.device)
        self.session_start, self.last_record, self.last_save = time.time(), {}, time.time()

    def _schedule_changed(self, changes: list[str]) -> None:
        if self.rt.is_main:
            log.warning("resumed at step %d with a changed learning-rate schedule (--allow-schedule-change): %s",
                        self.progress.step, "; ".join(changes))
        self.metrics.event({"kind": "schedule_change", "step": self.progress.step, "changes": changes})

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
        stopped = False
        try:
            for step in range(progress.step, end):
                run_step.run(step)   # queued: the host reads the step's figures only when they are needed
                progress.step, progress.tokens = step + 1, progress.tokens + cfg.global_batch_tokens
                self.throughput.tick()
                self.checkpointer.poll()
                if progress.step % cfg.log_every == 0 or progress.step == end:
                    self._account(run_step.drain(), log_last=True)
                stopped, save_due = self._boundary_flags()
                val_due = self.validation is not None and progress.step % cfg.val_every == 0
                eval_due = self.task_eval is not None and progress.step % cfg.eval_every == 0
                save_due = progress.step % cfg.checkpoint_every == 0 or progress.step == end or save_due or stopped
                if val_due or eval_due or save_due:
                    self._account(run_step.drain(), log_last=False)
                if val_due:
                    self._validate()
                if eval_due:
                    self._evaluate_tasks()
                if save_due:
                    self._save()
                if stopped:
                    break
        finally:
            run_step.close()
        self.checkpointer.wait()
        return self._finish(stopped)

    def _account(self, figures: list[StepFigures], log_last: bool) -> None:
        """Count the skipped updates among the steps just read back (before any checkpoint, so that its
        counters are exact), then log the last of them."""
        p = self.progress
        for f in figures:
            p.bad_steps += not f.applied
            p.consecutive_bad_steps = 0 if f.applied else p.consecutive_bad_steps + 1
            if not f.applied:
                self._skipped(f.step + 1, f.loss, f.grad_norm)
        if log_last and figures:
            last = figures[-1]
            self._log(last.lr, last.loss, last.grad_norm, last.applied)

    def _boundary_flags(self) -> tuple[bool, bool]:
        """(stop: a stop signal reached some process, save: the time-based checkpoint is due), the same on
        every process: process 0's clock decides the save."""
        every = self.cfg.checkpoint_every_s
        due = bool(every) and self.rt.is_main and time.time() - self.last_save >= every
        flags = torch.tensor([self.stop.received is not None, due], dtype=torch.int32)
        if self.control is not None:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.control)
        stop, due = bool(flags[0]), bool(flags[1])
        if stop and self.rt.is_main:
            why = signal.Signals(self.stop.received).name if self.stop.received else "another process's signal"
            log.warning("stopping after step %d with a checkpoint (%s)", self.progress.step, why)
        return stop, due

    def _validate(self) -> None:
        losses, sequences = self.validation.evaluate(self.model)
        self.metrics.validation({"kind": "val", "step": self.progress.step, "loss": losses, "sequences": sequences})

    def _task_eval(self, dataset: TokenDataset):
        from train.evaluation.in_loop import InLoopEval
        bf16 = use_bf16(self.cfg, self.rt.device)
        autocast = (lambda: torch.autocast(self.rt.device.type, dtype=torch.bfloat16)) if bf16 else None
        return InLoopEval.from_config(self.cfg, dataset, self.rt.device, autocast, self.rt.distributed)

    def _evaluate_tasks(self) -> None:
        results = self.task_eval.run(self.model)
        self.metrics.event({"kind": "eval", "step": self.progress.step, "tasks": results,
                            "accuracy": {name: r["accuracy"] for name, r in results.items()}})
        if self.rt.is_main:
            scores = ", ".join(f"{name} {100 * r['accuracy']:.1f}% of {r['n']}" for name, r in results.items())
            print(f"step {self.progress.step}: benchmarks {scores}", flush=True)

    def _skipped(self, step: int, loss: float, grad_norm: float) -> None:
        p = self.progress
        log.warning("step %d: loss %s, gradient norm %s: update skipped (%d in a row, limit %d)", step, loss,
                    grad_norm, p.consecutive_bad_steps, self.cfg.max_bad_steps)
        self.metrics.event({"kind": "skipped", "step": step, "loss": str(loss), "grad_norm": str(grad_norm)})
        if p.consecutive_bad_steps >= self.cfg.max_bad_steps:
            self.metrics.close()
            raise NonFiniteLossError(
                f"{p.consecutive_bad_steps} steps in a row (up to step {step}) had a non-finite loss or gradient "
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
        self.last_save = time.time()

    def _finish(self, stopped: bool = False) -> dict[str, Any]:
        total, cfg = self._totals(), self.cfg
        gpus = self.rt.world_size if self.rt.device.type == "cuda" else 0
        summary = {
            "config": cfg.name, "parameters": self.n_params, "steps": self.progress.step, "max_steps": cfg.max_steps,
            "tokens": self.progress.tokens, "final_loss": self.last_record.get("loss"),
            "skipped_steps": self.progress.bad_steps, "processes": self.rt.world_size, "device": self.device_name,
            "train_seconds": total.train_seconds, "session_seconds": time.time() - self.session_start,
            "mean_mfu": self.throughput.mean_mfu, "stopped_by_signal": stopped,
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
    if s.get("stopped_by_signal"):
        lines.append(f"stopped by a signal at step {s['steps']} with a checkpoint: resume with --resume (or --resume auto)")
    if s["mean_mfu"] is not None:
        lines.append(f"mean MFU {100 * s['mean_mfu']:.1f}%")
    return "\n".join(lines + format_energy(s))


class Validation:
    """The loss on held-out token datasets, one per source: the first `val_tokens` tokens (whole sequences)
    of each, split over the processes in equal slices (every process runs the same number of forward
    passes: FSDP gathers weights in each), token losses summed and all-reduced."""

    def __init__(self, datasets: dict[str, TokenDataset], cfg: TrainConfig, rt: Runtime):
        self.datasets, self.cfg, self.rt = datasets, cfg, rt
        bf16 = use_bf16(cfg, rt.device)
        self.autocast = (lambda: torch.autocast(rt.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    @classmethod
    def find(cls, directory: str | None, train_data: TokenDataset, cfg: TrainConfig, rt: Runtime) -> Validation | None:
        """The datasets under `directory`: itself when it holds dataset.json (one source, named after it),
        else each subdirectory that holds one. None (validation off) when there are none."""
        if not directory or not os.path.isdir(directory):
            if rt.is_main:
                log.info("no validation data (%s): validation loss is not measured", directory)
            return None
        if os.path.exists(os.path.join(directory, "dataset.json")):
            paths = {os.path.basename(os.path.normpath(directory)): directory}
        else:
            paths = {name: os.path.join(directory, name) for name in sorted(os.listdir(directory))
                     if os.path.exists(os.path.join(directory, name, "dataset.json"))}
        datasets = {}
        for source, path in paths.items():
            ds = TokenDataset(path, verify=True)
            if ds.tokenizer_sha256 != train_data.tokenizer_sha256 or ds.vocab_size != train_data.vocab_size:
                raise ValueError(f"validation data {path} was made with another tokenizer than {train_data.directory}")
            if ds.num_sequences(cfg.seq_len) < 1:      # a small source's few held-out documents
                if rt.is_main:
                    log.warning("validation data %s: %d tokens do not make one sequence of %d + 1: skipped", path,
                                ds.num_tokens, cfg.seq_len)
                continue
            datasets[source] = ds
        return cls(datasets, cfg, rt) if datasets else None

    def _slice(self, ds: TokenDataset) -> list[int]:
        """This process's sequence indices (repeating from the start when the dataset is shorter)."""
        want = max(1, self.cfg.val_tokens // self.cfg.seq_len)
        per_process = -(-want // self.rt.world_size)
        first = self.rt.rank * per_process
        return [(first + j) % ds.num_sequences(self.cfg.seq_len) for j in range(per_process)]

    @torch.no_grad()
    def evaluate(self, model) -> tuple[dict[str, float], dict[str, int]]:
        """({source: mean token loss}, {source: sequences evaluated over all processes})."""
        sums = torch.zeros(len(self.datasets), 2, dtype=torch.float64, device=self.rt.device)
        mb = self.cfg.micro_batch_size
        for k, ds in enumerate(self.datasets.values()):
            indices = self._slice(ds)
            for i in range(0, len(indices), mb):
                rows = np.stack([ds.sequence(j, self.cfg.seq_len) for j in indices[i:i + mb]]).astype(np.int64)
                tokens = torch.from_numpy(rows).to(self.rt.device)
                with self.autocast():
                    logits = model(tokens[:, :-1])
                loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="sum")
                sums[k, 0] += loss.double()
                sums[k, 1] += tokens[:, 1:].numel()
        sums = all_reduce(sums, self.rt, "sum").tolist()
        names = list(self.datasets)
        return ({n: s / c for n, (s, c) in zip(names, sums)},
                {n: int(c) // self.cfg.seq_len for n, (_, c) in zip(names, sums)})
