"""The work area: every document written once, after its read pass, and read back by unit.

Layout under `<output>/_work/`:
- `units/u-FFFFFF-CCCCC.parquet`: a unit's rows (documents, and documents rejected while reading, with
  their stage and reason), in input order, each with its integer key.
- `units/u-FFFFFF-CCCCC.lines.npy`: the unit's line hashes, computed once by the first step that needs them.
- `read/FFFFFF.dead.parquet`: the file's dead letters.
- `read/FFFFFF.done`: written last by a completed read pass: the units, the pass's counters and the
  settings it ran with. A resumed run reads no file that has one.
"""
from __future__ import annotations

import io
import json
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.engine.keys import Unit
from pipeline.inputs import join
from pipeline.runtime.guard import delete_files, exists, files_under, read_bytes, write_atomically
from pipeline.schema import DEAD_LETTER_SCHEMA, REJECT_SCHEMA, DeadLetter, Document, Rejected

SPILL_SCHEMA = pa.schema([pa.field("key", pa.uint64())] + list(REJECT_SCHEMA))
BATCH_ROWS = 512
LINE_DTYPE = np.dtype([("key", "<u8"), ("start", "<u8"), ("end", "<u8")])


def unit_path(work: str, unit: Unit, suffix: str = ".parquet") -> str:
    return join(work, "units", unit.name + suffix)


def marker_path(work: str, file_index: int) -> str:
    return join(work, "read", f"{file_index:06d}.done")


def dead_path(work: str, file_index: int) -> str:
    return join(work, "read", f"{file_index:06d}.dead.parquet")


def spill_row(key: int, item: Document | Rejected) -> dict:
    if isinstance(item, Rejected):
        return {"key": key, **item.to_row()}
    return {"key": key, **item.to_row(), "stage": None, "reason": None}


def read_rows(work: str, unit: Unit, columns: list[str] | None = None) -> Iterator[dict]:
    """The unit's rows as dicts, streaming."""
    path = unit_path(work, unit)
    if unit.rows == 0:
        return
    with FileSystems.open(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield from batch.to_pylist()


def row_item(row: dict) -> Document | Rejected:
    doc = Document.from_row(row)
    return Rejected(doc, row["stage"], row["reason"]) if row.get("stage") else doc


def fetch(work: str, units: dict[int, Unit], keys: list[int], chunk_docs: int,
          columns: list[str] | None = None) -> dict[int, dict]:
    """Rows of other units by key (each unit read once, only the columns asked for)."""
    from pipeline.engine.keys import unit_of
    wanted: dict[int, set[int]] = {}
    for key in keys:
        wanted.setdefault(unit_of(key, chunk_docs), set()).add(key)
    out: dict[int, dict] = {}
    cols = None if columns is None else ["key", *columns]
    for uid, ks in sorted(wanted.items()):
        unit = units.get(uid)
        if unit is None:
            continue
        for row in read_rows(work, unit, cols):
            if row["key"] in ks:
                out[row["key"]] = row
    return out


def write_dead(work: str, file_index: int, letters: list[DeadLetter]) -> None:
    if not letters:
        return
    table = pa.Table.from_pylist([d.to_row() for d in letters], schema=DEAD_LETTER_SCHEMA)
    with FileSystems.create(dead_path(work, file_index)) as f:
        pq.write_table(table, f, compression="zstd")


def read_dead(work: str, file_index: int) -> list[dict]:
    with FileSystems.open(dead_path(work, file_index)) as f:
        return pq.read_table(f).to_pylist()


def write_marker(work: str, file_index: int, marker: dict) -> None:
    write_atomically(marker_path(work, file_index), json.dumps(marker, sort_keys=True).encode())


def read_marker(work: str, file_index: int) -> dict | None:
    path = marker_path(work, file_index)
    if not exists(path):
        return None
    try:
        return json.loads(read_bytes(path))
    except ValueError:
        return None


def save_array(path: str, array: np.ndarray) -> None:
    """Written atomically: a reader finds the whole array or none."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_atomically(path, buf.getvalue())


def load_array(path: str) -> np.ndarray | None:
    if not exists(path):
        return None
    try:
        return np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)
    except ValueError:
        return None


def forget_file(work: str, file_index: int) -> None:
    """Remove what an unfinished read pass of the file left (its units and their caches)."""
    prefix = f"u-{file_index:06d}-"
    units = join(work, "units")
    delete_files([join(units, f) for f in files_under(units) if f.startswith(prefix)])
