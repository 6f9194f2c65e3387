"""MinHash signatures of word n-gram shingles (datasketch) and their LSH band keys.

Shingles: the text is lower-cased and split on white space; every run of `ngram` consecutive words is one
shingle (a text shorter than that is one shingle). Words are hashed with xxh32 and the n-gram hash is a
polynomial of the word hashes computed with NumPy, so no Python call is made per shingle except the one
datasketch makes to its hash function (the identity here). datasketch applies the permutations.

Bands: `bands x rows <= num_perm`, chosen by datasketch's MinHashLSH for a Jaccard threshold (equal weight
on false positives and false negatives). Two documents are candidates when any band key is equal.
"""
from __future__ import annotations

import functools

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

_MULT = np.uint64(0x9E3779B1)
_MASK = np.uint64(0xFFFFFFFF)


def _identity(x: int) -> int:
    return x


@functools.lru_cache(maxsize=8)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    words = text.lower().split()
    if not words:
        return np.zeros(0, dtype=np.uint64)
    h = np.fromiter(map(xxhash.xxh32_intdigest, map(str.encode, words)), dtype=np.uint64, count=len(words))
    if len(h) < ngram:
        ngram = len(h)
    acc = np.zeros(len(h) - ngram + 1, dtype=np.uint64)
    for i in range(ngram):
        acc = (acc * _MULT + h[i: len(h) - ngram + 1 + i]) & _MASK
    return np.unique(acc)


class Signer:
    """Builds MinHash signatures with fixed permutations (one per worker, reused for every document)."""

    def __init__(self, num_perm: int = 128, ngram: int = 5, threshold: float = 0.8, seed: int = 1):
        self.ngram = ngram
        self.num_perm = num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self._template = MinHash(num_perm=num_perm, seed=seed, hashfunc=_identity)

    def signature(self, text: str) -> np.ndarray | None:
        """The MinHash of the text's shingles, or None for a text without words."""
        shingles = shingle_hashes(text, self.ngram)
        if len(shingles) == 0:
            return None
        m = self._template.copy()
        m.update_batch(shingles.tolist())
        return m.digest()

    def band_keys(self, signature: np.ndarray) -> list[bytes]:
        r = self.rows
        return [bytes([b]) + xxhash.xxh64_digest(signature[b * r:(b + 1) * r].tobytes())
                for b in range(self.bands)]
