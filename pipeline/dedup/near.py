"""Near-duplicate documents: MinHash LSH over word shingles (`pipeline.minhash`), two rounds.

1. templates: shingles leave out "template lines" (`TemplateRule`): short lines found in a few distinct
   documents, long ones only when found in many (menus, footers, cookie notices). A page re-published on
   another site shares its text but not its template, which would otherwise dilute the similarity; the
   paragraphs that near-copies of one page share are long lines in few pages, so they still make the
   copies match. Lines are counted over the documents that survived exact dedup, one per distinct text.
2. bands: each document's band keys; a document is dropped when a document with a smaller key shares a
   band with it, so each cluster of mutual duplicates keeps exactly one, its first.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import xxhash

from pipeline.dedup.exact import kept_id, rejected_copy
from pipeline.dedup.lines import LINE_ENTRY, line_entries
from pipeline.engine.keys import units_of
from pipeline.engine.steps import DROP, Round, WholeRunStep, drops_after_first, group_sizes
from pipeline.schema import Document, Rejected

TEMPLATE = np.dtype([("key", "<u8"), ("h", "<u8"), ("n", "<u8")])
BAND = np.dtype([("h", "<u8"), ("key", "<u8")])


@dataclasses.dataclass(frozen=True)
class TemplateRule:
    """Which repeated lines MinHash leaves out: a short line (<= max_words) found in >= min_docs distinct
    page texts, or a longer one found in >= min_docs_long. A long paragraph shared by a handful of
    near-copies of one page is content, not template, and must keep making them match."""
    min_docs: int = 3
    max_words: int = 30
    min_docs_long: int = 10

    def masks(self, line: str, n_docs: int) -> bool:
        if n_docs < self.min_docs:
            return False
        return n_docs >= self.min_docs_long or len(line.split()) <= self.max_words


class NearDedup(WholeRunStep):
    def __init__(self, threshold: float = 0.5, perms: int = 128, ngram: int = 5,
                 template: TemplateRule | None = None, stage: str = "near_dedup"):
        self.threshold, self.perms, self.ngram = threshold, perms, ngram
        self.template = template or TemplateRule()
        self.stage = stage

    @functools.cached_property
    def signer(self):
        """Built on first use, in the worker (the driver builds steps only to lay out the graph)."""
        from pipeline.minhash import Signer
        return Signer(num_perm=self.perms, ngram=self.ngram, threshold=self.threshold)

    def _sign(self, text: str):
        sig = self.signer.signature(text)
        return [] if sig is None else self.signer.band_keys(sig)

    def rounds(self) -> list[Round]:
        return [Round(f"{self.stage}.templates", LINE_ENTRY, TEMPLATE, line_entries, self._templates),
                Round(f"{self.stage}.bands", BAND, DROP, self._bands, drops_after_first_entries)]

    def _templates(self, entries: np.ndarray) -> np.ndarray:
        """Template candidates: (a key of each unit holding the line, line hash, distinct documents). The
        count is a property of the line, so each unit needs it once, not once per document."""
        n = group_sizes(entries["h"])
        common = n >= self.template.min_docs
        out = np.zeros(int(common.sum()), dtype=TEMPLATE)
        out["key"], out["h"], out["n"] = entries["key"][common], entries["h"][common], n[common]
        units = units_of(out["key"], self.chunk_docs)
        first = np.ones(len(out), dtype=bool)           # entries are sorted by (h, key): units ascend in a group
        first[1:] = (out["h"][1:] != out["h"][:-1]) | (units[1:] != units[:-1])
        return out[first]

    def _bands(self, view) -> np.ndarray:
        found = view.results(f"{self.stage}.templates")
        counts = dict(zip(found["h"].tolist(), found["n"].tolist()))
        rows = []
        for key, doc in view.docs():
            hashes = view.lines_of(key).tolist()
            kept = "\n".join(ln for ln, h in zip(doc.text.split("\n"), hashes)
                             if not self.template.masks(ln, counts.get(h, 0)))
            rows += [(xxhash.xxh3_64_intdigest(band), key) for band in self._sign(kept)]
        return np.array(rows, dtype=BAND)

    def apply(self, key: int, doc: Document, view) -> Document | Rejected:
        found = view.results_for(f"{self.stage}.bands", key)
        if not len(found):
            return doc
        return rejected_copy(doc, self.stage, "near", kept_id(view, int(found["kept"].min())))


def drops_after_first_entries(entries: np.ndarray) -> np.ndarray:
    return drops_after_first(entries["h"], entries["key"])
