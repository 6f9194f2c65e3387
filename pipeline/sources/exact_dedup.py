"""Exact deduplication of documents across the whole run: in each group of identical texts (by a 128-bit
hash) the document with the smallest key (the first in input order) stays, every other one is rejected
as a duplicate of it. Any source's `dedup_steps` can use it (GitHub files, books).

Only (hash, key, id) triples are grouped by hash, never the documents, so a file copied a million times
(a vendored library) is a group of a million short strings, not of a million texts; the verdicts then
join back to the documents by their keys."""
from __future__ import annotations

import dataclasses

import apache_beam as beam
import xxhash

from pipeline.runtime.counters import doc_bytes, inc
from pipeline.schema import Rejected

REJECTED = "rejected"


def _content_key(kv):
    key, doc = kv
    return xxhash.xxh3_128_digest(doc.text.encode("utf-8", "surrogatepass")), (key, doc.id)


def _duplicates(group):
    """(hash, [(key, id)]) -> (key, id kept) for every member but the one with the smallest key."""
    _, members = group
    first_key, first_id = min(members)
    for key, _ in members:
        if key != first_key:
            yield key, first_id


class _Apply(beam.DoFn):
    def __init__(self, stage: str):
        self.stage = stage

    def process(self, kv):
        key, joined = kv
        kept_ids = joined["duplicate_of"]
        for doc in joined["doc"]:
            if not kept_ids:
                yield key, doc
                continue
            first_id = kept_ids[0]
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
        verdicts = (docs | "Key by content hash" >> beam.Map(_content_key)
                    | "Group identical texts" >> beam.GroupByKey()
                    | "Duplicates" >> beam.FlatMap(_duplicates))
        out = ({"doc": docs, "duplicate_of": verdicts} | "Join verdicts" >> beam.CoGroupByKey()
               | "Keep the first" >> beam.ParDo(_Apply(self.stage)).with_outputs(REJECTED, main="kept"))
        return out.kept, out[REJECTED]
