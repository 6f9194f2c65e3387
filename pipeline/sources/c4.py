"""The C4 source: C4's released JSON shards, or raw crawled pages -> C4-cleaned, language-identified,
deduplicated documents."""
from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any, Iterator

from pipeline.argtypes import fraction, non_negative_int, open_fraction
from pipeline.inputs import WHOLE, Span
from pipeline.readers.crawl import DEFAULT_SPLIT_BYTES, SPLIT_HELP
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 4096
MAX_LINE_BYTES = 8 << 20     # a C4 page is a few KB; a longer JSON line is damage, or a bomb
INPUT_SUFFIXES = (".json.gz", ".json", ".jsonl", ".jsonl.gz", ".warc.gz", ".warc", ".wet.gz", ".wet")
_SURROGATE = re.compile("[\ud800-\udfff]")


class C4Source(Source):
    """C4 (JSON shards as released, or raw WET/WARC pages) -> C4 heuristics, language ID and dedup.

    Input: C4's released shards (`c4-train.*.json.gz`, or plain `.json`/`.jsonl`: one JSON object a line
    with text, url and timestamp), and raw pages: CommonCrawl WET files (and WARC files, whose HTML is
    turned into text), told apart by their content. Every file is streamed.

    Rules, in order (C4's heuristics, Raffel et al. 2020; thresholds as C4's):
      A candidate line is a stripped line, without citation markers ([1], [edit], [citation needed]), with
      no word over 1000 characters, ending in terminal punctuation (. ? ! or a closing ", not ...), with
      at least 3 words.
      lorem_ipsum: a page with a candidate line containing "lorem ipsum" is rejected;
      curly_brace: a page with a candidate line containing "{" (javascript notices aside) is rejected;
      lines: only candidate lines stay, less those containing "javascript" or a policy phrase ("terms of
      use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies");
      sentences: a page with fewer than 5 sentences left is rejected (sentences ended by . ! ? followed by
      a space or the end of a line; C4 used NLTK Punkt);
      lid: fastText lid.176 on the cleaned text; a page whose best language has probability < 0.5
      (--lid-threshold) or is not in --languages (default en) is rejected;
      exact_dedup: pages with byte-identical text keep the first (smallest key: input order);
      near_dedup: MinHash LSH over 5-word shingles, 128 permutations, bands tuned for Jaccard 0.5
      (--minhash-threshold); each cluster keeps its first page.
    C4 deduplicated three-sentence spans and used langdetect (p >= 0.99) and a bad-words list: here
    dedup is document-level (exact + near) and language ID is the CommonCrawl job's fastText, as in
    LLaMA's own curation; no bad-words list.

    Bad input (a line that is not JSON, has no text or is not UTF-8, a truncated gzip, a damaged WARC
    record) becomes a dead letter and the good records around it are kept. A JSON line over 8 MiB is a
    dead letter, never held whole (a gzip bomb of zeros is given up 8 x 8 MiB past its cap); an empty file
    is one dead letter. Documents: id
    c4/<shard>/<line> (JSON) or c4/<WARC record id> (raw pages), the page URL, metadata language,
    language_score, timestamp."""

    name = "c4"
    stages = ("lorem_ipsum", "curly_brace", "lines", "sentences", "lid", "exact_dedup", "near_dedup")

    def __init__(self, languages: tuple[str, ...] | None = ("en",), lid_threshold: float = 0.5,
                 lid_model: str | None = None, exact_dedup: bool = True, near_dedup: bool = True,
                 minhash_threshold: float = 0.5, split_bytes: int = DEFAULT_SPLIT_BYTES):
        from pipeline.langid import default_lid_model
        from pipeline.model_files import ModelFile
        if not 0.0 <= lid_threshold <= 1.0 or not 0.0 < minhash_threshold < 1.0 or split_bytes < 0:
            raise ValueError("0 <= --lid-threshold <= 1, 0 < --minhash-threshold < 1 and --split-bytes >= 0")
        self.languages = tuple(languages) if languages is not None else None
        self.lid_threshold = lid_threshold
        self.lid_model = lid_model or default_lid_model()
        self.exact_dedup, self.near_dedup = exact_dedup, near_dedup
        self.minhash_threshold = minhash_threshold
        self.split_bytes = split_bytes
        self._lid_file = ModelFile(self.lid_model)

    # ------------------------------------------------------------------------------------------ reading

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        """Files and globs as given; a directory stands for the JSON shards and WET/WARC files under it."""
        from pipeline.inputs import expand_files
        return expand_files(spec, lambda p: p.endswith(INPUT_SUFFIXES), max_files, what=", ".join(INPUT_SUFFIXES))

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        from pipeline.inputs import open_stream
        with open_stream(path) as raw:
            gzipped, head = _sniff(raw)
        with open_stream(path) as raw:
            if head.lstrip().startswith(b"WARC/"):
                yield from self._read_warc(raw, path)
            else:
                yield from self._read_json(raw, path, gzipped)

    def _read_json(self, raw, path: str, gzipped: bool) -> Iterator[Document | DeadLetter]:
        import gzip

        from pipeline.sources.streams import Overlong, capped_lines, decompression_errors, partial
        stream = partial(gzip.GzipFile(fileobj=raw)) if gzipped else raw
        shard = _shard_name(path)
        offset, number, records = 0, 0, 0
        try:
            for item in capped_lines(stream, MAX_LINE_BYTES):
                number += 1
                if isinstance(item, Overlong):
                    records += 1
                    yield DeadLetter(path, item.offset, f"line {number}: {item.reason}", f"{shard}:{number}")
                    offset = item.offset + item.size
                    continue
                offset, line = item
                if line.strip():
                    records += 1
                    yield _json_document(line, path, shard, number, offset)
                offset += len(line)
        except decompression_errors() as exc:  # a truncated or corrupt gzip: what was read stands
            yield DeadLetter(path, offset, f"reading stopped after line {number}: {type(exc).__name__}: {exc}")
            return
        if not records:
            yield DeadLetter(path, 0, "an empty file: no JSON lines")

    def spans(self, path: str) -> list[Span]:
        """Raw crawl files in byte ranges (`pipeline.readers.crawl.crawl_spans`); JSON shards whole."""
        from pipeline.readers.crawl import crawl_spans
        return crawl_spans(path, self.split_bytes)

    def read_span(self, path: str, span: Span) -> Iterator[Document | Rejected | DeadLetter]:
        if tuple(span) == WHOLE:
            yield from self.read(path)
            return
        from pipeline.inputs import open_stream
        with open_stream(path, *span) as raw:
            yield from self._read_warc(raw, path, span[0])

    def _read_warc(self, raw, path: str, origin: int = 0) -> Iterator[Document | DeadLetter]:
        from pipeline.records import to_document
        from pipeline.runtime.counters import inc
        from pipeline.warc import read_warc
        for rec in read_warc(raw, path, origin=origin):
            if isinstance(rec, DeadLetter):
                yield rec
                continue
            page = to_document(rec, path)
            if page is None:
                inc("read.skipped_records")  # warcinfo, request, metadata records, non-HTML responses
            elif isinstance(page, DeadLetter):
                yield page
            else:
                rid = rec.record_id.strip("<>").removeprefix("urn:uuid:")
                yield Document(f"c4/{rid}", page.url, self.name, page.text,
                               {"timestamp": page.metadata.get("crawl_date", "")})

    # ------------------------------------------------------------------------------------------ rules

    def steps(self) -> list[Step]:
        from pipeline.filters.language import language_step
        return [Step("lorem_ipsum", _reject_lorem_ipsum), Step("curly_brace", _reject_curly_brace),
                Step("lines", _keep_lines), Step("sentences", _reject_few_sentences),
                language_step(self._lid_file, self.languages, self.lid_threshold)]

    def dedup_steps(self) -> list:
        from pipeline.dedup.exact import ExactDedup
        from pipeline.dedup.near import NearDedup
        return ([ExactDedup("exact_dedup")] if self.exact_dedup else []) \
            + ([NearDedup(self.minhash_threshold)] if self.near_dedup else [])

    def config(self) -> dict[str, Any]:
        return {"languages": self.languages, "lid_threshold": self.lid_threshold, "lid_model": self.lid_model,
                "exact_dedup": self.exact_dedup, "near_dedup": self.near_dedup,
                "minhash_threshold": self.minhash_threshold, "split_bytes": self.split_bytes}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--languages", default="en",
                            help="comma-separated languages to keep ('all' keeps every one; default en)")
        parser.add_argument("--lid-threshold", type=fraction, default=0.5,
                            help="lowest probability of the best language (default 0.5)")
        parser.add_argument("--lid-model", help="fastText language-ID model (default: the packaged lid.176.ftz)")
        parser.add_argument("--no-exact-dedup", dest="exact_dedup", action="store_false")
        parser.add_argument("--no-near-dedup", dest="near_dedup", action="store_false")
        parser.add_argument("--minhash-threshold", type=open_fraction, default=0.5,
                            help="Jaccard similarity the MinHash LSH bands are tuned for (default 0.5)")
        parser.add_argument("--split-bytes", type=non_negative_int, default=DEFAULT_SPLIT_BYTES,
                            help=f"{SPLIT_HELP} (default {DEFAULT_SPLIT_BYTES})")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "C4Source":
        return cls(_languages(args.languages), args.lid_threshold, args.lid_model, args.exact_dedup,
                   args.near_dedup, args.minhash_threshold, args.split_bytes)


