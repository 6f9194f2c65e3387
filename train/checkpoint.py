"""Checkpoints with torch.distributed.checkpoint (DCP): every process writes its own shards in parallel.

A checkpoint is a directory `checkpoints/step-NNNNNNNN/` holding DCP's files (model and optimizer state,
sharded the way FSDP2 holds them) and `trainer_state.json` (step, data loader cursor, counters). It is
written under a temporary name and renamed by process 0 once every process has finished writing: a
crash in the middle of a save leaves the previous checkpoint as the latest loadable one. Only the last
K are kept. DCP records global tensor shapes, so a checkpoint loads on any number of processes
(resharding on load). Loading unpickles nothing but DCP's own bookkeeping (train/safe_reader.py);
tensors are raw bytes, small objects go through torch.load(weights_only=True), the rest is JSON.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from typing import Any

import torch
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


class Checkpointer:
    def __init__(self, directory: str, keep: int, rt: Runtime):
        self.directory, self.keep, self.rt = directory, keep, rt

    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any]) -> str:
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
        with quiet_single_process():
            dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp, no_dist=not self.rt.distributed)
        barrier(self.rt)
        if self.rt.is_main:
            write_json_atomic(os.path.join(tmp, TRAINER_STATE), {**trainer_state, "step": step})
            if os.path.exists(final):                    # a re-run of the same step after a resume
                shutil.rmtree(final)
            os.rename(tmp, final)
            self._prune()
            log.info("checkpoint: step %d saved to %s (%.1f s)", step, final, time.time() - t0)
        barrier(self.rt)
        return final

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
