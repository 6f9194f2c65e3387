"""Deterministic, atomic Parquet output.

Rows are routed to shards by input file, sorted by document key inside a shard and written with zstd, so
the same input gives byte-identical files whatever the runner's bundling. Shards are written under
`DIR/_staging/`; only after the whole job succeeded does `publish` replace `DIR/docs`, `DIR/rejects` and
`DIR/dead_letters` with them, so a failed run never leaves a half-written output behind.
"""
from __future__ import annotations

import posixpath
import shutil

import apache_beam as beam
import xxhash
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.runtime.counters import timed
from pipeline.inputs import join

STAGING = "_staging"
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


def _files_under(directory: str) -> list[str]:
    pattern = join(directory, "**") if "://" in directory else join(directory, "*")
    try:
        return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
    except Exception:
        return []


def clear_staging(output: str) -> None:
    """Remove what a failed earlier run left in the staging area, so that it is never published."""
    staging = join(output, STAGING)
    if "://" not in output:
        shutil.rmtree(staging, ignore_errors=True)
        return
    leftovers = _files_under(staging)
    if leftovers:
        FileSystems.delete(leftovers)


def publish(output: str, names: list[str]) -> None:
    """Move each staged output directory to its final place, replacing what a previous run left."""
    for name in names:
        final = join(output, name)
        old = _files_under(final)
        if old:
            FileSystems.delete(old)
        staged = _files_under(join(output, STAGING, name))
        if not FileSystems.exists(final):
            FileSystems.mkdirs(final)
        if staged:
            FileSystems.rename(staged, [join(final, posixpath.basename(p)) for p in staged])
    clear_staging(output)


def write_atomically(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with FileSystems.create(tmp) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
