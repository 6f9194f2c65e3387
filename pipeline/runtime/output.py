"""Deterministic Parquet output.

Rows are routed to shards by input file, sorted by document key inside a shard and written with zstd, so
the same input gives byte-identical files whatever the runner's bundling. Jobs write the shards under
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


def doc_key(file_index: int, seq: int) -> str:
    """A document's key, `<file index>:<record number>`: unique, and ordered as the input is, so that "the
    first copy" and "the smallest key" mean the same thing in every job."""
    return f"{file_index:06d}:{seq:09d}"


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
