"""Local files of documents that users bring to the one-machine tools (language-model training,
perplexity cutoffs, ready classifier examples): Parquet in the document schema, or JSONL (optionally
gzipped) with at least a `text` field. A JSON line over 8 MiB (or a gzip bomb) is an error, never read
whole."""
from __future__ import annotations

import glob
import gzip
import json
from typing import Iterator

BATCH = 1024


def local_files(pattern: str) -> list[str]:
    """Every file matching a comma-separated list of local globs, sorted; an error when none does."""
    files = sorted(p for part in pattern.split(",") if part.strip() for p in glob.glob(part.strip()))
    if not files:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    return files


def is_jsonl(path: str) -> bool:
    return path.endswith((".jsonl", ".jsonl.gz", ".json"))


def iter_rows(path: str, columns: list[str] | None = None) -> Iterator[dict]:
    """The rows of a Parquet or JSONL file as dicts, streamed (Parquet in batches, JSONL line by line)."""
    if is_jsonl(path):
        from pipeline.sources.streams import MAX_JSON_LINE_BYTES, Overlong, capped_lines
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            for item in capped_lines(f, MAX_JSON_LINE_BYTES):
                if isinstance(item, Overlong):
                    raise ValueError(f"{path}: byte {item.offset:,}: {item.reason}")
                if item[1].strip():
                    row = json.loads(item[1])
                    yield {c: row.get(c) for c in columns} if columns else row
        return
    import pyarrow.parquet as pq
    for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=BATCH):
        yield from batch.to_pylist()
