"""CommonCrawl WET and WARC files as documents: WET `conversion` records as they are, WARC HTML responses
re-extracted (`pipeline.records`), every bad stretch one dead letter (`pipeline.warc`)."""
from __future__ import annotations

from typing import Iterator

from pipeline.schema import DeadLetter, Document


def read_crawl(path: str, max_record_bytes: int) -> Iterator[Document | DeadLetter]:
    """Every record of a WET or WARC file: documents and dead letters; records that are no page
    (warcinfo, requests, non-HTML responses) are counted as read and skipped. A file that cannot be
    opened is one dead letter."""
    from pipeline.inputs import open_stream
    from pipeline.records import to_document
    from pipeline.runtime.counters import inc
    from pipeline.warc import read_warc
    try:
        stream = open_stream(path)
    except Exception as exc:  # a file that cannot be opened is one dead letter, not a failed job
        yield DeadLetter(path, -1, f"cannot open file: {type(exc).__name__}: {exc}")
        return
    offset = 0
    try:
        with stream:
            for rec in read_warc(stream, path, max_record_bytes):
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
