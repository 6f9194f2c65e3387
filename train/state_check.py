"""The trainer state a checkpoint carries (trainer_state.json), checked before a run resumes from it.

Every field follows from the step and the frozen configuration: a run at step s has trained
s x global_batch_tokens tokens, its data cursor is s x the global batch in sequences, and it counted at
most s skipped steps. A state that breaks one of these was not written by a run of this configuration
(edited by hand, damaged, or from another run), and resuming from it would train on the wrong data or
overwrite checkpoints under a wrong step, so it is refused with the field and its value.
"""
from __future__ import annotations

import math
import os
from typing import Any, NoReturn

from train.checkpoint import STEP_DIR, TRAINER_STATE
from train.config import TrainConfig

_FIELDS = ("step", "tokens", "bad_steps", "consecutive_bad_steps", "train_seconds", "measured_joules", "world_size",
           "loader")
_LOADER_KEYS = ("cursor", "seq_len", "num_tokens", "tokenizer_sha256")


def check_trainer_state(state: Any, checkpoint: str, cfg: TrainConfig) -> None:
    """Raise ValueError naming the field and value when `state` (read from `checkpoint`) is impossible
    for a run of `cfg` (resolved: max_steps set)."""
    check = _Checker(os.path.join(checkpoint, TRAINER_STATE))
    if not isinstance(state, dict):
        raise ValueError(f"{check.where}: must be a JSON object, not {type(state).__name__}")
    for field in _FIELDS:
        if field not in state:
            check.fail(field, None, "is missing")
    step = check.count("step", state["step"])
    if step > cfg.max_steps:
        check.fail("step", step, f"is past the end of the run (max_steps {cfg.max_steps})")
    named = STEP_DIR.match(os.path.basename(os.path.normpath(checkpoint)))
    if named is None or int(named.group(1)) != step:
        check.fail("step", step, f"differs from the checkpoint directory's ({os.path.basename(checkpoint)})")
    if check.count("tokens", state["tokens"]) != step * cfg.global_batch_tokens:
        check.fail("tokens", state["tokens"], f"is not step {step} x global_batch_tokens {cfg.global_batch_tokens}")
    if check.count("bad_steps", state["bad_steps"]) > step:
        check.fail("bad_steps", state["bad_steps"], f"exceeds step {step}")
    if check.count("consecutive_bad_steps", state["consecutive_bad_steps"]) > state["bad_steps"]:
        check.fail("consecutive_bad_steps", state["consecutive_bad_steps"], f"exceeds bad_steps {state['bad_steps']}")
    check.seconds("train_seconds", state["train_seconds"])
    if state["measured_joules"] is not None:             # None: a session could not measure energy
        check.seconds("measured_joules", state["measured_joules"])
    _check_world_and_cursor(check, state, step, cfg)


def _check_world_and_cursor(check: "_Checker", state: dict[str, Any], step: int, cfg: TrainConfig) -> None:
    """The saved world size split the (frozen) global batch, and the cursor is where `step` batches end."""
    batch = cfg.global_batch_sequences
    world = state["world_size"]
    if check.count("world_size", world) == 0 or batch % world:
        check.fail("world_size", world, f"cannot split the global batch of {batch} sequences into equal slices")
    loader = state["loader"]
    if not isinstance(loader, dict):
        check.fail("loader", loader, "is not a JSON object")
    for key in _LOADER_KEYS:
        if key not in loader:
            check.fail(f"loader.{key}", None, "is missing")
    if check.count("loader.cursor", loader["cursor"]) != step * batch:
        check.fail("loader.cursor", loader["cursor"], f"is not step {step} x {batch} sequences per step")


class _Checker:
    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, value: Any, why: str) -> NoReturn:
        raise ValueError(f"{self.where}: {field} {value!r} {why}: this checkpoint cannot be resumed")

    def count(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(field, value, "is not a non-negative integer")
        return value

    def seconds(self, field: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            self.fail(field, value, "is not a finite non-negative number")
