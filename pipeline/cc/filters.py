"""Per-document filters after dedup, in CCNet's order: length, language ID, then the quality scorers.
Models load once per worker in `setup`; every rejected document keeps the scores it was judged by."""
from __future__ import annotations

import apache_beam as beam

from pipeline.runtime.counters import doc_bytes, inc, timed
from pipeline.runtime.progress import Progress
from pipeline.langid import LanguageIdentifier
from pipeline.model_files import ModelFile
from pipeline.quality import QualityScorer
from pipeline.schema import Document, Rejected

REJECTED = "rejected"


class Filter(beam.DoFn):
    def __init__(self, min_chars: int, lid_model: ModelFile, languages: tuple[str, ...], lid_threshold: float,
                 scorers: list[QualityScorer]):
        self.min_chars = min_chars
        self.lid_model = lid_model
        self.languages = frozenset(languages)
        self.lid_threshold = lid_threshold
        self.scorers = scorers

    def setup(self):
        self.lid = LanguageIdentifier(self.lid_model.local_path())
        for scorer in self.scorers:
            scorer.load()
        self.progress = Progress("documents through length, language ID and quality filters on this worker")

    def _reject(self, key: str, doc: Document, stage: str, reason: str, size: int):
        inc(f"{stage}.rejected")
        inc(f"{stage}.rejected_bytes", size)
        return beam.pvalue.TaggedOutput(REJECTED, (key, Rejected(doc, stage, reason)))

    def process(self, kv):
        key, doc = kv
        self.progress.tick()
        size = doc_bytes(doc.text)
        n_chars = len(doc.text)
        if n_chars < self.min_chars:
            yield self._reject(key, doc, "length", f"{n_chars} characters after dedup < {self.min_chars}", size)
            return
        with timed("lid"):
            lang, score = self.lid.predict(doc.text)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 4)
        inc(f"lid.lang.{lang}")
        if score < self.lid_threshold:
            yield self._reject(key, doc, "lid", f"language score {score:.3f} < {self.lid_threshold}", size)
            return
        if self.languages and lang not in self.languages:
            yield self._reject(key, doc, "lid", f"language {lang} not in {','.join(sorted(self.languages))}", size)
            return
        for scorer in self.scorers:
            stage = f"quality.{scorer.name}"
            with timed(stage):
                scores = scorer.score(doc)
                doc.metadata.update(scores)
                reason = scorer.reject_reason(doc, scores)
            if reason:
                yield self._reject(key, doc, stage, reason, size)
                return
        inc("kept.docs")
        inc("kept.bytes", size)
        yield key, doc
