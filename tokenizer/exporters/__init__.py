"""Writers of a token dataset (`tokenizer.shard_format`) in other trainers' formats, one module per format:
`megatron` (Megatron-LM's indexed dataset), `nanotron` (datatrove's .ds files, which nanotron reads) and
`nanogpt` (nanoGPT's train.bin and val.bin).

Each module has `FILES`, the names it writes, and `write(dataset, directory, **options) -> dict`, which
writes them into `directory` and returns what it wrote. They stream: tokens are copied from the
memory-mapped shards CHUNK_TOKENS at a time and document boundaries are read one shard's index at a time
(`TokenDataset.document_ends`), so memory is bounded by a chunk, not by the dataset.
"""
from __future__ import annotations

from typing import BinaryIO, Iterable

import numpy as np

from tokenizer.shard_format import TokenDataset

CHUNK_TOKENS = 1 << 22


def copy_tokens(ds: TokenDataset, start: int, end: int, f: BinaryIO, dtype: np.dtype) -> int:
    """Write tokens [start, end) of the stream to `f` as little-endian `dtype`; return how many."""
    pos = start
    while pos < end:
        take = min(CHUNK_TOKENS, end - pos)
        f.write(ds.read(pos, take).astype(dtype, copy=False).tobytes())
        pos += take
        _release_all(ds)   # unmapped after each chunk: mapped pages of the shards passed are not held
    return end - start


def write_arrays(f: BinaryIO, arrays: Iterable[np.ndarray], dtype: np.dtype) -> int:
    """Write each array to `f` as `dtype`, back to back; return the number of elements written."""
    n = 0
    for array in arrays:
        f.write(np.asarray(array).astype(dtype, copy=False).tobytes())
        n += len(array)
    return n


def _release_all(ds: TokenDataset) -> None:
    for i in range(len(ds.shards)):
        ds.release(i)


def formats() -> dict:
    """Format name -> its writer module."""
    from tokenizer.exporters import megatron, nanogpt, nanotron
    return {"megatron": megatron, "nanotron": nanotron, "nanogpt": nanogpt}
