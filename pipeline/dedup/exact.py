"""Exact deduplication: documents with byte-identical text (a 128-bit hash); the first stays, every other
one is rejected as a duplicate of it. Only (hash, key) pairs are shuffled, so a file copied a million
times (a vendored library) costs a million 24-byte entries, not a million texts."""
from __future__ import annotations

import dataclasses

import numpy as np
import xxhash

from pipeline.engine.keys import key_text
from pipeline.engine.steps import DROP, Round, WholeRunStep, drops_after_first
from pipeline.schema import Document, Rejected

ENTRY = np.dtype([("h", "<u8"), ("h2", "<u8"), ("key", "<u8")])
_LOW = (1 << 64) - 1


def content_hash(text: str) -> int:
    return xxhash.xxh3_128_intdigest(text.encode("utf-8", "surrogatepass"))


def rejected_copy(doc: Document, stage: str, kind: str, kept_id: str, **extra) -> Rejected:
    # a new document: the one handed in may be shared
    doc = dataclasses.replace(doc, metadata={**doc.metadata, "duplicate_of": kept_id, **extra})
    return Rejected(doc, stage, f"{kind} duplicate of {kept_id}")


def kept_id(view, kept: int) -> str:
    return view.kept_ids.get(kept) or key_text(kept)


class ExactDedup(WholeRunStep):
    def __init__(self, stage: str = "exact_dedup"):
        self.stage = stage

    def rounds(self) -> list[Round]:
        return [Round(self.stage, ENTRY, DROP, self._emit, self._decide)]

    def _emit(self, view) -> np.ndarray:
        rows = []
        for key, text in view.texts():
            if not view.is_dropped(key):
                h = content_hash(text)
                rows.append((h & _LOW, h >> 64, key))
        return np.array(rows, dtype=ENTRY)

    @staticmethod
    def _decide(entries: np.ndarray) -> np.ndarray:
        # groups are runs of equal (h, h2); drops_after_first wants one value per group
        same = np.zeros(len(entries), dtype=np.uint64)
        if len(entries):
            new = np.ones(len(entries), dtype=bool)
            new[1:] = (entries["h"][1:] != entries["h"][:-1]) | (entries["h2"][1:] != entries["h2"][:-1])
            same = np.cumsum(new).astype(np.uint64)
        return drops_after_first(same, entries["key"])

    def apply(self, key: int, doc: Document, view) -> Document | Rejected:
        found = view.results_for(self.stage, key)
        if not len(found):
            return doc
        return rejected_copy(doc, self.stage, "exact", kept_id(view, int(found["kept"].min())))
