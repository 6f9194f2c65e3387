"""The work area: every document written once, after its read pass, and read back by unit.

Layout under `<output>/_work/`:
- `units/u-FFFFFF-PPPP-CCCCC.parquet`: a unit's rows (file, part of the file, chunk) (documents, and documents rejected while reading, with
  their stage and reason), in input order, each with its integer key.
- `units/u-FFFFFF-PPPP-CCCCC.lines.npy`: the unit's line hashes, computed once by the first step that needs them.
- `read/FFFFFF-PPPP.dead.parquet`: the dead letters of a part of a file.
- `read/FFFFFF-PPPP.done`: written last by a completed read pass of a part: its byte range, units, the
  pass's counters and the settings it ran with. A resumed run reads no part that has one.
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


def marker_path(work: str, reader: str) -> str:
    return join(work, "read", f"{reader}.done")


def dead_path(work: str, reader: str) -> str:
    return join(work, "read", f"{reader}.dead.parquet")


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


def write_dead(work: str, reader: str, letters: list[DeadLetter]) -> None:
    if not letters:
        return
    table = pa.Table.from_pylist([d.to_row() for d in letters], schema=DEAD_LETTER_SCHEMA)
    with FileSystems.create(dead_path(work, reader)) as f:
        pq.write_table(table, f, compression="zstd")


def read_dead(work: str, reader: str) -> list[dict]:
    with FileSystems.open(dead_path(work, reader)) as f:
        return pq.read_table(f).to_pylist()


def write_marker(work: str, reader: str, marker: dict) -> None:
    write_atomically(marker_path(work, reader), json.dumps(marker, sort_keys=True).encode())


def read_marker(work: str, reader: str) -> dict | None:
    path = marker_path(work, reader)
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


def forget_part(work: str, reader: str) -> None:
    """Remove what an unfinished read pass of a part of a file left (its units and their caches)."""
    prefix = f"u-{reader}-"
    units = join(work, "units")
    delete_files([join(units, f) for f in files_under(units) if f.startswith(prefix)])