def _languages(spec: str) -> tuple[str, ...] | None:
    if spec.strip().lower() == "all":
        return None
    langs = tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not langs:
        raise ValueError("--languages names no language")
    return langs


def _sniff(raw) -> tuple[bool, bytes]:
    """Whether the file is gzipped, and its first bytes decompressed (enough to tell WARC from JSON)."""
    head = raw.read(SNIFF_BYTES)
    if head[:2] != GZIP_MAGIC:
        return False, head
    import zlib
    try:
        return True, zlib.decompressobj(31).decompress(head, SNIFF_BYTES)
    except zlib.error:
        return True, b""


def _shard_name(path: str) -> str:
    name = os.path.basename(path.rstrip("/"))
    for ext in (".gz", ".json", ".jsonl"):
        name = name.removesuffix(ext)
    return name


def _json_document(line: bytes, path: str, shard: str, number: int, offset: int) -> Document | DeadLetter:
    def dead(reason: str) -> DeadLetter:
        return DeadLetter(path, offset, reason, f"{shard}:{number}", line[:DeadLetter.PREVIEW_BYTES])

    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return dead(f"line {number}: invalid UTF-8 at byte {exc.start}")
    except ValueError as exc:
        return dead(f"line {number}: not JSON: {exc}")
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        return dead(f"line {number}: no text field")
    if _SURROGATE.search(row["text"]):
        return dead(f"line {number}: text holds unpaired surrogates")
    return Document(f"c4/{shard}/{number}", str(row.get("url") or ""), "c4", row["text"],
                    {"timestamp": str(row.get("timestamp") or "")})


def _reject_lorem_ipsum(doc: Document) -> Document | str:
    from pipeline.sources.c4_rules import has_lorem_ipsum
    return "a line holds lorem ipsum" if has_lorem_ipsum(doc.text) else doc


def _reject_curly_brace(doc: Document) -> Document | str:
    from pipeline.sources.c4_rules import has_curly_brace
    return "a line holds a curly brace (probably code)" if has_curly_brace(doc.text) else doc


def _keep_lines(doc: Document) -> Document:
    from pipeline.sources.c4_rules import kept_lines
    text = "\n".join(kept_lines(doc.text))
    return doc if text == doc.text else Document(doc.id, doc.url, doc.source, text, doc.metadata)


def _reject_few_sentences(doc: Document) -> Document | str:
    from pipeline.sources.c4_rules import MIN_SENTENCES, count_sentences
    n = count_sentences(doc.text)
    return f"{n} sentences < {MIN_SENTENCES}" if n < MIN_SENTENCES else doc
