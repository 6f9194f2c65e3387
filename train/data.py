"""Batches from a token dataset (tokenizer/shard_format.py), a deterministic slice per process.

The shard builder already shuffled the documents globally, so sequences are read in order. A cursor
points at the first sequence of the next global batch of B sequences; within it, micro-step m of process
r reads sequences cursor + (m * world_size + r) * micro_batch + [0, micro_batch). The cursor wraps
around the end of the data (a new epoch). The loader's state is the cursor and the dataset's identity,
saved with every checkpoint, so a resumed run reads exactly the sequences the uninterrupted one would
have, even on a different number of processes.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from tokenizer.shard_format import TokenDataset

log = logging.getLogger("smallgiant.train")


class SequenceLoader:
    def __init__(self, dataset: TokenDataset, seq_len: int, global_batch: int, micro_batch: int,
                 rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"):
        self.dataset, self.seq_len = dataset, seq_len
        self.global_batch, self.micro_batch = global_batch, micro_batch
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.num_sequences = dataset.num_sequences(seq_len)
        if self.num_sequences < 1:
            raise ValueError(f"{dataset.directory}: {dataset.num_tokens} tokens do not make one sequence of "
                             f"{seq_len} + 1")
        if global_batch % (micro_batch * world_size):
            raise ValueError(f"global batch {global_batch} is not a multiple of {micro_batch} x {world_size}")
        self.cursor = 0          # global index of the next batch's first sequence, counting every epoch

    @property
    def accum_steps(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    @property
    def epoch(self) -> float:
        return self.cursor / self.num_sequences

    def micro_batch_tokens(self, micro_step: int) -> np.ndarray:
        """(micro_batch, seq_len + 1) tokens of this process's slice for `micro_step` of the current batch."""
        first = self.cursor + (micro_step * self.world_size + self.rank) * self.micro_batch
        rows = [self.dataset.sequence((first + j) % self.num_sequences, self.seq_len) for j in range(self.micro_batch)]
        return np.stack(rows)

    def batch(self, micro_step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) as int64 tensors on the device, each (micro_batch, seq_len)."""
        tokens = torch.from_numpy(self.micro_batch_tokens(micro_step).astype(np.int64))
        if self.device.type == "cuda":
            tokens = tokens.pin_memory().to(self.device, non_blocking=True)
        return tokens[:, :-1], tokens[:, 1:]

    def advance(self) -> None:
        before = int(self.epoch)
        self.cursor += self.global_batch
        if int(self.epoch) != before and self.rank == 0:
            log.info("data: epoch %d begins (the dataset holds %d sequences of %d)", int(self.epoch),
                     self.num_sequences, self.seq_len)

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "seq_len": self.seq_len, "num_tokens": self.dataset.num_tokens,
                "tokenizer_sha256": self.dataset.tokenizer_sha256}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, have in (("seq_len", self.seq_len), ("num_tokens", self.dataset.num_tokens),
                          ("tokenizer_sha256", self.dataset.tokenizer_sha256)):
            if state[key] != have:
                raise ValueError(f"the checkpoint's data has {key} {state[key]!r}, this dataset {have!r}: "
                                 "resume with the dataset the run started with")
        cursor = state["cursor"]
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0 or cursor % self.global_batch:
            raise ValueError(f"the checkpoint's data cursor {cursor!r} is not the start of a batch of "
                             f"{self.global_batch} sequences: it points at no position in the data")
        self.cursor = cursor
