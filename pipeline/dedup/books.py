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

Beam: band keys are grouped to list candidate pairs (each pair once); the two shingle sets of a pair are
brought together by two joins keyed by book; the drops are joined back to the books. No worker holds more
than one group and the shingle sets of the pairs it checks.
"""
from __future__ import annotations

import dataclasses
import re

import apache_beam as beam
import numpy as np

from pipeline.minhash import Signer, lsh_params, shingle_hashes
from pipeline.runtime.counters import doc_bytes, inc, timed
from pipeline.schema import Rejected

REJECTED = "rejected"
BANDS = "bands"
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


class _Sign(beam.DoFn):
    """(key, Document) -> (key, (id, shingle bytes)); band keys tagged BANDS as (band, key)."""

    def __init__(self, ngram: int, perms: int, lsh_threshold: float, stage: str):
        self.ngram, self.perms, self.lsh_threshold, self.stage = ngram, perms, lsh_threshold, stage

    def setup(self):
        self.signer = Signer(num_perm=self.perms, ngram=self.ngram, threshold=self.lsh_threshold)

    def process(self, kv):
        key, doc = kv
        with timed(self.stage):
            words = content_words(doc.text)
            shingles = shingle_hashes(words, self.ngram)
            if not len(shingles):
                return
            signature = self.signer.signature(words)
            yield key, (doc.id, shingles.astype(np.uint64).tobytes())
            for band in self.signer.band_keys(signature):
                yield beam.pvalue.TaggedOutput(BANDS, (band, key))


def _pairs(group):
    """(band, [key]) -> (larger key, smaller key) for every pair in the band."""
    _, keys = group
    keys = sorted(set(keys))
    for j in range(1, len(keys)):
        for i in range(j):
            yield keys[j], keys[i]


def _send_larger(kv):
    """(larger, {sign: [(id, shingles)], smaller: [keys]}) -> (smaller, (larger, shingles of larger))."""
    larger, joined = kv
    for _, shingles in joined["sign"]:
        for smaller in joined["smaller"]:
            yield smaller, (larger, shingles)


class _Check(beam.DoFn):
    """(smaller, {sign: [(id, shingles)], larger: [(key, shingles)]}) -> (larger, (smaller, id, overlap))
    for every pair that overlaps by more than the threshold."""

    def __init__(self, threshold: float, stage: str):
        self.threshold, self.stage = threshold, stage

    def process(self, kv):
        smaller, joined = kv
        for doc_id, raw in joined["sign"]:
            mine = np.frombuffer(raw, dtype=np.uint64)
            for larger, other in joined["larger"]:
                with timed(self.stage):
                    share = overlap(mine, np.frombuffer(other, dtype=np.uint64))
                inc(f"{self.stage}.pairs_checked")
                if share > self.threshold:
                    yield larger, (smaller, doc_id, share)


class _ApplyDrops(beam.DoFn):
    def __init__(self, stage: str):
        self.stage = stage

    def process(self, kv):
        key, joined = kv
        drops = sorted(joined["drop"])
        for doc in joined["doc"]:
            if not drops:
                yield key, doc
                continue
            _, kept_id, share = drops[0]
            inc(f"{self.stage}.rejected")
            inc(f"{self.stage}.rejected_bytes", doc_bytes(doc.text))
            # a new document: an element Beam handed in must not change
            doc = dataclasses.replace(doc, metadata={**doc.metadata, "duplicate_of": kept_id,
                                                     "overlap": round(share, 4)})
            reason = f"near duplicate of {kept_id}: {share:.1%} of the content overlaps"
            yield beam.pvalue.TaggedOutput(REJECTED, (key, Rejected(doc, self.stage, reason)))


class NearDuplicateBooks(beam.PTransform):
    """(key, Document) -> kept (key, Document), rejected (key, Rejected) under `stage`."""

    def __init__(self, threshold: float = 0.9, ngram: int = 5, perms: int = 256, stage: str = "near_dedup"):
        super().__init__()
        self.threshold, self.ngram, self.perms, self.stage = threshold, ngram, perms, stage
        self.lsh_threshold = candidate_threshold(threshold, perms)

    def expand(self, docs):
        signed = docs | "Sign" >> beam.ParDo(_Sign(self.ngram, self.perms, self.lsh_threshold, self.stage)) \
            .with_outputs(BANDS, main="sign")
        pairs = (signed[BANDS] | "Group bands" >> beam.GroupByKey()
                 | "Candidate pairs" >> beam.FlatMap(_pairs)
                 | "Each pair once" >> beam.Distinct())
        to_smaller = ({"sign": signed.sign, "smaller": pairs} | "Join larger" >> beam.CoGroupByKey()
                      | "Send larger" >> beam.FlatMap(_send_larger))
        drops = ({"sign": signed.sign, "larger": to_smaller} | "Join smaller" >> beam.CoGroupByKey()
                 | "Check overlap" >> beam.ParDo(_Check(self.threshold, self.stage)))
        out = ({"doc": docs, "drop": drops} | "Join drops" >> beam.CoGroupByKey()
               | "Drop copies" >> beam.ParDo(_ApplyDrops(self.stage)).with_outputs(REJECTED, main="kept"))
        return out.kept, out[REJECTED]
