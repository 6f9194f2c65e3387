"""Exact deduplication of documents across the whole run, as one Beam shuffle keyed by a 128-bit hash of the
text: in each group of identical texts the document with the smallest key (the first in input order) stays,
every other one is rejected as a duplicate of it. Any source's `dedup_steps` can use it (GitHub files, books)."""
from __future__ import annotations

import dataclasses

import apache_beam as beam
import xxhash

from pipeline.runtime.counters import doc_bytes, inc
from pipeline.schema import Rejected

REJECTED = "rejected"


def _by_content(kv):
    key, doc = kv
    return xxhash.xxh3_128_digest(doc.text.encode("utf-8", "surrogatepass")), (key, doc)


class _KeepSmallest(beam.DoFn):
    def __init__(self, stage: str):
        self.stage = stage

    def process(self, group):
        _, members = group
        first_key, first_id = None, None
        for key, doc in members:          # one pass for the smallest key, a second one to emit
            if first_key is None or key < first_key:
                first_key, first_id = key, doc.id
        for key, doc in members:
            if key == first_key:
                yield key, doc
                continue
            inc(f"{self.stage}.rejected")
            inc(f"{self.stage}.rejected_bytes", doc_bytes(doc.text))
            # a new document: an element Beam handed in must not change
            doc = dataclasses.replace(doc, metadata={**doc.metadata, "duplicate_of": first_id})
            yield beam.pvalue.TaggedOutput(REJECTED, (key, Rejected(doc, self.stage, f"exact duplicate of {first_id}")))


class ExactDedup(beam.PTransform):
    """(key, Document) -> kept (key, Document), rejected (key, Rejected) under `stage`."""

    def __init__(self, stage: str = "exact_dedup"):
        super().__init__()
        self.stage = stage

    def expand(self, docs):
        out = (docs | "Key by content hash" >> beam.Map(_by_content)
               | "Group identical texts" >> beam.GroupByKey()
               | "Keep the first" >> beam.ParDo(_KeepSmallest(self.stage)).with_outputs(REJECTED, main="kept"))
        return out.kept, out[REJECTED]

