"""Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py), one sequence per document:

    tokens.bin   the tokens back to back
    tokens.idx   b"MMIDIDX\\x00\\x00", <Q version 1, <B dtype code (Megatron's DType: uint16 = 8, int32 = 4),
                 <Q sequence count, <Q document index count (documents + 1), then int32 sequence lengths,
                 int64 sequence pointers (byte offsets into tokens.bin) and int64 document indices (the
                 sequence where each document starts, from 0 to the sequence count)

Megatron's DType has no uint32: a dataset of uint32 tokens is written as int32, the dtype Megatron's own
preprocessing uses for large vocabularies; ids below 2**31 keep their values.
Train with `--data-path DIRECTORY/tokens`.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Iterator

import numpy as np

from tokenizer.exporters import copy_tokens, write_arrays
from tokenizer.shard_format import TOKEN_DTYPE, ShardFormatError, TokenDataset, dtype_name

PREFIX = "tokens"
FILES = [PREFIX + ".bin", PREFIX + ".idx"]
INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES = {np.dtype("<u2"): 8, np.dtype("<i4"): 4}


def token_dtype(ds: TokenDataset) -> np.dtype:
    if ds.token_dtype == TOKEN_DTYPE:
        return np.dtype("<u2")
    if ds.vocab_size > np.iinfo(np.int32).max + 1:
        raise ShardFormatError(f"a vocabulary of {ds.vocab_size} does not fit Megatron's int32 tokens")
    return np.dtype("<i4")


def _lengths(ds: TokenDataset) -> Iterator[np.ndarray]:
    """Every document's length, one array per shard's index."""
    previous = 0
    for ends in ds.document_ends():
        lengths = np.diff(ends, prepend=previous)
        if lengths.max() > np.iinfo(np.int32).max:
            raise ShardFormatError("a document of 2**31 tokens or more does not fit Megatron's int32 lengths")
        previous = int(ends[-1])
        yield lengths


def _pointers(ds: TokenDataset, itemsize: int) -> Iterator[np.ndarray]:
    """Every document's byte offset in tokens.bin."""
    previous = 0
    for ends in ds.document_ends():
        starts = np.concatenate(([previous], ends[:-1]))
        previous = int(ends[-1])
        yield starts * itemsize


def _document_indices(count: int, chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    for first in range(0, count + 1, chunk):
        yield np.arange(first, min(first + chunk, count + 1), dtype=np.int64)


def write(ds: TokenDataset, directory: str) -> dict[str, Any]:
    dtype = token_dtype(ds)
    documents = int(ds.manifest["num_documents"])
    with open(os.path.join(directory, PREFIX + ".bin"), "wb") as f:
        copy_tokens(ds, 0, ds.num_tokens, f, dtype)
    with open(os.path.join(directory, PREFIX + ".idx"), "wb") as f:
        f.write(INDEX_HEADER + struct.pack("<QB", INDEX_VERSION, DTYPE_CODES[dtype]))
        f.write(struct.pack("<QQ", documents, documents + 1))
        written = write_arrays(f, _lengths(ds), np.dtype("<i4"))
        if written != documents:
            raise ShardFormatError(f"{ds.directory}: dataset.json gives {documents} documents, its index {written}")
        write_arrays(f, _pointers(ds, dtype.itemsize), np.dtype("<i8"))
        write_arrays(f, _document_indices(documents), np.dtype("<i8"))
    return {"files": FILES, "dtype": dtype_name(dtype), "dtype_code": DTYPE_CODES[dtype],
            "tokens": ds.num_tokens, "documents": documents}


def usage(output: str, written: dict[str, Any]) -> str:
    return f"Megatron-LM reads it with --data-path {os.path.join(output, PREFIX)} ({written['dtype']} tokens)"
