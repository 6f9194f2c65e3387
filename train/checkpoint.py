"""Checkpoints with torch.distributed.checkpoint (DCP): every process writes its own shards in parallel.

A checkpoint is a directory `checkpoints/step-NNNNNNNN/` holding DCP's files (model and optimizer state,
sharded the way FSDP2 holds them) and `trainer_state.json` (step, data loader cursor, counters). It is
written under a temporary name and renamed by process 0 once every process has finished writing: a
crash in the middle of a save leaves the previous checkpoint as the latest loadable one. Only the last
K are kept. An asynchronous save (`async_save`) copies the state to host memory and returns; the files are
written by a background thread, over a gloo process group of its own, while training goes on, and the
rename happens once the save has finished (`poll`, or `wait` before the next save and at the end); a
crash before then leaves only the temporary directory. DCP records global tensor shapes, so a checkpoint loads on any number of processes
(resharding on load). Loading unpickles nothing but DCP's own bookkeeping (train/safe_reader.py);
tensors are raw bytes, small objects go through torch.load(weights_only=True), the rest is JSON.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import time
import warnings
from concurrent.futures import Future
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from train.parallel import Runtime, barrier
from train.safe_reader import safe_load

log = logging.getLogger("smallgiant.train")
STEP_DIR = re.compile(r"^step-(\d{8})$")
TRAINER_STATE = "trainer_state.json"


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def quiet_single_process():
    """DCP warns that it assumes one process whenever no process group exists: that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """Complete checkpoints, oldest first, as (step, path)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = STEP_DIR.match(name)
        if m and os.path.exists(os.path.join(directory, name, TRAINER_STATE)):
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(directory: str) -> tuple[int, str] | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def read_trainer_state(path: str) -> Any:
    """The parsed trainer_state.json of a checkpoint directory (train/state_check.py checks it)."""
    where = os.path.join(path, TRAINER_STATE)
    with open(where, "rb") as f:
        try:
            return json.load(f)
        except ValueError as exc:          # JSON syntax and UTF-8 errors alike
            raise ValueError(f"{where}: not valid JSON ({exc})") from None


@dataclasses.dataclass
class _Pending:
    """An asynchronous save whose files are still being written."""
    future: Future
    step: int
    tmp: str
    final: str
    trainer_state: dict[str, Any]
    started: float


class Checkpointer:
    def __init__(self, directory: str, keep: int, rt: Runtime, asynchronous: bool = False):
        self.directory, self.keep, self.rt, self.asynchronous = directory, keep, rt, asynchronous
        self.pending: _Pending | None = None
        # async saves run collectives from a background thread: never on the training's process group
        self.group = dist.new_group(backend="gloo") if asynchronous and rt.distributed else None

    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any]) -> str:
        """Save (or, asynchronous, start saving) the state after `step`; return the checkpoint's final path."""
        self.wait()
        final = os.path.join(self.directory, f"step-{step:08d}")
        tmp = os.path.join(self.directory, f".tmp-step-{step:08d}")
        t0 = time.time()
        if self.rt.is_main:
            os.makedirs(self.directory, exist_ok=True)
            for name in os.listdir(self.directory):      # leftovers of an interrupted save
                if name.startswith(".tmp-step-"):
                    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            os.makedirs(tmp)
        barrier(self.rt)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        trainer_state = {**trainer_state, "step": step}
        if self.asynchronous:
            with quiet_single_process():
                future = dcp.async_save(state, checkpoint_id=tmp, process_group=self.group,
                                        no_dist=not self.rt.distributed)
            self.pending = _Pending(future, step, tmp, final, trainer_state, t0)
            return final
        with quiet_single_process():
            dcp.save(state, checkpoint_id=tmp, no_dist=not self.rt.distributed)
        barrier(self.rt)
        if self.rt.is_main:
            self._finalize(tmp, final, trainer_state, t0)
        barrier(self.rt)
        return final

    def poll(self) -> None:
        """Complete a finished asynchronous save (rename it into place); never waits."""
        if self.pending is not None and self.pending.future.done():
            self.wait()

    def wait(self) -> None:
        """Block until the asynchronous save in flight (if any) is written, then complete it. Process 0's
        save finishes only after every process's files are written (DCP gathers them to write the
        metadata), so the rename needs no barrier."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        pending.future.result()                         # a failed save raises here
        if self.rt.is_main:
            self._finalize(pending.tmp, pending.final, pending.trainer_state, pending.started)

    def _finalize(self, tmp: str, final: str, trainer_state: dict[str, Any], started: float) -> None:
        write_json_atomic(os.path.join(tmp, TRAINER_STATE), trainer_state)
        if os.path.exists(final):                    # a re-run of the same step after a resume
            shutil.rmtree(final)
        os.rename(tmp, final)
        self._prune()
        log.info("checkpoint: step %d saved to %s (%.1f s)", trainer_state["step"], final, time.time() - started)

    def _prune(self) -> None:
        for _, path in list_checkpoints(self.directory)[:-self.keep]:
            shutil.rmtree(path, ignore_errors=True)

    def load(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
        """Load model (and optimizer) state in place, resharding to this run's processes; return the trainer state."""
        state = read_trainer_state(path)
        if optimizer is None:
            model_sd = get_model_state_dict(model)
            with quiet_single_process():
                safe_load({"model": model_sd}, path, no_dist=not self.rt.distributed)
            set_model_state_dict(model, model_sd)
            return state
        model_sd, optim_sd = get_state_dict(model, optimizer)
        with quiet_single_process():
            safe_load({"model": model_sd, "optim": optim_sd}, path, no_dist=not self.rt.distributed)
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
        return state


def read_weights(path: str, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The named model tensors of a checkpoint, float32 on CPU, read in this process alone."""
    state = {name: torch.empty(shape, dtype=torch.float32) for name, shape in shapes.items()}
    with quiet_single_process():
        safe_load({"model": state}, path, no_dist=True)
    return state
