"""Compact document keys and the units of the work area.

A document's key is one 64-bit integer: the input file's index (24 bits), the part of the file (12 bits:
a large file may be read as several byte ranges at once, `pipeline.sources.base.Source.spans`) and the
document's row number in that part (28 bits). Keys sort as the input does, so "the first copy" is "the
smallest key" in every step. Rows are cut into units of `chunk_docs` rows; a unit's id is again an
integer of the same layout, the chunk's number in place of the row, so that a decision about a key goes
to its unit without any table.
"""
from __future__ import annotations

import dataclasses

import numpy as np

ROW_BITS = 28
PART_BITS = 12
FILE_BITS = 24
PART_SHIFT = ROW_BITS
FILE_SHIFT = ROW_BITS + PART_BITS
MAX_ROWS = 1 << ROW_BITS          # rows of one part of a file
MAX_PARTS = 1 << PART_BITS        # parts of one file
MAX_FILES = 1 << FILE_BITS        # files of one job
DEFAULT_CHUNK_DOCS = 2000
ROW_MASK = MAX_ROWS - 1


def doc_key(file_index: int, row: int, part: int = 0) -> int:
    if not (0 <= file_index < MAX_FILES and 0 <= part < MAX_PARTS and 0 <= row < MAX_ROWS):
        raise ValueError(f"key out of range: file {file_index} (< {MAX_FILES}), part {part} (< {MAX_PARTS}), "
                         f"row {row} (< {MAX_ROWS})")
    return (file_index << FILE_SHIFT) | (part << PART_SHIFT) | row


def key_text(key: int) -> str:
    """`<file>:<row>` (`<file>.<part>:<row>` past a file's first part), for messages."""
    file_index, part, row = key >> FILE_SHIFT, (key >> PART_SHIFT) & (MAX_PARTS - 1), key & ROW_MASK
    where = f"{file_index:06d}" if part == 0 else f"{file_index:06d}.{part:04d}"
    return f"{where}:{row:09d}"


def unit_id(file_index: int, chunk: int, part: int = 0) -> int:
    return (file_index << FILE_SHIFT) | (part << PART_SHIFT) | chunk


def unit_of(key: int, chunk_docs: int) -> int:
    return (key & ~ROW_MASK) | ((key & ROW_MASK) // chunk_docs)


def units_of(keys: np.ndarray, chunk_docs: int) -> np.ndarray:
    keys = keys.astype(np.uint64, copy=False)
    return (keys & ~np.uint64(ROW_MASK)) | ((keys & np.uint64(ROW_MASK)) // np.uint64(chunk_docs))


@dataclasses.dataclass(frozen=True, order=True)
class Unit:
    """`rows` consecutive rows of part `part` of input file `file`, starting at row `chunk * chunk_docs`;
    `dead` says the part has dead letters (kept with its first unit)."""
    file: int
    part: int
    chunk: int
    rows: int
    dead: bool = False

    @property
    def id(self) -> int:
        return unit_id(self.file, self.chunk, self.part)

    @property
    def name(self) -> str:
        return f"u-{self.file:06d}-{self.part:04d}-{self.chunk:05d}"

    @property
    def reader(self) -> str:
        """The name of the read pass that wrote the unit: one per part of a file."""
        return part_name(self.file, self.part)


def part_name(file_index: int, part: int) -> str:
    return f"{file_index:06d}-{part:04d}"
