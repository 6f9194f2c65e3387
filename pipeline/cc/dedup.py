"""Document-level and line-level deduplication, global across the run, with bounded memory per worker.

Order, and why it differs from CCNet's. CCNet removes every copy of a repeated line first. That is what
kills boilerplate, but on its own it also deletes the original of every duplicated page together with its
copies (all their lines repeat), and a near-duplicate keeps its edited lines, so MinHash run afterwards
compares fragments. Here documents are deduplicated first, on the page as crawled:

1. exact: pages with byte-identical text; the one with the smallest key (the first in input order) stays.
2. near: MinHash LSH over word shingles. Shingles leave out "template lines" (`TemplateRule`): short
   lines found in a few distinct page texts, long ones only when found in many (menus, footers, cookie
   notices). A page re-published on another site shares its text but not its template, and the template
   would otherwise dilute the similarity; the paragraphs that several near-copies of one page share are
   long lines in few pages, so they are kept and still make the copies match.
   A page is dropped when some candidate with a smaller key shares a band with it, so each cluster of
   mutual duplicates keeps exactly one page, its first.
3. line dedup (CCNet) then runs over the surviving pages only: a line repeated across pages that are not
   copies of each other is boilerplate, and every copy of it goes (or all but the first, in keep-first).

Every step is a shuffle keyed by a hash (line hash, band key) whose groups are streamed twice (once to
find the smallest key, once to emit), followed by a join back to documents keyed by document: no worker
ever holds a set of all hashes, and no side input carries them.
"""
from __future__ import annotations

import dataclasses

import apache_beam as beam
import xxhash

from pipeline.runtime.counters import doc_bytes, inc, timed
from pipeline.runtime.progress import Progress
from pipeline.lines import hash_lines
from pipeline.minhash import Signer
from pipeline.schema import Document, Rejected

REJECTED = "rejected"
EXACT_BAND = b"\xff"


@dataclasses.dataclass
class Page:
    """A document on its way through dedup, with the hash of each of its lines (0 for blank lines) and
    a 64-bit hash of its whole text."""
    doc: Document
    hashes: list[int]
    content: int

    @classmethod
    def of(cls, doc: Document) -> "Page":
        content = xxhash.xxh3_64_intdigest(doc.text.encode("utf-8", "surrogatepass"))
        return cls(doc, hash_lines(doc.text.split("\n")), content)


def _to_page(kv):
    key, doc = kv
    with timed("hash_lines"):
        return key, Page.of(doc)


def _distinct_lines(kv):
    key, page = kv
    return [(h, key) for h in set(page.hashes) if h]


def _distinct_lines_with_content(kv):
    key, page = kv
    return [(h, (key, page.content)) for h in set(page.hashes) if h]


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


class _TemplateLines(beam.DoFn):
    """(line hash, [(key, content hash)]) -> (key, (line hash, n)) for every page holding a line found in
    n >= `min_docs` distinct page texts (n counted up to `cap`). Distinct texts, so that exact copies do
    not make a line look like a template; capped, so that memory stays bounded however common a line is."""

    def __init__(self, min_docs: int, cap: int):
        self.min_docs, self.cap = min_docs, max(cap, min_docs)

    def process(self, group):
        line, members = group
        seen = set()
        for _, content in members:
            seen.add(content)
            if len(seen) >= self.cap:
                break
        if len(seen) < self.min_docs:
            return
        for key, _ in members:
            yield key, (line, len(seen))


class _Sign(beam.DoFn):
    """Emits band keys (exact text hash, MinHash bands) with (key, id) for each page."""

    def __init__(self, exact: bool, near: bool, threshold: float, perms: int, ngram: int, template: "TemplateRule"):
        self.exact, self.near = exact, near
        self.threshold, self.perms, self.ngram = threshold, perms, ngram
        self.template = template

    def setup(self):
        self.signer = Signer(num_perm=self.perms, ngram=self.ngram, threshold=self.threshold)
        self.progress = Progress("documents signed for dedup on this worker")

    def process(self, kv):
        key, page, template = kv
        self.progress.tick()
        with timed("near_dedup"):
            bands = self._bands(key, page, template)
        return bands

    def _bands(self, key, page, template):
        doc = page.doc
        value = (key, doc.id)
        out = []
        if self.exact:
            out.append((EXACT_BAND + page.content.to_bytes(8, "little"), value))
        if self.near:
            lines = doc.text.split("\n")
            kept = "\n".join(ln for ln, h in zip(lines, page.hashes)
                             if not self.template.masks(ln, template.get(h, 0)))
            sig = self.signer.signature(kept)
            if sig is not None:
                out += [(band, value) for band in self.signer.band_keys(sig)]
        return out


def _smallest(members, key=lambda m: m):
    """(smallest member, number of members) of a re-iterable group, in one streaming pass."""
    first, n = None, 0
    for member in members:
        n += 1
        if first is None or key(member) < key(first):
            first = member
    return first, n


