"""CommonCrawl WET and WARC files as documents: WET `conversion` records as they are, WARC HTML responses
re-extracted (`pipeline.records`), every bad stretch one dead letter (`pipeline.warc`).

CommonCrawl compresses every record as its own gzip member, so one file can be read as several byte
ranges at once, each starting at a member (`crawl_spans`): the ranges hold the same records and dead
letters, with the same offsets, as the whole file read front to back.
"""
from __future__ import annotations

from typing import Iterator

from pipeline.inputs import WHOLE, Span
from pipeline.schema import DeadLetter, Document
PROBE_BYTES = 1 << 20                # how far past a cut point the next member start is looked for
DEFAULT_SPLIT_BYTES = 16 << 20
SPLIT_HELP = ("read a per-record-gzip WET/WARC file larger than this as ranges of about this many bytes at "
              "once, each starting at a record (0: every file whole)")


def crawl_spans(path: str, split_bytes: int, max_spans: int | None = None) -> list[Span]:
    """Byte ranges of a per-record-gzip file, about `split_bytes` each (at most `max_spans`, by default as
    many as a key can number: `pipeline.engine.keys.MAX_PARTS`), cut where a gzip member that holds a
    record starts; the whole file when it is smaller, does not start with such a member (not gzipped,
    not WARC: a JSON shard), is compressed as one stream (no member start is found near a cut), or cannot
    be opened (reading it says why)."""
    from pipeline.engine.keys import MAX_PARTS
    from pipeline.inputs import input_size, open_stream
    from pipeline.warc import member_start
    size = input_size(path) if split_bytes > 0 else None
    if size is None or size <= split_bytes:
        return [WHOLE]
    step = max(split_bytes, -(-size // (max_spans or MAX_PARTS)))
    cuts: list[int] = []
    try:
        with open_stream(path, 0, PROBE_BYTES) as f:
            if member_start(f.read()) != 0:     # not a crawl file that gzips its records (JSON shards, ...)
                return [WHOLE]
        for at in range(step, size, step):
            at = max(at, cuts[-1] + 1 if cuts else 0)
            with open_stream(path, at, min(at + PROBE_BYTES, size)) as f:
                found = member_start(f.read())
            if found is not None:
                cuts.append(at + found)
    except Exception:  # noqa: BLE001 - a file that cannot be probed is read whole; reading it reports why
        return [WHOLE]
    bounds = [0, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:]))


def read_crawl(path: str, max_record_bytes: int, span: Span = WHOLE) -> Iterator[Document | DeadLetter]:
    """Every record of a WET or WARC file (or of the byte range `span` of it): documents and dead letters;
    records that are no page (warcinfo, requests, non-HTML responses) are counted as read and skipped. A
    file that cannot be opened is one dead letter."""
    from pipeline.inputs import open_stream
    from pipeline.records import to_document
    from pipeline.runtime.counters import inc
    from pipeline.warc import read_warc
    start, end = span
    try:
        stream = open_stream(path, start, end)
    except Exception as exc:  # a file that cannot be opened is one dead letter, not a failed job
        yield DeadLetter(path, start if start else -1, f"cannot open file: {type(exc).__name__}: {exc}")
        return
    offset = start
    try:
        with stream:
            for rec in read_warc(stream, path, max_record_bytes, origin=start):
                doc = rec if isinstance(rec, DeadLetter) else to_document(rec, path, max_record_bytes)
                offset = getattr(rec, "offset", offset)
                if doc is None:
                    inc("read.skipped_records")
                if not isinstance(doc, Document):   # every WARC record counts as read, pages or not
                    inc("read.records")
                if doc is not None:
                    yield doc
    except Exception as exc:  # an I/O error mid-file: what was read stands, the rest is one dead letter
        inc("read.records")
        yield DeadLetter(path, offset, f"reading stopped after offset {offset}: {type(exc).__name__}: {exc}")
