"""Deterministic Parquet output.

`RowBatches` writes rows as they come, in batches (bounded memory): the curation engine's work area and
outputs, and the classifier's scores, use it. `WriteShards` is for small outputs that may be shuffled
(dead letters of the classifier's dataset job): rows are routed to shards by input file, sorted by key
inside a shard and written with zstd, so the same input gives byte-identical files whatever the runner's
bundling. Jobs write the shards under
their claimed output's staging area (`pipeline.runtime.guard`), which publishes them only after the whole
job succeeded, so a failed run never leaves a half-written output behind.
"""
from __future__ import annotations

import apache_beam as beam
import xxhash
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.runtime.counters import timed
from pipeline.inputs import join

ROW_GROUP = 10_000
BATCH_ROWS = 512
BATCH_BYTES = 32 << 20


class RowBatches:
    """Rows appended one at a time, written to a Parquet file in batches (bounded memory)."""

    def __init__(self, path: str, schema: pa.Schema, batch_rows: int = BATCH_ROWS):
        self.path, self.schema, self.batch_rows = path, schema, batch_rows
        self.rows: list[dict] = []
        self.count = self.bytes = 0
        self._file = self._writer = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        self.bytes += len(row.get("text") or "")
        if len(self.rows) >= self.batch_rows or self.bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        if self._writer is None:
            self._file = FileSystems.create(self.path)
            self._writer = pq.ParquetWriter(self._file, self.schema, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows, self.bytes = [], 0

    def close(self) -> int:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._file.close()
        return self.count



def doc_key(file_index: int, seq: int) -> str:
    """A document's key as text (`pipeline.engine.keys`): `<file index>:<record number>`, ordered as the
    input is, so that "the first copy" and "the smallest key" mean the same thing in every job."""
    from pipeline.engine.keys import doc_key as int_key, key_text
    return key_text(int_key(file_index, seq))


def shard_of(key: str, n_shards: int) -> int:
    """Keys start with the input file's index (`<file>:<position>`), so a shard holds whole files."""
    prefix = key.split(":", 1)[0]
    return (int(prefix) if prefix.isdigit() else xxhash.xxh64_intdigest(prefix.encode())) % n_shards


class _WriteShard(beam.DoFn):
    def __init__(self, directory: str, schema: pa.Schema):
        self.directory = directory
        self.schema = schema

    def process(self, group):
        shard, rows = group
        with timed("write"):
            ordered = [row for _, row in sorted(rows, key=lambda r: r[0])]
            table = pa.Table.from_pylist(ordered, schema=self.schema)
            path = join(self.directory, f"part-{shard:05d}.parquet")
            with FileSystems.create(path) as f:
                pq.write_table(table, f, compression="zstd", row_group_size=ROW_GROUP)
        yield path


class WriteShards(beam.PTransform):
    """(sort key, row dict) -> Parquet files `part-NNNNN.parquet` under `directory`."""

    def __init__(self, directory: str, schema: pa.Schema, n_shards: int):
        super().__init__()
        self.directory, self.schema, self.n_shards = directory, schema, n_shards

    def expand(self, rows):
        n = self.n_shards
        return (rows | "Shard" >> beam.Map(lambda kv: (shard_of(kv[0], n), kv))
                | "Group shard" >> beam.GroupByKey()
                | "Write Parquet" >> beam.ParDo(_WriteShard(self.directory, self.schema)))
