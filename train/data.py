"""Batches from a token dataset (tokenizer/shard_format.py), a deterministic slice per process.

The dataset is cut into fixed sequences (sequence i is tokens [i * T, i * T + T + 1)). A cursor points at
the first slot of the next global batch of B slots; within it, micro-step m of process r reads slots
cursor + (m * world_size + r) * micro_batch + [0, micro_batch). The cursor counts on past the end of the
data (a new epoch).

Slot j of epoch e reads sequence permute(j, seed, e): a seeded bijection on [0, n) (a four-round Feistel
network over the next even power of two, cycle-walking back into range), so each epoch visits every
sequence once in its own order, in constant memory whatever the dataset's size. The shard builder shuffled
documents, not sequences: read in order, the consecutive sequences of one long document (a book) would
fill whole batches with one source, and a small batch's loss would jump with it. Without a seed the
sequences are read in order.

The loader's state is the cursor and the dataset's identity, saved with every checkpoint, so a resumed run
reads exactly the sequences the uninterrupted one would have, even on a different number of processes.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from tokenizer.shard_format import TokenDataset

log = logging.getLogger("smallgiant.train")


_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def permute(index: int, n: int, seed: int, epoch: int = 0) -> int:
    """The position `index` (0 <= index < n) takes in a seeded permutation of [0, n), one per epoch."""
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    key = _mix((seed << 32) ^ epoch)
    x = index
    while True:
        left, right = x >> half, x & mask
        for rnd in range(4):
            left, right = right, left ^ (_mix(key ^ (rnd << 56) ^ right) & mask)
        x = (left << half) | right
        if x < n:          # cycle-walking: the domain is a power of four, at most 4n
            return x


class SequenceLoader:
    def __init__(self, dataset: TokenDataset, seq_len: int, global_batch: int, micro_batch: int,
                 rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu",
                 shuffle_seed: int | None = None):
        self.shuffle_seed = shuffle_seed
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
        rows = [self.dataset.sequence(self._sequence_at(first + j), self.seq_len) for j in range(self.micro_batch)]
        return np.stack(rows)

    def _sequence_at(self, slot: int) -> int:
        epoch, index = divmod(slot, self.num_sequences)
        if self.shuffle_seed is None:
            return index
        return permute(index, self.num_sequences, self.shuffle_seed, epoch)

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
