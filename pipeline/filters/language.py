"""Language ID as a step: fastText lid.176 (`pipeline.langid`), the document's best language and its
probability added to its metadata; a document below the threshold, or in no kept language, is rejected."""
from __future__ import annotations

import dataclasses

from pipeline.model_files import ModelFile
from pipeline.runtime.counters import inc
from pipeline.schema import Document, Rejected
from pipeline.sources.base import Step


def language_step(model: ModelFile, languages: tuple[str, ...] | None, threshold: float,
                  stage: str = "lid") -> Step:
    """The step, with its model loaded (call once per worker). `languages` empty or None keeps all."""
    from pipeline.langid import LanguageIdentifier
    lid = LanguageIdentifier(model.local_path())
    kept = frozenset(languages or ())

    def judge(doc: Document) -> Document | Rejected:
        lang, score = lid.predict(doc.text)
        inc(f"{stage}.lang.{lang}")
        doc = dataclasses.replace(doc, metadata={**doc.metadata, "language": lang, "language_score": round(score, 4)})
        if score < threshold:
            return Rejected(doc, stage, f"language score {score:.3f} < {threshold} ({lang})")
        if kept and lang not in kept:
            return Rejected(doc, stage, f"language {lang} not in {','.join(sorted(kept))}")
        return doc

    return Step(stage, judge)
