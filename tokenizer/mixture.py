"""Realising a manifest's mixture: how many tokens each source contributes, how often each document is
repeated, and where each copy lands in the output. Pure functions; the shard job applies them.

- Budget: source s contributes share_s x total tokens. With no total in the manifest, the total is the
  largest one no source has to exceed its target epochs for: min over s of available_s x epochs_s / share_s.
- Epochs: budget / available tokens. A source is repeated floor(epochs) times in full, each repetition in a
  fresh order, plus a subsample for the fraction left: the documents whose subsample hash falls below a
  cut, chosen on a histogram of tokens by hash so that the subsample holds the fraction's tokens (to
  within one histogram bucket; at scale a bucket is a tiny share of a source).
- Order: every document hashes to one of 65,536 buckets. Each repetition lays the buckets out in a fresh
  seeded order; a copy's position p in [0, 1) is its token offset in that layout over the source's
  planned tokens. So every source's tokens are spread evenly over [0, 1), and sorting all copies by p
  interleaves the sources in their shares in any stretch of the output (stratified, not just random:
  a random position per copy would leave whole shards several points off their shares at small scale).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import xxhash

HIST_BUCKETS = 1 << 16


def unit(seed: int, *parts: object) -> float:
    """A seeded hash of `parts` as a float uniform in [0, 1)."""
    key = ":".join([str(seed), *map(str, parts)]).encode()
    return (xxhash.xxh3_64_intdigest(key) >> 11) / float(1 << 53)


def doc_bucket(seed: int, source: str, doc_id: str) -> int:
    """The document's hash bucket: it decides the subsample and the document's place in every order."""
    return int(unit(seed, "bucket", source, doc_id) * HIST_BUCKETS)


@dataclasses.dataclass
class SourcePlan:
    name: str
    share: float
    target_epochs: float
    available_tokens: int
    available_documents: int
    budget_tokens: int
    full_repeats: int
    cut: int                 # documents whose bucket < cut are in the partial repetition
    planned_tokens: int      # full_repeats x available + the partial repetition's tokens
    hist: np.ndarray = dataclasses.field(repr=False, default=None)   # tokens per bucket
    _starts: dict = dataclasses.field(repr=False, default_factory=dict)

    @property
    def epochs(self) -> float:
        return self.planned_tokens / self.available_tokens if self.available_tokens else 0.0

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "share", "target_epochs", "available_tokens",
                                              "available_documents", "budget_tokens", "full_repeats", "cut",
                                              "planned_tokens")}

    def _bucket_starts(self, seed: int, r: int) -> np.ndarray:
        """Where each bucket starts, in tokens, in repetition r: buckets in a fresh seeded order per
        repetition; the partial repetition holds only the buckets below the cut."""
        starts = self._starts.get(r)
        if starts is None:
            order = np.random.default_rng([seed, r, xxhash.xxh32_intdigest(self.name.encode())]).permutation(HIST_BUCKETS)
            sizes = self.hist[order] if r < self.full_repeats else np.where(order < self.cut, self.hist[order], 0)
            starts = np.empty(HIST_BUCKETS, dtype=np.int64)
            starts[order] = np.cumsum(sizes) - sizes
            self._starts[r] = starts
        return starts

    def copies(self, seed: int, doc_id: str) -> list[tuple[int, float]]:
        """(repetition, position p) of every copy of a document in the output. A copy sits at its
        bucket's token offset in that repetition's order (plus a hashed place inside the bucket), so each
        source's tokens are spread evenly over [0, 1)."""
        if not self.planned_tokens:
            return []
        b = doc_bucket(seed, self.name, doc_id)
        reps = self.full_repeats + (1 if b < self.cut else 0)
        out = []
        for r in range(reps):
            inside = unit(seed, "inside", self.name, r, doc_id) * self.hist[b]
            out.append((r, (r * self.available_tokens + self._bucket_starts(seed, r)[b] + inside)
                        / self.planned_tokens))
        return out


def derived_total(sources: list[tuple[str, float, float]], available: dict[str, int]) -> int:
    """The largest total for which no source exceeds its target epochs; sources: (name, share, epochs)."""
    limits = [available.get(name, 0) * epochs / share for name, share, epochs in sources if share > 0]
    if not limits or min(limits) <= 0:
        empty = [name for name, share, _ in sources if share > 0 and not available.get(name)]
        raise ValueError(f"no tokens for source(s) {', '.join(empty)}: every source with a share needs documents")
    return int(min(limits))


def plan_source(name: str, share: float, target_epochs: float, total: int, hist: np.ndarray,
                documents: int) -> SourcePlan:
    available = int(hist.sum())
    budget = int(round(share * total))
    if budget and not available:
        raise ValueError(f"source {name} has a share of {share} but no tokens")
    full, cut, partial = 0, 0, 0
    if available:
        full = budget // available
        want = budget - full * available
        cum = np.concatenate([[0], np.cumsum(hist)])
        cut = int(np.argmin(np.abs(cum - want)))   # the cut whose partial repetition is closest to want
        partial = int(cum[cut])
    return SourcePlan(name, share, target_epochs, available, documents, budget, full, cut, full * available + partial,
                      hist)


def make_plan(sources: list[tuple[str, float, float]], hists: dict[str, np.ndarray], docs: dict[str, int],
              total_tokens: int | None) -> dict[str, SourcePlan]:
    available = {name: int(h.sum()) for name, h in hists.items()}
    total = total_tokens if total_tokens is not None else derived_total(sources, available)
    empty = np.zeros(HIST_BUCKETS, dtype=np.int64)
    return {name: plan_source(name, share, epochs, total, hists.get(name, empty), docs.get(name, 0))
            for name, share, epochs in sources}


def plan_summary(plans: dict[str, SourcePlan]) -> dict[str, Any]:
    planned = sum(p.planned_tokens for p in plans.values())
    return {name: {"target_share": p.share, "planned_share": p.planned_tokens / planned if planned else 0.0,
                   "target_epochs": p.target_epochs, "epochs": round(p.epochs, 6),
                   "available_tokens": p.available_tokens, "available_documents": p.available_documents,
                   "budget_tokens": p.budget_tokens, "planned_tokens": p.planned_tokens}
            for name, p in plans.items()}


def bucket_of(p: float, n_buckets: int) -> int:
    return min(n_buckets - 1, int(p * n_buckets))


def n_buckets(total_tokens: int, bucket_tokens: int) -> int:
    return max(1, math.ceil(total_tokens / bucket_tokens))