class _DuplicateDrops(beam.DoFn):
    """(band, [(key, id)]) -> (key, (kind, id kept)) for every member but the one with the smallest key."""

    def process(self, group):
        band, members = group
        first, n = _smallest(members, key=lambda m: m[0])
        if n < 2:
            return
        kind = "exact" if band[:1] == EXACT_BAND else "near"
        for key, _ in members:
            if key != first[0]:
                yield key, (kind, first[1])


def _page_and_template(kv):
    key, joined = kv
    for page in joined["page"]:
        yield key, page, dict(joined["template"])


class _ApplyDrops(beam.DoFn):
    def process(self, kv):
        key, joined = kv
        drops = sorted(set(joined["drop"]))   # "exact" sorts before "near"
        for page in joined["page"]:
            if not drops:
                yield key, page
                continue
            kind, kept_id = drops[0]
            stage = f"{kind}_dedup"
            inc(f"{stage}.rejected")
            inc(f"{stage}.rejected_bytes", doc_bytes(page.doc.text))
            page.doc.metadata["duplicate_of"] = kept_id
            yield beam.pvalue.TaggedOutput(REJECTED, (key, Rejected(page.doc, stage, f"{kind} duplicate of {kept_id}")))


class DocumentDedup(beam.PTransform):
    """(key, Document) -> kept (key, Page), rejected (key, Rejected)."""

    def __init__(self, exact=True, near=True, threshold=0.5, perms=128, ngram=5, template: "TemplateRule" = None):
        super().__init__()
        self.exact, self.near = exact, near
        self.threshold, self.perms, self.ngram = threshold, perms, ngram
        self.template = template or TemplateRule()

    def expand(self, docs):
        pages = docs | "Hash lines" >> beam.Map(_to_page)
        if not (self.exact or self.near):
            return pages, pages.pipeline | "No dedup rejects" >> beam.Create([])
        if self.near:
            template = (pages | "Lines with content hashes" >> beam.FlatMap(_distinct_lines_with_content)
                        | "Group lines for templates" >> beam.GroupByKey()
                        | "Template lines" >> beam.ParDo(
                            _TemplateLines(self.template.min_docs, self.template.min_docs_long)))
            triples = ({"page": pages, "template": template} | "Join templates" >> beam.CoGroupByKey()
                       | "Pages with templates" >> beam.FlatMap(_page_and_template))
        else:
            triples = pages | "No templates" >> beam.Map(lambda kv: (kv[0], kv[1], {}))
        bands = triples | "Sign" >> beam.ParDo(_Sign(
            self.exact, self.near, self.threshold, self.perms, self.ngram, self.template))
        drops = (bands | "Group bands" >> beam.GroupByKey()
                 | "Duplicates" >> beam.ParDo(_DuplicateDrops()))
        out = ({"page": pages, "drop": drops} | "Join duplicates" >> beam.CoGroupByKey()
               | "Drop duplicates" >> beam.ParDo(_ApplyDrops()).with_outputs(REJECTED, main="kept"))
        return out.kept, out[REJECTED]


class _LineDrops(beam.DoFn):
    """(line hash, [key]) -> (key, line hash) for each page that must lose the line."""

    def __init__(self, keep_first: bool):
        self.keep_first = keep_first

    def process(self, group):
        line, keys = group
        first, n = _smallest(keys)
        if n < 2:
            return
        for key in keys:
            if not (self.keep_first and key == first):
                yield key, line


class _ApplyLineDrops(beam.DoFn):
    def process(self, kv):
        key, joined = kv
        drop = set(joined["drop"])
        for page in joined["page"]:
            with timed("line_dedup"):
                doc = page.doc
                lines = doc.text.split("\n")
                n_in = sum(1 for h in page.hashes if h)
                inc("line_dedup.docs_in")
                inc("line_dedup.bytes_in", doc_bytes(doc.text))
                if drop:
                    doc.text = "\n".join(ln for ln, h in zip(lines, page.hashes) if h not in drop)
                removed = sum(1 for h in page.hashes if h in drop)
                doc.metadata["lines"] = n_in
                doc.metadata["lines_removed_by_dedup"] = removed
                inc("line_dedup.lines_in", n_in)
                inc("line_dedup.lines_removed", removed)
                inc("line_dedup.bytes_out", doc_bytes(doc.text))
            yield key, doc


class LineDedup(beam.PTransform):
    """(key, Page) -> (key, Document) with every line that repeats across pages removed."""

    def __init__(self, mode: str = "remove-all"):
        super().__init__()
        self.mode = mode

    def expand(self, pages):
        if self.mode == "off":
            return pages | "No line dedup" >> beam.Map(lambda kv: (kv[0], kv[1].doc))
        drops = (pages | "Distinct lines" >> beam.FlatMap(_distinct_lines)
                 | "Group lines" >> beam.GroupByKey()
                 | "Repeated lines" >> beam.ParDo(_LineDrops(self.mode == "keep-first")))
        return ({"page": pages, "drop": drops} | "Join line drops" >> beam.CoGroupByKey()
                | "Remove repeated lines" >> beam.ParDo(_ApplyLineDrops()))
