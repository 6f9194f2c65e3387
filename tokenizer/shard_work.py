"""The shard job's first pass and its work area: every row group of every source file is encoded once
into a token file (documents back to back, each ending with EOS) beside a small index (document ids and
token counts), both under the job's staging directory. Later steps move only references into these files
(a unit, an offset, a length), never documents or tokens, and read the tokens back when they write.

A unit is `(source, base)`: `base + ".tok"` holds the tokens, `base + ".ids"` (JSON) the index. The
base is named by the file's position in the job's input list and the row group's number, so a retried
bundle rewrites the same bytes under the same names.
"""
from __future__ import annotations

import itertools
import json
from typing import Iterator, NamedTuple

import apache_beam as beam
import numpy as np

from pipeline.model_files import ModelFile
from pipeline.runtime import output
from pipeline.runtime.counters import inc, timed
from pipeline.runtime.progress import Progress
from tokenizer import shard_format

BATCH = 256
TOKENS = ".tok"
INDEX = ".ids"


class Index(NamedTuple):
    """A unit's documents: ids, token counts and where each starts in the token file (in tokens)."""
    ids: list[str]
    lengths: np.ndarray
    offsets: np.ndarray


def _open_read(path: str):
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.open(path, compression_type="uncompressed")


def _open_write(path: str):
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.create(path, compression_type="uncompressed")


def read_index(unit: tuple[str, str]) -> Index:
    with _open_read(unit[1] + INDEX) as f:
        index = json.loads(f.read())
    lengths = np.array(index["tokens"], dtype=np.int64)
    return Index(index["ids"], lengths, np.cumsum(lengths) - lengths)


def _write_index(path: str, ids: list[str], lengths: list[int]) -> None:
    with _open_write(path) as f:
        f.write(json.dumps({"ids": ids, "tokens": lengths}).encode())


class RowGroups(beam.DoFn):
    """(source, file number, Parquet file) -> (source, file number, file, row group): units of encoding
    work, spread over workers without shuffling any text."""

    def process(self, item):
        source, number, path = item
        import pyarrow.parquet as pq
        with _open_read(path) as f:
            n = pq.ParquetFile(f).metadata.num_row_groups
        for i in range(n):
            yield source, number, path, i


def _text_batches(source: str, path: str, row_group: int) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, texts) in batches straight from one row group; empty documents are counted and left out."""
    import pyarrow.parquet as pq
    with _open_read(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH, row_groups=[row_group],
                                                    columns=["id", "text"]):
            ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
            kept = [(i, t) for i, t in zip(ids, texts) if t]
            if len(kept) < len(ids):
                inc(f"tokenize.{source}.empty_documents", len(ids) - len(kept))
            if kept:
                yield [i for i, _ in kept], [t for _, t in kept]


class EncodeRowGroup(beam.DoFn):
    """(source, file number, file, row group) -> the unit (source, base) once its token file and index
    are written under `work`. SentencePiece's batch call is a third faster than one call per document,
    even on one thread; a batch's tokens go to the file as one array."""

    def __init__(self, model: ModelFile, work: str, dtype: np.dtype = shard_format.TOKEN_DTYPE):
        self.model, self.work, self.dtype = model, work, dtype

    def setup(self):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=self.model.local_path())
        self.eos = self.sp.eos_id()
        self.progress = Progress("documents tokenized on this worker")

    def process(self, item):
        source, number, path, row_group = item
        base = output.join(self.work, f"{number:06d}-{row_group:06d}")
        ids: list[str] = []
        lengths: list[int] = []
        with _open_write(base + TOKENS) as f:
            for batch_ids, texts in _text_batches(source, path, row_group):
                f.write(self._encode(source, texts, lengths).tobytes())
                ids += batch_ids
        _write_index(base + INDEX, ids, lengths)
        yield source, base

    def _encode(self, source: str, texts: list[str], lengths: list[int]) -> np.ndarray:
        """The batch's tokens, each document ending with EOS; appends each document's length."""
        with timed("tokenize"):
            encoded = self.sp.encode(texts, num_threads=1)
        for ids in encoded:
            ids.append(self.eos)
            self.progress.tick()
        counts = [len(ids) for ids in encoded]
        lengths += counts
        inc(f"tokenize.{source}.documents", len(texts))
        inc(f"tokenize.{source}.tokens", sum(counts))
        inc(f"tokenize.{source}.bytes", sum(len(t.encode("utf-8", "surrogatepass")) for t in texts))
        return np.fromiter(itertools.chain.from_iterable(encoded), dtype=self.dtype, count=sum(counts))


class TokenReader:
    """Reads token ranges out of the work area's token files, each file opened once (use `with`)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.files: dict[str, object] = {}

    def __enter__(self) -> "TokenReader":
        return self

    def __exit__(self, *exc) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()

    def read(self, base: str, offset: int, length: int) -> np.ndarray:
        f = self.files.get(base)
        if f is None:
            f = self.files[base] = _open_read(base + TOKENS)
        width = self.dtype.itemsize
        f.seek(offset * width)
        data = f.read(length * width)
        if len(data) != length * width:
            raise IOError(f"{base}{TOKENS}: {len(data) // width} tokens at {offset}, expected {length}")
        return np.frombuffer(data, dtype=self.dtype)
