"""Compact document keys and the units of the work area.

A document's key is one 64-bit integer: the input file's index in the high 32 bits, the document's row
number in that file in the low 32. Keys sort as the input does, so "the first copy" is "the smallest key"
in every step. Rows are cut into units of `chunk_docs` rows; a unit's id is again an integer, so that a
decision about a key goes to its unit without any table.
"""
from __future__ import annotations

import dataclasses

import numpy as np

ROW_BITS = 32
DEFAULT_CHUNK_DOCS = 2000
CHUNK_BITS = 20
ROW_MASK = (1 << ROW_BITS) - 1


def doc_key(file_index: int, row: int) -> int:
    return (file_index << ROW_BITS) | row


def key_text(key: int) -> str:
    """`<file>:<row>`, for messages."""
    return f"{key >> ROW_BITS:06d}:{key & ROW_MASK:09d}"


def unit_id(file_index: int, chunk: int) -> int:
    return (file_index << CHUNK_BITS) | chunk


def unit_of(key: int, chunk_docs: int) -> int:
    return unit_id(key >> ROW_BITS, (key & ROW_MASK) // chunk_docs)


def units_of(keys: np.ndarray, chunk_docs: int) -> np.ndarray:
    keys = keys.astype(np.uint64, copy=False)
    files = keys >> np.uint64(ROW_BITS)
    chunks = (keys & np.uint64(ROW_MASK)) // np.uint64(chunk_docs)
    return (files << np.uint64(CHUNK_BITS)) | chunks


@dataclasses.dataclass(frozen=True, order=True)
class Unit:
    """`rows` consecutive rows of input file `file`, starting at row `chunk * chunk_docs`; `dead` says the
    file has dead letters (kept with its first unit)."""
    file: int
    chunk: int
    rows: int
    dead: bool = False

    @property
    def id(self) -> int:
        return unit_id(self.file, self.chunk)

    @property
    def name(self) -> str:
        return f"u-{self.file:06d}-{self.chunk:05d}"
