"""Reading stage: files -> (key, Document), with dead letters and skipped records counted.

Documents are keyed by `pipeline.runtime.output.doc_key`: input order, so that "the first copy" and
"the smallest key" mean the same thing everywhere in the job.
"""
from __future__ import annotations

import logging

import apache_beam as beam

from pipeline.runtime.counters import doc_bytes, inc, timed_iter
from pipeline.runtime.output import doc_key
from pipeline.runtime.progress import Progress
from pipeline.inputs import open_stream
from pipeline.records import to_document
from pipeline.schema import DeadLetter
from pipeline.warc import read_warc

DEAD = "dead"
log = logging.getLogger(__name__)


class ReadRecords(beam.DoFn):
    def __init__(self, max_record_bytes: int, n_files: int):
        self.max_record_bytes = max_record_bytes
        self.n_files = n_files

    def process(self, item):
        index, path = item
        counts = {"docs": 0, "dead": 0, "skipped": 0, "progress": Progress(f"records read from {path}")}
        yield from timed_iter("read", self._records(index, path, counts))
        inc("read.files")
        log.info("read %s (%d/%d): %d documents, %d skipped records, %d dead letters",
                 path, index + 1, self.n_files, counts["docs"], counts["skipped"], counts["dead"])

    def _records(self, index: int, path: str, counts: dict):
        def dead(letter: DeadLetter):
            counts["dead"] += 1
            inc("read.dead_letters")
            return beam.pvalue.TaggedOutput(DEAD, (doc_key(index, counts["dead"]), letter))

        try:
            stream = open_stream(path)
        except Exception as exc:  # a file that cannot be opened is one dead letter, not a failed job
            yield dead(DeadLetter(path, -1, f"cannot open file: {type(exc).__name__}: {exc}"))
            return
        offset = 0
        try:
            with stream:
                for rec in read_warc(stream, path, self.max_record_bytes):
                    inc("read.records")
                    counts["progress"].tick()
                    if isinstance(rec, DeadLetter):
                        yield dead(rec)
                        continue
                    offset = rec.offset
                    doc = to_document(rec, path, self.max_record_bytes)
                    if doc is None:
                        counts["skipped"] += 1
                        inc("read.skipped_records")
                    elif isinstance(doc, DeadLetter):
                        yield dead(doc)
                    else:
                        counts["docs"] += 1
                        inc("read.docs_out")
                        inc("read.bytes_out", doc_bytes(doc.text))
                        yield doc_key(index, rec.seq), doc
        except Exception as exc:  # an I/O error mid-file: what was read stands, the rest is one dead letter
            yield dead(DeadLetter(path, offset, f"reading stopped after offset {offset}: "
                                               f"{type(exc).__name__}: {exc}"))
