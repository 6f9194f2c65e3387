"""CommonCrawl as a source of the engine: WET or WARC records in (WARC HTML re-extracted), then CCNet's
order of stages: exact and near document dedup, line dedup, length, language ID, the quality slot."""
from __future__ import annotations

from typing import Iterator

from pipeline.cc.config import CCConfig
from pipeline.inputs import Span
from pipeline.schema import DeadLetter, Document
from pipeline.readers.crawl import crawl_spans, read_crawl
from pipeline.sources.base import Source, Step


class CommonCrawlSource(Source):
    name = "cc"

    def __init__(self, cfg: CCConfig):
        self.cfg = cfg
        from pipeline.langid import default_lid_model
        from pipeline.model_files import ModelFile
        self._lid_file = ModelFile(cfg.lid_model or default_lid_model())

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(s.stage for s in self.dedup_steps()) + ("length", "lid") \
            + tuple(f"quality.{s.name}" for s in self.cfg.scorers)

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        from pipeline.inputs import expand_inputs
        return expand_inputs(spec, self.cfg.paths_prefix, max_files)

    def read(self, path: str) -> Iterator[Document | DeadLetter]:
        return read_crawl(path, self.cfg.max_record_bytes)

    def spans(self, path: str) -> list[Span]:
        return crawl_spans(path, self.cfg.split_bytes)

    def read_span(self, path: str, span: Span) -> Iterator[Document | DeadLetter]:
        return read_crawl(path, self.cfg.max_record_bytes, tuple(span))

    def dedup_steps(self) -> list:
        from pipeline.dedup.exact import ExactDedup
        from pipeline.dedup.lines import LineDedup
        from pipeline.dedup.near import NearDedup, TemplateRule
        c = self.cfg
        steps = []
        if c.exact_dedup:
            steps.append(ExactDedup("exact_dedup"))
        if c.near_dedup:
            steps.append(NearDedup(c.minhash_threshold, c.minhash_perms, c.minhash_ngram,
                                   TemplateRule(c.template_line_docs, c.template_max_words, c.template_line_docs_long)))
        if c.line_dedup != "off":
            steps.append(LineDedup(c.line_dedup))
        return steps

    def final_steps(self) -> list[Step]:
        from pipeline.filters.language import language_step
        from pipeline.filters.length import length_step
        from pipeline.filters.quality import quality_steps
        c = self.cfg
        return [length_step(c.min_chars), language_step(self._lid_file, c.languages, c.lid_threshold),
                *quality_steps(c.scorers)]

    def config(self) -> dict:
        return self.cfg.summary()
