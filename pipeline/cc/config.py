"""The CC job's settings: one object, filled from the command line or built in code. Each option is
declared once, on its field (`pipeline.runtime.options`)."""
from __future__ import annotations

import argparse
import dataclasses

from pipeline.argtypes import fraction, int_at_least, non_negative_int, open_fraction, positive_int
from pipeline.engine.keys import DEFAULT_CHUNK_DOCS
from pipeline.quality import QualityScorer
from pipeline.readers.crawl import DEFAULT_SPLIT_BYTES, SPLIT_HELP
from pipeline.runtime.options import add_options, from_namespace, option, summary
from pipeline.warc import DEFAULT_MAX_RECORD_BYTES

LINE_DEDUP_MODES = ("remove-all", "keep-first", "off")


def _languages(text: str) -> tuple[str, ...]:
    langs = tuple(s.strip() for s in text.split(",") if s.strip())
    return () if langs == ("all",) else langs


@dataclasses.dataclass
class CCConfig:
    input: str = option(required=True, in_summary=False,
                        help="comma-separated globs, paths or URLs of WET/WARC files, or a CommonCrawl "
                             "wet.paths.gz / warc.paths.gz listing")
    output: str = option(required=True, in_summary=False, help="output directory (any Beam filesystem)")
    paths_prefix: str = option("https://data.commoncrawl.org/", "prefix for the paths of a listing",
                               in_summary=False)
    max_files: int | None = option(None, "use only the first N files of the input", type=positive_int,
                                   in_summary=False)
    max_record_bytes: int = option(DEFAULT_MAX_RECORD_BYTES, type=positive_int,
                                   help="records, and HTTP bodies once decoded, larger than this go to dead "
                                        "letters; a gzip member that inflates 8x this past a record boundary "
                                        "is abandoned (a decompression bomb)")
    split_bytes: int = option(DEFAULT_SPLIT_BYTES, SPLIT_HELP, type=non_negative_int)
    # document-level dedup
    exact_dedup: bool = option(True, "leave byte-identical pages in", negate=True)
    near_dedup: bool = option(True, "leave MinHash near-duplicates in", negate=True)
    minhash_threshold: float = option(0.5, "Jaccard similarity the LSH bands are tuned for", type=open_fraction)
    minhash_perms: int = option(128, "MinHash permutations", type=int_at_least(2))
    minhash_ngram: int = option(5, "words per shingle", type=positive_int)
    template_line_docs: int = option(3, type=int_at_least(2),
                                     help="short lines found in this many distinct pages are left out of "
                                          "MinHash shingles")
    template_max_words: int = option(30, type=non_negative_int,
                                     help="lines of at most this many words are template lines from "
                                          "--template-line-docs pages on")
    template_line_docs_long: int = option(10, type=int_at_least(2),
                                          help="longer lines are template lines only when found in this "
                                               "many distinct pages")
    # line-level dedup
    line_dedup: str = option("remove-all", "CCNet's line dedup: remove every copy of a repeated line, all "
                                           "but the first, or none", choices=LINE_DEDUP_MODES)
    min_chars: int = option(300, "drop documents shorter than this after line dedup", type=non_negative_int)
    # language ID
    lid_model: str | None = option(None, "fastText language-ID model (default: the packaged lid.176.ftz)")
    languages: tuple[str, ...] = option(("en",), "comma-separated languages to keep ('all' keeps every one)",
                                        parse=_languages, cli_default="en", show=list)
    lid_threshold: float = option(0.5, "documents whose best language has a lower probability are dropped",
                                  type=fraction)
    output_shards: int | None = option(None, type=positive_int, in_summary=False,
                                       help="Parquet files per output (default: one per unit of --chunk-docs "
                                            "documents, at most 256)")
    chunk_docs: int = option(DEFAULT_CHUNK_DOCS, type=positive_int, in_summary=False,
                             help="documents per unit of work after the read pass (the grain of parallel "
                                  "work and of resumed runs)")
    fresh: bool = option(False, "redo every input file, even those a killed run had finished reading",
                         in_summary=False)
    # quality slot (built from --lm-models / --quality-model by the command)
    scorers: list[QualityScorer] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if self.line_dedup not in LINE_DEDUP_MODES:
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
                or self.template_max_words < 0 or self.chunk_docs < 1:
            raise ValueError("--max-files >= 1, --max-record-bytes >= 1, --chunk-docs >= 1 and "
                             "--template-max-words >= 0")

    def summary(self) -> dict:
        """The settings recorded in stats.json."""
        return {**summary(self), "quality_scorers": [s.name for s in self.scorers]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, CCConfig)


def from_args(args: argparse.Namespace) -> CCConfig:
    cfg = from_namespace(CCConfig, args)
    cfg.validate()
    return cfg
