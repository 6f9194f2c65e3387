"""The CC job's settings: one object, filled from the command line or built in code."""
from __future__ import annotations

import argparse
import dataclasses

from pipeline.argtypes import fraction, int_at_least, non_negative_int, positive_int
from pipeline.quality import QualityScorer
from pipeline.warc import DEFAULT_MAX_RECORD_BYTES


@dataclasses.dataclass
class CCConfig:
    input: str
    output: str
    paths_prefix: str = "https://data.commoncrawl.org/"
    max_files: int | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    # document-level dedup
    exact_dedup: bool = True
    near_dedup: bool = True
    minhash_threshold: float = 0.5
    minhash_perms: int = 128
    minhash_ngram: int = 5
    template_line_docs: int = 3
    template_max_words: int = 30
    template_line_docs_long: int = 10
    # line-level dedup
    line_dedup: str = "remove-all"   # remove-all | keep-first | off
    min_chars: int = 300
    # language ID
    lid_model: str | None = None
    languages: tuple[str, ...] = ("en",)
    lid_threshold: float = 0.5
    # quality slot
    scorers: list[QualityScorer] = dataclasses.field(default_factory=list)
    output_shards: int | None = None

    def validate(self) -> None:
        if self.line_dedup not in ("remove-all", "keep-first", "off"):
            raise ValueError(f"--line-dedup must be remove-all, keep-first or off, not {self.line_dedup!r}")
        if not 0.0 < self.minhash_threshold < 1.0:
            raise ValueError("--minhash-threshold must be between 0 and 1")
        if self.minhash_ngram < 1 or self.minhash_perms < 2 or self.template_line_docs < 2 \
                or self.template_line_docs_long < self.template_line_docs:
            raise ValueError("--minhash-ngram >= 1, --minhash-perms >= 2, --template-line-docs >= 2, "
                             "--template-line-docs-long >= --template-line-docs")
        if self.min_chars < 0 or not 0.0 <= self.lid_threshold <= 1.0:
            raise ValueError("--min-chars >= 0 and 0 <= --lid-threshold <= 1")
        if self.output_shards is not None and self.output_shards < 1:
            raise ValueError("--output-shards must be >= 1")
        if self.max_files is not None and self.max_files < 1 or self.max_record_bytes < 1 \
                or self.template_max_words < 0:
            raise ValueError("--max-files >= 1, --max-record-bytes >= 1 and --template-max-words >= 0")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True,
                   help="comma-separated globs, paths or URLs of WET/WARC files, or a CommonCrawl "
                        "wet.paths.gz / warc.paths.gz listing")
    p.add_argument("--output", required=True, help="output directory (any Beam filesystem)")
    p.add_argument("--paths-prefix", default=CCConfig.paths_prefix, help="prefix for the paths of a listing")
    p.add_argument("--max-files", type=positive_int, help="use only the first N files of the input")
    p.add_argument("--max-record-bytes", type=positive_int, default=DEFAULT_MAX_RECORD_BYTES,
                   help="records, and HTTP bodies once decoded, larger than this go to dead letters; a gzip "
                        "member that inflates 8x this past a record boundary is abandoned (a decompression bomb)")
    p.add_argument("--no-exact-dedup", dest="exact_dedup", action="store_false")
    p.add_argument("--no-near-dedup", dest="near_dedup", action="store_false")
    p.add_argument("--minhash-threshold", type=float, default=CCConfig.minhash_threshold,
                   help="Jaccard similarity the LSH bands are tuned for")
    p.add_argument("--minhash-perms", type=int_at_least(2), default=CCConfig.minhash_perms)
    p.add_argument("--minhash-ngram", type=positive_int, default=CCConfig.minhash_ngram, help="words per shingle")
    p.add_argument("--template-line-docs", type=int_at_least(2), default=CCConfig.template_line_docs,
                   help="short lines found in this many distinct pages are left out of MinHash shingles")
    p.add_argument("--template-max-words", type=non_negative_int, default=CCConfig.template_max_words,
                   help="lines of at most this many words are template lines from --template-line-docs pages on")
    p.add_argument("--template-line-docs-long", type=int_at_least(2), default=CCConfig.template_line_docs_long,
                   help="longer lines are template lines only when found in this many distinct pages")
    p.add_argument("--line-dedup", choices=["remove-all", "keep-first", "off"], default=CCConfig.line_dedup)
    p.add_argument("--min-chars", type=non_negative_int, default=CCConfig.min_chars,
                   help="drop documents shorter than this after line dedup")
    p.add_argument("--lid-model", help="fastText language-ID model (default: the packaged lid.176.ftz)")
    p.add_argument("--languages", default="en", help="comma-separated languages to keep ('all' keeps every one)")
    p.add_argument("--lid-threshold", type=fraction, default=CCConfig.lid_threshold)
    p.add_argument("--output-shards", type=positive_int,
                   help="Parquet files per output (default: one per input file)")


def from_args(args: argparse.Namespace) -> CCConfig:
    langs = tuple(s.strip() for s in args.languages.split(",") if s.strip())
    cfg = CCConfig(
        input=args.input, output=args.output, paths_prefix=args.paths_prefix, max_files=args.max_files,
        max_record_bytes=args.max_record_bytes, exact_dedup=args.exact_dedup, near_dedup=args.near_dedup,
        minhash_threshold=args.minhash_threshold, minhash_perms=args.minhash_perms,
        minhash_ngram=args.minhash_ngram, template_line_docs=args.template_line_docs,
        template_max_words=args.template_max_words, template_line_docs_long=args.template_line_docs_long,
        line_dedup=args.line_dedup, min_chars=args.min_chars, lid_model=args.lid_model,
        languages=() if langs == ("all",) else langs, lid_threshold=args.lid_threshold,
        output_shards=args.output_shards)
    cfg.validate()
    return cfg
