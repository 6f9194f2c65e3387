"""Book-level near-deduplication across the whole run: a book is dropped when a book with a smaller key
shares more than `threshold` (90%) of its content.

How overlap is measured. A book's content is its set S of word 5-gram shingles: words are runs of letters
and digits, lower-cased, so punctuation, line wrapping and page layout do not count; each run of 5
consecutive words is hashed (`pipeline.minhash.shingle_hashes`). The overlap of two books A and B is

    overlap(A, B) = |S(A) ∩ S(B)| / max(|S(A)|, |S(B)|)

the share of the longer book's shingles that the other holds too: an edition that changes 9% of a book's
text overlaps it by about 91%; one chapter printed alone overlaps the whole book only by its own share, so
an excerpt is never mistaken for a copy.

Candidates. Comparing every pair is quadratic, so pairs are found with MinHash LSH (datasketch, 256
permutations). A pair with overlap o has Jaccard similarity at least o / (2 - o), 0.818 at o = 0.9; the bands
are chosen (`candidate_threshold`) so that a pair at that similarity shares a band with probability at least
0.999: 32 bands of 8 rows for 90%. Every candidate pair is then checked exactly on the two shingle sets, so
LSH decides only which pairs are compared, never which books go.

Keeping one. A book is dropped when any book with a smaller key (earlier input file, earlier record) overlaps
it by more than the threshold; so the first book of every group of copies stays, whatever order the runner
works in. In a chain A ~ B ~ C where A and C are not close enough, B and C both go (each has a smaller
neighbour) and A stays.

Engine rounds: one round of band keys (hash, key) gives the candidate pairs, routed to the larger book's
unit; the final pass reads the smaller books of its candidates from the work area and checks each pair
exactly. No shuffle carries a book or its shingles.
"""
from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import xxhash

from pipeline.dedup.near import BAND
from pipeline.engine.steps import Round, WholeRunStep, group_sizes, group_starts
from pipeline.minhash import Signer, lsh_params, shingle_hashes
from pipeline.runtime.counters import inc, timed
from pipeline.schema import Document, Rejected
_WORD = re.compile(r"\w+")


def content_words(text: str) -> str:
    """The words of a text as one lower-case, space-separated string (punctuation and layout dropped)."""
    return " ".join(_WORD.findall(text.lower()))


def shingle_set(text: str, ngram: int = 5) -> np.ndarray:
    """Sorted unique hashes of the text's word n-grams."""
    return shingle_hashes(content_words(text), ngram)


def candidate_threshold(overlap_threshold: float, perms: int, recall: float = 0.999) -> float:
    """The Jaccard threshold to tune LSH bands for, so that any pair overlapping by more than
    `overlap_threshold` becomes a candidate with probability >= `recall`."""
    least = overlap_threshold / (2 - overlap_threshold)
    t = least
    while t > 0.05:
        bands, rows = lsh_params(round(t, 2), perms)
        if 1 - (1 - least ** rows) ** bands >= recall:
            break
        t -= 0.05
    return round(t, 2)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / max(|A|, |B|) for two sorted sets of unique shingle hashes."""
    if not len(a) or not len(b):
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / max(len(a), len(b))


PAIR = np.dtype([("key", "<u8"), ("smaller", "<u8")])


class NearDuplicateBooks(WholeRunStep):
    """Books overlapping an earlier book by more than `threshold` are rejected under `stage`."""

    def __init__(self, threshold: float = 0.9, ngram: int = 5, perms: int = 256, stage: str = "near_dedup"):
        self.threshold, self.ngram, self.perms, self.stage = threshold, ngram, perms, stage
        self.lsh_threshold = candidate_threshold(threshold, perms)

    @functools.cached_property
    def signer(self) -> Signer:
        """Built on first use, in the worker (the driver builds steps only to lay out the graph)."""
        return Signer(num_perm=self.perms, ngram=self.ngram, threshold=self.lsh_threshold)

    def rounds(self) -> list[Round]:
        return [Round(f"{self.stage}.pairs", BAND, PAIR, self._bands, _pairs)]

    def _bands(self, view) -> np.ndarray:
        rows = []
        for key, doc in view.docs():
            with timed(self.stage):
                words = content_words(doc.text)
                if not len(shingle_hashes(words, self.ngram)):
                    continue
                signature = self.signer.signature(words)
            rows += [(xxhash.xxh3_64_intdigest(band), key) for band in self.signer.band_keys(signature)]
        return np.array(rows, dtype=BAND)

    def wanted(self, view) -> list[int]:
        return np.unique(view.results(f"{self.stage}.pairs")["smaller"]).tolist()

    def apply(self, key: int, doc: Document, view) -> Document | Rejected:
        smaller = np.unique(view.results_for(f"{self.stage}.pairs", key)["smaller"]).tolist()
        if not smaller:
            return doc
        mine = shingle_set(doc.text, self.ngram)
        for other in smaller:   # smallest key first: the first copy is the one named
            row = view.prefetched.get(other)
            if row is None:
                continue
            inc(f"{self.stage}.pairs_checked")
            share = overlap(mine, shingle_set(row["text"], self.ngram))
            if share > self.threshold:
                # a new document: the one handed in may be shared
                doc = dataclasses.replace(doc, metadata={**doc.metadata, "duplicate_of": row["id"],
                                                         "overlap": round(share, 4)})
                reason = f"near duplicate of {row['id']}: {share:.1%} of the content overlaps"
                return Rejected(doc, self.stage, reason)
        return doc


def _pairs(entries: np.ndarray) -> np.ndarray:
    """Band entries sorted by (h, key) -> (larger, smaller) for every pair sharing a band, each once."""
    sizes = group_sizes(entries["h"])
    shared = entries[sizes >= 2]
    pairs = []
    starts = np.flatnonzero(group_starts(shared["h"]))
    for lo, hi in zip(starts, np.append(starts[1:], len(shared))):
        keys = np.unique(shared["key"][lo:hi]).tolist()
        pairs += [(keys[j], keys[i]) for j in range(1, len(keys)) for i in range(j)]
    return np.unique(np.array(pairs, dtype=PAIR))
