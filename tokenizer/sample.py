"""The tokenizer's training sample, drawn from a manifest's sources in the mixture's shares, and a held-out
set kept out of training for the report.

Documents stream from Parquet files in the document schema on any Beam filesystem; nothing but the
sample is ever held in memory. Which documents are drawn depends only on their ids and the seed, not on
file order or batching:
- a document is held out when a seed-free hash of (source, id) falls in the held-out share, so the same
  documents stay held out whatever the seed or sample size;
- every other document gets a priority, a seeded hash of (source, id), and each source keeps the
  documents of lowest priority (bottom-k sampling: a uniform sample without replacement, in bounded
  memory), share x sample_docs of them; the held-out set keeps the lowest `held_out_docs` per source.
Only a Parquet row group's `id` column is read unless one of its documents makes the cut.

Shares are shares of tokens, and sources differ in document length (a book is a hundred web pages), so
`mixture_texts` then takes from each source its share of the sample's bytes, in priority order.
A long document contributes a window of at most `max_doc_chars` characters (starting at a line chosen by
its hash), so that a few books cannot fill the sample or the memory.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import logging
import time
from dataclasses import dataclass
from typing import Iterator

from tokenizer.manifest import Manifest, SourceSpec

log = logging.getLogger(__name__)

MAX_DOC_CHARS = 65_536
_COLUMNS = ["id", "text", "metadata"]
_HASH_SPACE = 2 ** 64


def _hash64(*parts: str) -> int:
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def is_held_out(source: str, doc_id: str, held_out_share: float) -> bool:
    return _hash64("held-out", source, doc_id) < held_out_share * _HASH_SPACE


def priority(seed: int, source: str, doc_id: str) -> int:
    return _hash64(str(seed), source, doc_id)


@dataclass
class SampledDoc:
    id: str
    text: str
    language: str | None


class BottomK:
    """The k offered items of lowest priority (ties: first offered wins), in bounded memory."""

    def __init__(self, k: int):
        self.k = k
        self._heap: list[tuple[int, int, SampledDoc]] = []  # (-priority, -arrival, doc): a max-heap
        self._arrivals = 0

    def wants(self, prio: int) -> bool:
        return self.k > 0 and (len(self._heap) < self.k or prio < -self._heap[0][0])

    def offer(self, prio: int, doc: SampledDoc) -> None:
        if not self.wants(prio):
            return
        self._arrivals += 1
        item = (-prio, -self._arrivals, doc)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)

    def items(self) -> list[SampledDoc]:
        """Lowest priority first."""
        return [doc for _, _, doc in sorted(self._heap, key=lambda t: (-t[0], -t[1]))]


@dataclass
class SourceSample:
    """What one source contributed: the drawn training documents (lowest priority first), the held-out
    documents, and how many documents were read."""
    name: str
    share: float
    train: list[SampledDoc]
    held_out: list[SampledDoc]
    files: int
    documents: int
    held_out_documents: int
    empty_documents: int = 0
    seconds: float = 0.0


class _SourceSampler:
    def __init__(self, spec: SourceSpec, quota: int, held_out_docs: int, held_out_share: float, seed: int,
                 max_doc_chars: int):
        self.spec, self.seed, self.held_out_share, self.max_doc_chars = spec, seed, held_out_share, max_doc_chars
        self.train, self.held_out = BottomK(quota), BottomK(held_out_docs)
        self.documents = self.held_out_documents = self.empty = 0
        self.default_language = spec.languages[0] if len(spec.languages) == 1 else None

    def _slot(self, doc_id: str) -> tuple[BottomK, int]:
        if is_held_out(self.spec.name, doc_id, self.held_out_share):
            return self.held_out, _hash64("held-out order", self.spec.name, doc_id)
        return self.train, priority(self.seed, self.spec.name, doc_id)

    def count(self, doc_id: str) -> bool:
        """Count a document by its id; whether it may enter the sample."""
        reservoir, prio = self._slot(doc_id)
        self.documents += 1
        self.held_out_documents += reservoir is self.held_out
        return reservoir.wants(prio)

    def offer(self, row: dict) -> None:
        text = row.get("text") or ""
        if not text.strip():
            self.empty += 1
            return
        reservoir, prio = self._slot(row["id"])
        if reservoir.wants(prio):
            meta = json.loads(row.get("metadata") or "{}")
            language = meta.get("language") or self.default_language
            reservoir.offer(prio, SampledDoc(row["id"], window(text, self.max_doc_chars, prio), language))


def window(text: str, max_chars: int, seed: int) -> str:
    """`text` if it is short enough, else a run of whole lines of at most `max_chars` characters that
    starts at a line chosen by `seed` (a single over-long line is cut)."""
    if len(text) <= max_chars:
        return text
    start = seed % (len(text) - max_chars + 1)
    if start:
        nl = text.find("\n", start - 1)
        start = nl + 1 if 0 <= nl < len(text) - 1 else start
    piece = text[start:start + max_chars]
    cut = piece.rfind("\n")
    return piece[:cut + 1] if cut > 0 and start + max_chars < len(text) else piece


def _iter_parquet(path: str, sampler: _SourceSampler) -> Iterator[dict]:
    import pyarrow.parquet as pq

    from pipeline.inputs import open_stream
    with open_stream(path) as raw:
        pf = pq.ParquetFile(raw)
        missing = [c for c in _COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: not a file of documents (no column {', '.join(missing)}); "
                             f"expected the document schema of pipeline/schema.py")
        for group in range(pf.num_row_groups):
            ids = pf.read_row_group(group, columns=["id"]).column("id").to_pylist()
            wanted = [i for i, doc_id in enumerate(ids) if doc_id is not None and sampler.count(doc_id)]
            if wanted:
                yield from pf.read_row_group(group, columns=_COLUMNS).take(wanted).to_pylist()


def quotas(sources: tuple[SourceSpec, ...], sample_docs: int) -> dict[str, int]:
    """Documents to draw per source: its share of `sample_docs`, at least one when the share is not 0."""
    return {s.name: max(1, round(s.share * sample_docs)) if s.share > 0 else 0 for s in sources}


def draw_sample(manifest: Manifest, sample_docs: int, held_out_docs: int, held_out_share: float,
                seed: int = 0, max_doc_chars: int = MAX_DOC_CHARS) -> list[SourceSample]:
    """Stream every source of the manifest once and draw its training and held-out documents."""
    if sample_docs < 1:
        raise ValueError(f"the sample needs at least one document, not {sample_docs}")
    if not 0 <= held_out_share < 1:
        raise ValueError(f"the held-out share must be in [0, 1), not {held_out_share}")
    wanted = quotas(manifest.sources, sample_docs)
    samples = []
    for spec in manifest.sources:
        if spec.share == 0:
            continue
        samples.append(_draw_source(manifest, spec, wanted[spec.name], held_out_docs, held_out_share, seed,
                                    max_doc_chars))
    return samples


def _draw_source(manifest: Manifest, spec: SourceSpec, quota: int, held_out_docs: int, held_out_share: float,
                 seed: int, max_doc_chars: int) -> SourceSample:
    t0 = time.time()
    files = manifest.files(spec.name)
    sampler = _SourceSampler(spec, quota, held_out_docs, held_out_share, seed, max_doc_chars)
    for n, path in enumerate(files, 1):
        for row in _iter_parquet(path, sampler):
            sampler.offer(row)
        if n == len(files) or n % 100 == 0:
            log.info("%s: %d/%d files, %d documents (%.0f docs/s)", spec.name, n, len(files), sampler.documents,
                     sampler.documents / max(time.time() - t0, 1e-9))
    train = sampler.train.items()
    if not train:
        raise ValueError(f"{manifest.path}: sources.{spec.name}: no document with text outside the held-out "
                         f"set in {len(files)} file(s); a source with a share needs documents")
    return SourceSample(spec.name, spec.share, train, sampler.held_out.items(), len(files), sampler.documents,
                        sampler.held_out_documents, sampler.empty, round(time.time() - t0, 3))


def mixture_texts(samples: list[SourceSample]) -> dict[str, list[str]]:
    """Each source's training texts, cut so that sources contribute bytes in their shares: the sample is
    as large as the scarcest source (relative to its share) allows, and every source gives share x that
    many bytes, whole documents in priority order and the last one cut at a line."""
    sizes = {s.name: sum(len(d.text.encode("utf-8")) for d in s.train) for s in samples}
    total_share = sum(s.share for s in samples)
    total = min(sizes[s.name] * total_share / s.share for s in samples)
    out = {}
    for s in samples:
        budget = round(total * s.share / total_share)
        texts, used = [], 0
        for doc in s.train:
            data = doc.text.encode("utf-8")
            if used + len(data) >= budget:
                if budget > used:
                    texts.append(_head(data, budget - used))
                break
            texts.append(doc.text)
            used += len(data)
        out[s.name] = texts
    return out


def _head(data: bytes, n: int) -> str:
    """The first `n` bytes of UTF-8 text, ending at the last line break in them when there is one."""
    head = data[:n]
    cut = head.rfind(b"\n")
    return (head[:cut + 1] if cut > 0 else head).decode("utf-8", "ignore")
